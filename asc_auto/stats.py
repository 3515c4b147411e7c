"""Standard errors of the accuracies the tool shows: one formula for every table, so a number
from a 33-clip split and one from 5 folds are read the same way."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class EvaluateSE:
    """The standard error of a retrain's mean evaluate accuracy, in its two independent parts.

    Why two: the seeds' spread says how far another set of seeds would move the mean; it does
    not say how far another draw of recordings would, and on a small evaluate fold that is the
    larger part. Two office16 seeds that both score 18 of 66 clips have a seed SE of 0, while
    66 clips alone leave about 5.5 points either way. The clips' part does not shrink with more
    seeds. Both are shown, and the total (added in quadrature) is the ± a table shows."""

    seeds: float | None  # SE of the mean over seeds; None with one seed
    clips: float | None  # from the fold's clips; None when their number is unknown
    n_clips: int | None = None

    @property
    def total(self) -> float | None:
        """Both parts in quadrature; None when neither is known."""
        parts = [p for p in (self.seeds, self.clips) if p is not None and math.isfinite(p)]
        return math.sqrt(sum(p * p for p in parts)) if parts else None


def clip_shares(correct: Sequence[str]) -> list[float] | None:
    """Each evaluate clip's share of the seeds that got it right, from the seeds' `correct`
    strings ('1'/'0' per clip, the fold's order); None unless every seed has one, all alike
    long (a seed retrained before they were kept has none)."""
    if not correct or any(not c for c in correct) or len({len(c) for c in correct}) != 1:
        return None
    return [sum(c[i] == "1" for c in correct) / len(correct) for i in range(len(correct[0]))]


def evaluate_se(accuracies: Sequence[float], n_clips: int | None = None,
                correct: Sequence[str] = ()) -> EvaluateSE:
    """`EvaluateSE` of seeds scored on one fold. The clips' part is the spread over clips of
    each clip's share of right seeds, over sqrt(n) (seeds' `correct` strings), else the
    binomial SE of the mean on `n_clips` (its upper bound: seeds that disagree on a clip lower
    it; with one seed the two are equal, hence the population form). It counts seed noise that
    is independent between clips a second time, a small overstatement kept for simplicity."""
    seeds = mean_se(accuracies) if len(accuracies) > 1 else None
    shares = clip_shares(correct)
    if shares is not None and len(shares) > 1:
        return EvaluateSE(seeds, statistics.pstdev(shares) / math.sqrt(len(shares)), len(shares))
    if n_clips and accuracies:
        return EvaluateSE(seeds, binomial_se(statistics.fmean(accuracies), n_clips), n_clips)
    return EvaluateSE(seeds, None, n_clips)


def paired_clip_se(mine: Sequence[str], theirs: Sequence[str]) -> float | None:
    """SE, from which clips the fold holds, of the difference between two retrains scored on
    the same clips in the same order: the spread over clips of the difference of their
    right-seed shares, over sqrt(n). Two models right and wrong on the same clips differ by no
    clip sampling at all; None unless both have every seed's `correct`, equally long."""
    a, b = clip_shares(mine), clip_shares(theirs)
    if a is None or b is None or len(a) != len(b) or len(a) < 2:
        return None
    return statistics.pstdev([x - y for x, y in zip(a, b, strict=True)]) / math.sqrt(len(a))


def seeds_text(accuracies: Sequence[float], n_clips: int | None = None,
               correct: Sequence[str] = ()) -> str:
    """`0.8333 ± 0.0514 over 3 seeds and 66 clips (SE: seeds 0.0231, clips 0.0459; std 0.0401,
    seeds 0.7879-0.8636)`: the mean's uncertainty in its two parts (`EvaluateSE`), then the
    spread a single model may land anywhere in (office16's kd pick: seeds 68-94 % around an 81 %
    mean). Without the number of clips, the seeds' part alone, as before it was known."""
    if not accuracies:
        return "-"
    se = evaluate_se(accuracies, n_clips, correct)
    mean = statistics.fmean(accuracies)
    if len(accuracies) < 2:
        if se.clips is None:
            return f"{mean:.4f} on 1 seed (no spread to say)"
        return (f"{mean:.4f} ± {se.clips:.4f} on 1 seed and {se.n_clips} clips (SE of the "
                "clips; no seed spread to say)")
    spread = (f"std {statistics.stdev(accuracies):.4f}, "
              f"seeds {min(accuracies):.4f}-{max(accuracies):.4f})")
    if se.clips is None:
        return (f"{mean:.4f} ± {se.seeds:.4f} over {len(accuracies)} seeds (SE of the mean; "
                + spread)
    return (f"{mean:.4f} ± {se.total:.4f} over {len(accuracies)} seeds and {se.n_clips} clips "
            f"(SE: seeds {se.seeds:.4f}, clips {se.clips:.4f}; " + spread)


def class_note(counts: Sequence[int]) -> str | None:
    """What a per-class accuracy is worth when a class has few evaluate clips: 'per class: over
    6 evaluate clips each (the header's n); one clip moves it 0.167, its SE up to 0.204'. None
    when no count is known. The SE bound is the binomial one at 0.5 on the fewest clips."""
    known = [n for n in counts if n > 0]
    if not known:
        return None
    low, high = min(known), max(known)
    each = f"{low} evaluate clips each" if low == high else f"{low}-{high} evaluate clips"
    return (f"per class: over {each} (the header's n); one clip moves it {1 / low:.3f}, its SE "
            f"up to {0.5 / math.sqrt(low):.3f}")

