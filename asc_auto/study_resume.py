"""What a resumed study must keep, and what it runs again.

A study fixes its split, size rule, budget, data, space and training procedure at creation; a run
that differs in any of them would mix trials that cannot be compared, so it is refused
(`check_resume`). What a stopped run left undone, the paper trial and the initial design's
rows, is enqueued again (`paper_pending`, `lost_design_rows`).
"""

from __future__ import annotations

from typing import Any

import optuna

from asc_auto.data.tau import TauDataset, stat_fingerprint
from asc_auto.errors import UsageError
from asc_auto.records import ALIVE, tried
from asc_auto.schema import DESIGN, StudyRecord, TrialRecord

# What a study fixes at creation: a resumed run that differs in any of these would mix trials
# that cannot be compared. Attribute -> how the refusal names it.
RESUME_KEYS = {
    "technique": "technique (--technique)", "rule": "size rule (--rule)",
    "budget_kb": "budget (--budget-kb)", "max_mmacs": "MACs limit (--max-mmacs)",
    "split_seed": "split seed (--seed)",
    "val_fraction": "validation fraction", "overrides": "table overrides (--gcc/--no-gcc)",
    "epochs": "epochs per trial (--epochs or [train] epochs)",
    "data_sha256": "dataset (--data: its CSV files and the content of its audio files)",
    "space_sha256": "search space (--space: its settings, params and paper point)",
    "cv_folds": "cross-validation folds (--cv)",
    "sources_sha256": "starting points (--init-from, --teacher, --teacher-logits: their sha256)",
    "epoch_scale": "epoch scale (what Hyperband's rung compares; lt's moved from the ticket's "
                   "training to its first dense one on 2026-12-03)",
    "fit_version": "training procedure (the technique's fit_version; lt 2: searched sparsity, "
                   "the classifier left unpruned; int8 1: QAT with BatchNorm frozen; int8 2: QAT "
                   "at a hundredth of the rate, without mixup)",
}

# Keys that a study made before they existed must not take silently once it has trials: their
# trials were measured the other way (lt's rung on the ticket's epochs, its classifier pruned),
# so results would mix.
STRICT_NEW_KEYS = frozenset({"epoch_scale", "fit_version"})


# Studies made before content hashing recorded their data by file sizes and times; they are
# checked that way once more, then record the content hash and are checked by it from then on.
LEGACY_DATA_KEY = "data_fingerprint"


def legacy_data(study: optuna.Study, dataset: TauDataset) -> dict[str, Any]:
    attrs = study.user_attrs
    if LEGACY_DATA_KEY in attrs and "data_sha256" not in attrs:
        return {LEGACY_DATA_KEY: stat_fingerprint(dataset)}
    return {}


def check_resume(study: optuna.Study, attrs: dict[str, Any], where: dict[str, str]) -> None:
    """A resumed study must keep everything its trials depend on; else results mix.

    `where` has this run's data folder and space file, named in the refusal beside the study's.
    """
    trials = bool(study.get_trials(deepcopy=False))
    for key, value in attrs.items():
        strict = key in STRICT_NEW_KEYS and value is not None and trials
        if key not in study.user_attrs and not strict:  # new study, key older studies lack
            study.set_user_attr(key, value)
            continue
        old = study.user_attrs.get(key)  # None is a value too: "no MACs limit"
        if old != value:
            what = RESUME_KEYS.get(key) or (
                "dataset (--data: its CSV files, file sizes and times, as studies recorded it "
                "before content hashing)" if key == LEGACY_DATA_KEY else key)
            record = StudyRecord.from_study(study)
            if key in ("data_sha256", LEGACY_DATA_KEY):
                old, value = (f"{record.data} ({old[:12]})", f"{where['data']} ({value[:12]})")
            elif key == "space_sha256":
                old, value = (f"{record.space_file} ({old[:12]})",
                              f"{where['space_file']} ({value[:12]})")
            raise UsageError(
                f"study '{study.study_name}' was created with another {what}: {old!r}, this run "
                f"has {value!r}; fix: run with the study's original settings, or start a new "
                "study with --study NEW_NAME")


def paper_pending(study: optuna.Study) -> bool:
    """True when the paper's trial completed, runs or waits; a failed one is enqueued again.

    Call after `fail_dead_trials`: a RUNNING paper trial of a killed worker must not count.
    """
    return any(TrialRecord.from_trial(t).is_paper and t.state in ALIVE
               for t in study.get_trials(deepcopy=False))


def lost_design_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """The initial design's rows that were stopped, not tried: every trial of the row failed
    without an error of its own (Ctrl-C, a killed worker). Enqueued again on resume, as the
    paper trial is, so an interrupted search still covers what its design set out to cover
    instead of leaving the row to chance. A row whose trial raised an error was tried (its
    `fail_reason` is the result) and would fail again: it is not repeated.

    Call after `fail_dead_trials`. A row is its enqueued params (Optuna's `fixed_params`).
    """
    rows: dict[str, tuple[dict[str, Any], bool]] = {}
    for t in study.get_trials(deepcopy=False):
        record = TrialRecord.from_trial(t)
        if record.source != DESIGN:
            continue
        params = dict(t.system_attrs.get("fixed_params") or t.params)
        key = repr(sorted(params.items()))
        rows[key] = (params, rows.get(key, (params, False))[1] or tried(t))
    return [params for params, tried in rows.values() if not tried]
