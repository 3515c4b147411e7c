"""What a study records about its trials, and how the tool reads it back.

Low in the house (it needs only Optuna, errors and the schema), so retrain, export and the
techniques' after-search steps pick trials without importing the search driver or the report.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from asc_auto.confirm import confirmed_best
from asc_auto.errors import AscError
from asc_auto.schema import StudyRecord, TrialRecord

#: A trial in these states ran, runs or will run: an enqueued point (the paper's, a portfolio
#: entry, a design row) in one of them is not enqueued again. PRUNED: over the limit or stopped
#: by the pruner, done for good (the paper's and the portfolio's trials are never pruned by
#: Hyperband).
ALIVE = frozenset({TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING,
                   TrialState.WAITING})


def tried(trial: FrozenTrial) -> bool:
    """Whether an enqueued point's trial settles it: it ran, runs or waits, or failed with an
    error of its own (it would fail again). One stopped by Ctrl-C or a killed worker (FAIL
    without a `fail_reason`) was not tried, and is enqueued again on resume."""
    return trial.state in ALIVE or TrialRecord.from_trial(trial).fail_reason is not None


def counts_toward_budget(trial: FrozenTrial) -> bool:
    """Whether a finished trial is one of `--trials`: every trial but a proposal sized over the
    limit, which is recorded (TPE learns from it) but took milliseconds and trained nothing."""
    return TrialRecord.from_trial(trial).feasible is not False


def feasible_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials inside the size budget, best first (a tie goes to the smaller model)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ok = [t for t in done if TrialRecord.from_trial(t).feasible and t.value is not None]
    return sorted(ok, key=lambda t: (-t.value, TrialRecord.from_trial(t).size_kb or 0.0,
                                     t.number))


def pick_trial(study: optuna.Study, number: int | None = None) -> FrozenTrial:
    """Trial `number`; else the confirmed winner (the top few configurations scored again with
    fresh seeds after the search), else the best feasible trial (a tie goes to the smaller
    model)."""
    if number is None:
        ranked = feasible_trials(study)
        if not ranked:
            raise AscError(f"study '{study.study_name}' has no complete trial within its budget; "
                           "fix: run more trials with `asc-auto search`")
        confirmed = confirmed_best(study)
        return next((t for t in ranked if t.number == confirmed), ranked[0])
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    t = trials.get(number)
    if t is None or t.state != TrialState.COMPLETE or not TrialRecord.from_trial(t).feasible:
        raise AscError(f"trial {number} of study '{study.study_name}' is not a complete trial "
                       "within the budget; fix: pick one listed by `asc-auto show`")
    return t


def retrained_summary(study: optuna.Study, trial: int | None = None) -> dict[str, Any]:
    """Retrain's summary of `trial`, else of the pick (what `retrain` takes by default).

    Why not the latest retrain: comparing the pick with the paper configuration means retraining
    both, and `retrain --trial 0` after the pick's would otherwise make the paper configuration
    what is exported. A study retrained before summaries were kept per trial has its latest."""
    record = StudyRecord.from_study(study)
    fix = f"`asc-auto retrain --study {study.study_name}"
    if not record.retrain:
        raise AscError(f"study '{study.study_name}' has no retrain; fix: run {fix}` first")
    number = pick_trial(study).number if trial is None else trial
    found = record.retrain_of(number)
    if found is not None and found.get("trial") == number:
        return dict(found)
    done = ", ".join(map(str, sorted({int(k) for k in record.retrains or {}}
                                     | {int(record.retrain["trial"])})))
    what = f"trial {trial}" if trial is not None else f"its pick (trial {number})"
    raise AscError(f"study '{study.study_name}': {what} is not retrained (retrained: trial "
                   f"{done}); fix: run {fix} --trial {number}`, or export a retrained one with "
                   "--trial N")
