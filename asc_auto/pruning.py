"""Which trials a search stops early (`search --pruner`), and why the default stops where it does.

A trial reports its validation accuracy after every epoch (fold 0's under cross-validation);
the pruner may stop it there. Stopping saves training time and costs the trials it stops
wrongly, so the choice is a trade measured on real recordings, not a default copied from a
tutorial.
"""
from __future__ import annotations

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
