"""Standard errors of the accuracies the tool shows: one formula for every table, so a number
from a 33-clip split and one from 5 folds are read the same way."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from optuna.trial import FrozenTrial

from asc_auto.schema import TrialRecord


def binomial_se(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on `n` clips: on a 60-clip validation
    split one clip is 1.7 points and the SE of 60 % is 6.3 points, which a bare 0.6232 hides."""
    return math.sqrt(max(accuracy * (1.0 - accuracy), 0.0) / n) if n > 0 else math.nan


def mean_se(values: Sequence[float]) -> float:
    """Standard error of the mean of repeated runs (seeds, folds); NaN for fewer than two."""
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan


def accuracy_text(accuracy: float | None, n: int | None, se: float | None = None) -> str:
    """0.6232 ± 0.058: the standard error given (a cross-validated trial records its own), else
    the binomial one when the number of clips is known, else the bare value."""
    if accuracy is None:
        return "-"
    if se is not None:
        return f"{accuracy:.4f} ± {se:.3f}"
    if not n:
        return f"{accuracy:.4f}"
    return f"{accuracy:.4f} ± {binomial_se(accuracy, n):.3f}"


def trial_accuracy_text(t: FrozenTrial, n_val: int | None) -> str:
    """A trial's value with its uncertainty (`value_se` of a cross-validated trial)."""
    return accuracy_text(t.value, n_val, TrialRecord.from_trial(t).value_se)


def seeds_text(accuracies: Sequence[float]) -> str:
    """`0.8333 ± 0.0231 over 3 seeds (SE of the mean; std 0.0401, seeds 0.7879-0.8636)`: the
    mean's uncertainty, then the spread a single model may land anywhere in (office16's kd pick:
    seeds 68-94 % around an 81 % mean). One seed: its value alone."""
    if len(accuracies) < 2:
        return f"{accuracies[0]:.4f} on 1 seed (no spread to say)" if accuracies else "-"
    return (f"{statistics.fmean(accuracies):.4f} ± {mean_se(accuracies):.4f} over "
            f"{len(accuracies)} seeds (SE of the mean; std {statistics.stdev(accuracies):.4f}, "
            f"seeds {min(accuracies):.4f}-{max(accuracies):.4f})")

