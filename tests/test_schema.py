"""The trial/study schema: typed records over the attribute names studies already store."""

from __future__ import annotations

import dataclasses

import optuna

from asc_auto.confirm import CONFIRMATION
from asc_auto.schema import (
    PAPER,
    SIZE_CONSTRAINT,
    SIZING,
    TRAINED,
    StudyRecord,
    TrialRecord,
)
from asc_auto.study_resume import RESUME_KEYS

# A trial as earlier versions stored it: the names are a contract with every existing study.
STORED_TRIAL = {
    "source": "paper", "config": {"c1": 4, "lr": 0.003}, "precision": "fp16",
    "rule": "dcase2020", "size_kb": 12.5, "size_bytes": 12_800, "params": 6_400,
    "counted_params": 6_300, "macs": 1_234_567, "budget_kb": 500.0, "feasible": True,
    "channels": [8, 16], "val_history": [0.4, 0.55], "size_kb_trained": 12.25,
    "accuracy_fp32": 0.56, "train_seconds": 3.5, "forward_backward_seconds": 2.25,
    "trial_seconds": 4.0, "use_gcc": True,
}


def _trial_with(attrs: dict) -> optuna.trial.FrozenTrial:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    study.tell(trial, 0.5)
    return study.trials[0]


def test_a_stored_trial_reads_into_typed_fields_and_back() -> None:
    record = TrialRecord.from_trial(_trial_with(STORED_TRIAL))
    assert record.is_paper and record.feasible is True
    assert record.size_kb == 12.5 and record.params == 6_400 and record.macs == 1_234_567
    assert record.config == {"c1": 4, "lr": 0.003} and record.val_history == [0.4, 0.55]
    assert record.extra == {"channels": [8, 16], "use_gcc": True}  # the technique's own info
    assert record.fail_reason is None and record.value_se is None
    assert record.to_attrs() == STORED_TRIAL


def test_writes_use_the_stored_names_and_sizing_keeps_its_nones() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    TrialRecord(source="search").write(trial)
    TrialRecord(precision="int8", rule="params", size_kb=3.0, size_bytes=3072, params=3072,
                counted_params=3072, macs=10, budget_kb=5.0, max_mmacs=None, feasible=True,
                extra={"amount": 0.2}).write(trial, SIZING)
    assert trial.user_attrs == {
        "source": "search", "precision": "int8", "rule": "params", "size_kb": 3.0,
        "size_bytes": 3072, "params": 3072, "counted_params": 3072, "macs": 10,
        "budget_kb": 5.0, "max_mmacs": None, "feasible": True, "amount": 0.2}
    TrialRecord(train_seconds=1.5, extra={"pruned": True}).write(trial)  # only what is set
    assert trial.user_attrs["train_seconds"] == 1.5 and trial.user_attrs["pruned"] is True
    assert "accuracy_fp32" not in trial.user_attrs
    assert set(SIZING).isdisjoint(TRAINED)


def test_a_stored_study_reads_into_typed_fields_and_back() -> None:
    stored = {"technique": "gcc", "rule": "dcase2020", "budget_kb": 500.0, "split_seed": 3,
              "val_fraction": 0.2, "overrides": {"gcc": {"use_gcc": False}}, "epochs": 2,
              "uid": "abc", "data": "/d", "labels": ["a", "b"], "space_file": "/s.toml",
              "demo": False, "train_clips": 40, "val_clips": 12,
              "retrain": {"trial": 1, "mean": 0.5, "std": 0.0},
              "gcc_ablation": {"trial": 1}, "teacher_params": 99}
    study = optuna.create_study()
    for key, value in stored.items():
        study.set_user_attr(key, value)
    record = StudyRecord.from_study(study)
    assert record.technique == "gcc" and record.split_seed == 3 and record.val_clip_count == 12
    assert record.retrain == {"trial": 1, "mean": 0.5, "std": 0.0}
    assert record.extra == {"gcc_ablation": {"trial": 1}, "teacher_params": 99}
    assert record.to_attrs() == stored
    assert StudyRecord(val_clips=0).val_clip_count is None  # unknown, not zero clips


def test_the_stored_names_do_not_change() -> None:
    assert PAPER == "paper" and SIZE_CONSTRAINT == "size_bytes_over_budget"


def test_what_search_writes_by_name_is_in_the_schema() -> None:
    trial_fields = {f.name for f in dataclasses.fields(TrialRecord)}
    study_fields = {f.name for f in dataclasses.fields(StudyRecord)}
    assert set(SIZING) | set(TRAINED) <= trial_fields
    assert set(RESUME_KEYS) <= study_fields and CONFIRMATION in study_fields
