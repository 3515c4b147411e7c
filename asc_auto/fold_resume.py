"""Resume a trial from the folds an interrupted run of it finished (and, within the fold it was
in, from its last saved epoch: epoch_state.py).

Why: a default-budget trial on a CPU is hours of folds (fsdd int8: 4 folds of about 20 min each
on a 2-core machine), and a killed worker, a Ctrl-C or the end of a session failed the whole
trial: its retry trained every fold again (session 37 lost three finished folds of a design row
that way). A trial whose configuration equals an interrupted one's (FAIL with no reason: a
killed worker, Ctrl-C; not an exception, whose folds may come from the bug that raised it) takes
that trial's recorded folds and trains only the rest, from the same seeds (the interrupted
trial's number), so it scores what the uninterrupted trial would have.

What a fold records while the trial runs (`TrialRecord.cv_accuracies`, `cv_details`) is what
is reused; a trial stored before `cv_details` existed gives its accuracies only, and the
aggregates it lacks (FP32 accuracy, training seconds) are left unrecorded rather than averaged
over a subset of folds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from asc_auto.schema import TrialRecord

# Per-fold details a trial records as each fold ends (TrialRecord.cv_details), by these keys.
DETAIL_KEYS = ("accuracy", "accuracy_fp32", "size_kb_trained", "size_bytes_trained",
               "train_seconds", "forward_backward_seconds", "info")


@dataclasses.dataclass(frozen=True)
class Resumed:
    """The folds a trial takes from an interrupted run of its configuration."""

    trial: int  # the interrupted trial's number
    seed_trial: int  # whose seeds every fold uses (a resume of a resume keeps the first's)
    accuracies: tuple[float, ...]  # its finished folds, in order
    details: tuple[dict[str, Any] | None, ...]  # per fold; None where it did not record them
    val_history: tuple[float, ...]  # fold 0's epochs, as recorded (4 decimals)
    reports: tuple[tuple[int, float], ...]  # the same: Optuna's intermediate values, exact

    @property
    def folds(self) -> int:
        return len(self.accuracies)

    def text(self, trial: int) -> str:
        if not self.folds:
            return (f"trial {trial} resumes interrupted trial {self.trial}, the same "
                    "configuration: no fold finished; trained from its seeds, from the last "
                    "epoch it saved")
        accs = ", ".join(f"{a:.4f}" for a in self.accuracies)
        return (f"trial {trial} resumes interrupted trial {self.trial}, the same configuration: "
                f"fold{'s' if self.folds > 1 else ''} 1"
                + (f"-{self.folds}" if self.folds > 1 else "")
                + f" as it recorded them ({accs}), the rest trained from its seeds")


def interrupted(trial: FrozenTrial) -> bool:
    """FAIL without a reason: its worker was killed or stopped, not its configuration."""
    return trial.state == TrialState.FAIL and TrialRecord.from_trial(trial).fail_reason is None


def find(study: optuna.Study, number: int, params: dict[str, Any], n_folds: int
         ) -> Resumed | None:
    """The interrupted trial of `params` with the most finished folds (the latest on a tie)
    that no other live or finished trial resumes already; None when there is none. `n_folds`:
    the search's folds, 1 for a single split. One that finished no fold is taken too: its
    seeds let the training it was in continue from its last saved epoch (epoch_state.py).

    A resume of a resume carries the folds it took, so the latest holds them all."""
    if n_folds < 1:
        return None
    trials = study.get_trials(deepcopy=False)
    taken = {TrialRecord.from_trial(t).resumed_from for t in trials
             if t.number != number and not interrupted(t)}
    best: FrozenTrial | None = None
    most = 0  # finished folds of the best so far
    for t in trials:
        if t.number == number or t.number in taken or not interrupted(t) or t.params != params:
            continue
        done = len(TrialRecord.from_trial(t).cv_accuracies or [])
        if done < n_folds and done >= most:
            best, most = t, done
    if best is None:
        return None
    record = TrialRecord.from_trial(best)
    accs = tuple(float(a) for a in record.cv_accuracies or ())
    details = list(record.cv_details or [])[:len(accs)]
    details += [None] * (len(accs) - len(details))
    return Resumed(trial=best.number,
                   seed_trial=best.number if record.seed_trial is None else record.seed_trial,
                   accuracies=accs, details=tuple(details),
                   val_history=tuple(record.val_history or ()),
                   reports=tuple(sorted(best.intermediate_values.items())))


def detail(accuracy: float, accuracy_fp32: float, size_kb: float, size_bytes: int,
           train_seconds: float, forward_backward_seconds: float, info: dict[str, Any]
           ) -> dict[str, Any]:
    """One fold's record (DETAIL_KEYS), rounded as the trial's own fields are."""
    return {"accuracy": round(accuracy, 4), "accuracy_fp32": round(accuracy_fp32, 4),
            "size_kb_trained": round(size_kb, 2), "size_bytes_trained": int(size_bytes),
            "train_seconds": round(train_seconds, 2),
            "forward_backward_seconds": round(forward_backward_seconds, 2), "info": dict(info)}


def exact(recorded: float, n_clips: int) -> float:
    """The clip share k/n that `recorded` (rounded to 4 decimals) was, when one is that close;
    so a resumed trial's mean is the uninterrupted trial's to the last digit."""
    share = round(recorded * n_clips) / n_clips if n_clips > 0 else recorded
    return share if abs(share - recorded) <= 5e-5 + 1e-12 else recorded


def combined(details: Sequence[dict[str, Any] | None], key: str, how: str) -> float | None:
    """`key` over every fold ("mean" or "sum"; "max" for sizes), None if a fold lacks it."""
    values = [d.get(key) if d else None for d in details]
    if not values or any(v is None for v in values):
        return None
    if how == "sum":
        return float(sum(values))
    if how == "max":
        return float(max(values))
    return float(sum(values) / len(values))
