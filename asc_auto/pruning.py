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

from collections.abc import Sequence

import optuna

#: `--pruner` values: `hyperband` stops trials at half the schedule when they rank in the
#: bottom two thirds there; `none` trains every trial to the end.
KINDS = ("hyperband", "none")


def make_pruner(kind: str, epochs: int) -> optuna.pruners.BasePruner:
    """The pruner a search runs with, for a schedule of `epochs` epochs per trial.

    Hyperband's smallest rung is half the schedule: earlier, accuracies rank noise. Measured on
    fsdd (kd, 10 epochs, 24-trial search, 2026-12-01): the 7 trials that ran 9 epochs had a
    Spearman correlation with their epoch-9 accuracy of 0.31, 0.14, 0.32, 0.16 at epochs 1-4
    (most at chance, 0.1: the later best, 0.74, had 0.17) and 0.82, 0.96, 0.77, 0.96 at 5-8; the
    earlier smallest rung, a ninth (epoch 1), stopped 7 trials at chance level.

    What the rung costs, measured on the same fsdd kd search with this rung (2026-12-01,
    benchmarks/pruned_replay.py, README "Benchmarks"): the four trials with the highest
    accuracy among the 14 it had stopped, trained to the end with another seed, finished at
    0.43-0.57, below the four best finished trials (0.64-0.73); it saved 85 of 240
    epochs. So Hyperband is the default, `none` the choice of a user who prefers the cost.
    """
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=_half(epochs),
                                              max_resource=epochs, reduction_factor=3)
    raise ValueError(f"unknown pruner {kind!r}: one of {', '.join(KINDS)}")


def first_rung(kind: str, epochs: int) -> int | None:
    """The first epoch at which the pruner may stop a trial; None when it never does."""
    return None if kind == "none" else _half(epochs)


def _half(epochs: int) -> int:
    """Hyperband's smallest rung: half the schedule (see make_pruner)."""
    return max(1, epochs // 2)


def describe(kind: str, epochs: int) -> str:
    """The end of the search's training-plan line: whether and when a trial may stop early."""
    first = first_rung(kind, epochs)
    if first is None:
        return "no trial stops early (--pruner none)"
    return f"Hyperband may stop a trial from {first} epoch{'' if first == 1 else 's'}"


# A float's rounding must not stop a trial that ties the bar (a tie goes to the smaller model).
_TIE = 1e-9


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
