"""Which trials a search stops early (`search --pruner`), and why the default stops where it does.

A trial reports its validation accuracy after every epoch (fold 0's under cross-validation);
the pruner may stop it there. Stopping saves training time and costs the trials it stops
wrongly, so the choice is a trade measured on real recordings, not a default copied from a
tutorial.

Under cross-validation a trial is also stopped between folds once it can no longer enter the
top few (`hopeless`): that stop costs nothing, since the trials it stops could not have been
confirmed or picked whatever their remaining folds scored.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial

#: `--pruner` values: `hyperband` stops trials at half the schedule when they rank in the
#: bottom two thirds there and are clearly (`RUNG_Z` standard errors) below the top third;
#: `none` trains every trial to the end.
KINDS = ("hyperband", "none")

#: Hyperband keeps the top 1/REDUCTION of the trials at its rung.
REDUCTION = 3

#: How far below the value Hyperband's rung keeps a trial must be for its stop to stand, in
#: standard errors of the difference between two accuracies on the rung's validation clips.
#: Measured on office16 (baseline, 40 epochs, 5-fold CV, 31 clips in the rung's fold,
#: 2026-12-02, `benchmarks/rung_replay.py --home /tmp/e2e/homeR --study r16n` on a
#: `--pruner none` study of 16 trials; the accuracy at the rung ranks the final values with a
#: Spearman correlation of 0.77): plain Hyperband stops 10 trials, saving 56 % of the epochs,
#: among them trial 3, whose 5-fold value tied the best (0.864): at the rung it had 24 of 31
#: clips right, two behind the bar (26). One standard error of the difference there is about
#: three clips; with RUNG_Z = 1 the rung stops 7 trials, none of the best three, saving 39 %.
RUNG_Z = 1.0

# A float's rounding must not stop a trial that ties the bar (a tie goes to the smaller model).
_TIE = 1e-9


def make_pruner(kind: str, epochs: int, n_val: int) -> optuna.pruners.BasePruner:
    """The pruner a search runs with, for a schedule of `epochs` epochs per trial whose
    per-epoch accuracy is measured on `n_val` clips (fold 0's under cross-validation).

    Hyperband's smallest rung is half the schedule: earlier, accuracies rank noise. Measured on
    fsdd (kd, 10 epochs, 24-trial search, 2026-12-01): the 7 trials that ran 9 epochs had a
    Spearman correlation with their epoch-9 accuracy of 0.31, 0.14, 0.32, 0.16 at epochs 1-4
    (most at chance, 0.1: the later best, 0.74, had 0.17) and 0.82, 0.96, 0.77, 0.96 at 5-8; the
    earlier smallest rung, a ninth (epoch 1), stopped 7 trials at chance level.

    What the rung costs, measured on the same fsdd kd search with this rung (2026-12-01,
    benchmarks/pruned_replay.py, docs/BENCHMARKS.md): the four trials with the highest
    accuracy among the 14 it had stopped, trained to the end with another seed, finished at
    0.43-0.57, below the four best finished trials (0.64-0.73); it saved 85 of 240
    epochs. So Hyperband is the default, `none` the choice of a user who prefers the cost.

    On small validation sets the rung ranks by a clip or two, which is noise (see RUNG_Z), so
    Hyperband's stop stands only where the trial is clearly behind (NoiseTolerant).
    """
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "hyperband":
        return NoiseTolerant(optuna.pruners.HyperbandPruner(
            min_resource=_half(epochs), max_resource=epochs, reduction_factor=REDUCTION), n_val)
    raise ValueError(f"unknown pruner {kind!r}: one of {', '.join(KINDS)}")


def first_rung(kind: str, epochs: int) -> int | None:
    """The first epoch at which the pruner may stop a trial; None when it never does."""
    return None if kind == "none" else _half(epochs)


def _half(epochs: int) -> int:
    """Hyperband's smallest rung: half the schedule (see make_pruner)."""
    return max(1, epochs // 2)


def describe(kind: str, epochs: int, where: str = "") -> str:
    """The end of the search's training-plan line: whether and when a trial may stop early
    (`where`: " of its first training" for a technique that trains more than once)."""
    first = first_rung(kind, epochs)
    if first is None:
        return "no trial stops early (--pruner none)"
    return (f"Hyperband may stop a trial from {first} epoch{'' if first == 1 else 's'}{where}, "
            f"where it is more than {RUNG_Z:g} standard error below the trials kept there")


def difference_se(a: float, b: float, n: int) -> float:
    """One standard error of the difference between two accuracies measured on `n` clips each,
    each smoothed by one right and one wrong clip (Agresti-Caffo) so that a perfect score on 31
    clips is not taken as certain. The two are scored on the same clips, but by models trained
    with their own seeds, whose spread the clip count alone does not show; the unpaired error
    is the cautious one."""
    def variance(p: float) -> float:
        q = (p * n + 1) / (n + 2)
        return q * (1 - q) / (n + 2)
    return math.sqrt(variance(a) + variance(b))


def rung_bar(values: Sequence[float], reduction: int = REDUCTION) -> float:
    """The lowest value Hyperband's rung keeps among `values` (every trial's at the rung, the
    one asking included): the top 1/`reduction` of them, at least one (as Optuna's
    SuccessiveHalvingPruner ranks them)."""
    keep = max(1, len(values) // reduction)
    return sorted(values, reverse=True)[keep - 1]


@dataclass(frozen=True)
class RungGap:
    """Why a trial was stopped at Hyperband's rung: how far it was below what the rung kept."""

    epoch: int
    value: float
    bar: float
    margin: float  # RUNG_Z standard errors of the difference
    n_val: int

    def reason(self) -> str:
        """The trial's stop_reason."""
        return (f"epoch {self.epoch}: val acc {self.value:.3f}, stopped by Hyperband: below the "
                f"{self.bar:.3f} its rung keeps by more than the noise on {self.n_val} clips "
                f"({self.margin:.3f})")


class NoiseTolerant(optuna.pruners.BasePruner):
    """Hyperband whose stop stands only where the trial is clearly behind the trials it keeps.

    Hyperband keeps the top third at its rung whatever the gap: on 31 validation clips it stops
    a trial one clip behind, and one clip is noise (RUNG_Z). Here a trial Hyperband would stop
    goes on unless its value is more than RUNG_Z standard errors of the difference
    (difference_se) below the rung's bar (rung_bar); on a few hundred clips that is a few
    points, so large validation sets keep nearly all of Hyperband's saving. A trial that goes on
    has passed the only rung (it sits at half the schedule) and trains to the end. What it does
    not fix: a rung whose accuracy does not predict the final value (fsdd at a starved 10 epochs,
    Spearman -0.24: both rungs stopped two of the top three; docs/BENCHMARKS.md).
    """

    def __init__(self, inner: optuna.pruners.BasePruner, n_val: int,
                 reduction: int = REDUCTION, z: float = RUNG_Z) -> None:
        self.inner = inner
        self.n_val = n_val
        self.reduction = reduction
        self.z = z
        self.gaps: dict[int, RungGap] = {}  # trial number -> why it was stopped

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        if not self.inner.prune(study, trial):
            return False
        gap = self.gap(study, trial)
        if gap is not None:
            self.gaps[trial.number] = gap
        return gap is not None

    def gap(self, study: optuna.study.Study, trial: FrozenTrial) -> RungGap | None:
        """How far `trial` is below the rung's bar at its last epoch, or None when that is
        within the noise."""
        step = trial.last_step
        if step is None:
            return None
        value = trial.intermediate_values[step]
        values = [t.intermediate_values[step] for t in study.get_trials(deepcopy=False)
                  if t.number != trial.number and step in t.intermediate_values
                  and not math.isnan(t.intermediate_values[step])]  # a diverged trial's
        if math.isnan(value):
            return RungGap(step, value, rung_bar([*values, 0.0], self.reduction), 0.0,
                           self.n_val)
        bar = rung_bar([*values, value], self.reduction)
        margin = self.z * difference_se(bar, value, self.n_val)
        if bar - value > margin + _TIE:
            return RungGap(step, value, bar, margin, self.n_val)
        return None

    def reason(self, number: int, epoch: int, value: float) -> str:
        """Why trial `number` was stopped (its RungGap's reason, or Hyperband's bare stop)."""
        gap = self.gaps.get(number)
        if gap is not None and gap.epoch == epoch:
            return gap.reason()
        return _bare(epoch, value)


def stop_reason(pruner: optuna.pruners.BasePruner, number: int, epoch: int, value: float) -> str:
    """Why the search's pruner stopped trial `number` at `epoch` (its `stop_reason`)."""
    if isinstance(pruner, NoiseTolerant):
        return pruner.reason(number, epoch, value)
    return _bare(epoch, value)


def _bare(epoch: int, value: float) -> str:
    return f"epoch {epoch}: val acc {value:.3f}, stopped by Hyperband"



def fold_ceiling(accuracies: Sequence[float], n_val: Sequence[int]) -> float:
    """The highest cross-validated value a trial can still reach once the first
    `len(accuracies)` of its folds (with `n_val` validation clips each, all folds) are scored:
    every clip of the remaining folds classified right. The value is clip-weighted (cv.CvScore)."""
    done = len(accuracies)
    right = sum(a * n for a, n in zip(accuracies, n_val[:done], strict=True))
    return (right + sum(n_val[done:])) / sum(n_val)


def entry_bar(values: Sequence[float], top: int) -> float | None:
    """The value a trial must reach to enter the best `top` of finished trials with `values`;
    None while fewer than `top` have finished (every trial can still enter)."""
    if top < 1 or len(values) < top:
        return None
    return sorted(values, reverse=True)[top - 1]


def hopeless(accuracies: Sequence[float], n_val: Sequence[int], values: Sequence[float],
             top: int) -> str | None:
    """Why a cross-validated trial can stop after its scored folds, or None when it cannot.

    It stops when even a perfect score on its remaining folds leaves it below the `top`-th best
    finished trial (`values`): confirmation retrains only the best `top` (the pick comes from
    them; without confirmation `top` is 1), so its remaining folds could not change the pick.
    Unlike Hyperband's rung this risks nothing; what it saves is the remaining folds of trials
    that are clearly worse, most on datasets where the best trials score high (office16: a trial
    at 80 % behind a best of 95 % stops after 2 of 5 folds).
    """
    if len(accuracies) >= len(n_val):
        return None
    bar = entry_bar(values, top)
    ceiling = fold_ceiling(accuracies, n_val)
    if bar is None or ceiling >= bar - _TIE:
        return None
    rank = "the best trial" if top == 1 else f"the {_ordinal(top)} best"
    return (f"fold {len(accuracies)} of {len(n_val)}: at most {ceiling:.4f} with every "
            f"remaining clip right, below {rank} ({bar:.4f})")


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
