"""The trial and study schema: every attribute asc-auto stores in an Optuna study, in one place.

Optuna keeps them as string-keyed user attributes; here they are typed records whose field
names *are* the stored names (`to_attrs` writes them, `from_trial`/`from_study` read them), so
studies written by earlier versions load unchanged. Attributes a record does not name (what a
technique adds: `Candidate.info`, `Outcome.info`, its `prepare`/`after_search` results)
travel in `extra`.

The lowest of the house's modules that know Optuna: search writes these records; retrain,
export, report, plots, summary, the CLI and the techniques read them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial

# TrialRecord.source: the space file's [paper] point (enqueued as trial 0), one of its
# [[portfolio]] entries (portfolio.py: enqueued after it), a row of the initial design (design.py:
# enqueued after those), or one TPE sampled.
PAPER = "paper"
PORTFOLIO = "portfolio"
DESIGN = "design"
SEARCH = "search"
ENQUEUED = (PAPER, PORTFOLIO, DESIGN)  # the sources shown beside a trial's number

# A cross-validated confirmation run's fold accuracies as each fold ends (search.rescore): one
# study attribute per (trial, seed index), so processes confirming side by side never share one.
CONFIRM_FOLDS = "confirmation_folds_{trial}_{seed}"
_CONFIRM_FOLDS_RE = re.compile(r"confirmation_folds_(\d+)_(\d+)")


def confirm_folds(attrs: Mapping[str, Any]) -> dict[tuple[int, int], list[float]]:
    """Every confirmation run's recorded folds in a study's attributes, by (trial, seed)."""
    out = {}
    for key, value in attrs.items():
        if (m := _CONFIRM_FOLDS_RE.fullmatch(key)) and isinstance(value, list):
            out[(int(m[1]), int(m[2]))] = [float(a) for a in value]
    return out


# Optuna constraint names (`Trial.set_constraint`); a value <= 0 is feasible.
SIZE_CONSTRAINT = "size_bytes_over_budget"
MACS_CONSTRAINT = "macs_over_limit"  # set only under a MACs limit


def _from_attrs(cls: type[Any], attrs: Mapping[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
    return cls(**{k: v for k, v in attrs.items() if k in names},
               extra={k: v for k, v in attrs.items() if k not in names})


def _to_attrs(record: Any, names: Iterable[str] | None) -> dict[str, Any]:
    """The named fields (None included) or every field that is set, then `extra`."""
    if names is not None:
        out = {name: getattr(record, name) for name in names}
    else:
        out = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)
               if f.name != "extra" and getattr(record, f.name) is not None}
    return {**out, **record.extra}


@dataclass(frozen=True)
class TrialRecord:
    """What one trial stores. None: not recorded (yet), e.g. sizes of a trial that failed early,
    or results of one never trained."""

    source: str | None = None  # PAPER, PORTFOLIO, DESIGN or SEARCH
    portfolio: str | None = None  # the [[portfolio]] entry's name (source PORTFOLIO)
    config: dict[str, Any] | None = None  # the sampled configuration (simplex weights normalised)
    # Sized before training (the `SIZING` fields):
    precision: str | None = None
    rule: str | None = None
    size_kb: float | None = None
    size_bytes: int | None = None
    params: int | None = None
    counted_params: int | None = None
    macs: int | None = None
    budget_kb: float | None = None
    max_mmacs: float | None = None
    feasible: bool | None = None
    # While and after training:
    val_history: list[float] | None = None
    cv_accuracies: list[float] | None = None
    # Each finished fold's accuracies, trained size, seconds and technique results (one dict per
    # fold, fold_resume.DETAIL_KEYS), recorded as it ends: what a resumed trial takes over.
    cv_details: list[dict[str, Any]] | None = None
    resumed_from: int | None = None  # the interrupted trial whose finished folds it took
    folds_reused: int | None = None  # how many of them (the rest it trained itself)
    seed_trial: int | None = None  # whose number seeds its trainings, when not its own
    size_kb_trained: float | None = None
    accuracy_fp32: float | None = None
    value_se: float | None = None  # the value's standard error (cross-validation's own)
    train_seconds: float | None = None
    forward_backward_seconds: float | None = None
    trial_seconds: float | None = None
    fail_reason: str | None = None
    stop_reason: str | None = None  # why a trial stopped early (PRUNED after training began)
    worker: dict[str, Any] | None = None  # host, pid, start time of the process running it
    run: str | None = None  # the `search --jobs` run that started it (its workers share --trials)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> TrialRecord:
        return _from_attrs(cls, attrs)

    @classmethod
    def from_trial(cls, trial: FrozenTrial | optuna.Trial) -> TrialRecord:
        return cls.from_attrs(trial.user_attrs)

    def to_attrs(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """Stored attributes: the named fields (None included) or all that are set; + extra."""
        return _to_attrs(self, names)

    def write(self, trial: optuna.Trial, names: Iterable[str] | None = None) -> None:
        """Store `to_attrs(names)` on a running trial."""
        for key, value in self.to_attrs(names).items():
            trial.set_user_attr(key, value)

    @property
    def is_paper(self) -> bool:
        return self.source == PAPER


def source_text(record: TrialRecord) -> str:
    """How a trial's source is shown beside its number: "paper", "design", "portfolio NAME"."""
    if record.source == PORTFOLIO and record.portfolio:
        return f"{PORTFOLIO} {record.portfolio}"
    return str(record.source)


# What a trial records when it is sized, before any training (written together, None included).
SIZING = ("precision", "rule", "size_kb", "size_bytes", "params", "counted_params", "macs",
          "budget_kb", "max_mmacs", "feasible")
# What a trained trial records after `fit`.
TRAINED = ("size_kb_trained", "accuracy_fp32", "value_se", "train_seconds",
           "forward_backward_seconds", "trial_seconds")


@dataclass(frozen=True)
class StudyRecord:
    """What one study stores: what it fixed at creation (`RESUME` fields), what it ran on, and
    what later commands added (retrain, confirmation)."""

    technique: str | None = None
    rule: str | None = None
    budget_kb: float | None = None
    max_mmacs: float | None = None
    split_seed: int | None = None
    val_fraction: float | None = None
    overrides: dict[str, dict[str, Any]] | None = None
    epochs: int | None = None
    # Clips one search training sees (its epochs x the clips of its fold or split): what retrain
    # and teacher-logits train, epochs derived (train.epochs_to_see). None: a study made before
    # it was recorded, retrained with its `epochs`.
    clips_seen: int | None = None
    data_sha256: str | None = None  # the dataset's CSVs and files' content (data/tau.py)
    data_fingerprint: str | None = None  # what studies before content hashing recorded (times)
    space_sha256: str | None = None
    sources_sha256: dict[str, Any] | None = None
    cv_folds: int | None = None
    epoch_scale: str | None = None  # Technique.epoch_scale: what the pruner compares
    fit_version: int | None = None  # Technique.fit_version: how its trials trained (None: 0)
    uid: str | None = None  # tells this study from another of the same name
    data: str | None = None  # the dataset folder
    labels: list[str] | None = None
    space_file: str | None = None
    demo: bool | None = None
    train_clips: int | None = None
    val_clips: int | None = None
    sources: dict[str, Any] | None = None  # --init-from / --teacher files, by path and sha256
    retrain: dict[str, Any] | None = None  # the latest retrain's summary (RetrainResult.summary)
    # Each retrained trial's latest summary, by trial number ("3"): export takes the pick's, not
    # whichever trial was retrained last (`retrain --trial 0` after the pick's, to compare).
    retrains: dict[str, Any] | None = None
    confirmation: dict[str, Any] | None = None  # confirm.py's record
    confirming: dict[str, Any] | None = None  # confirm.claim: which worker confirms
    initial_design: dict[str, Any] | None = None  # design.py: kind, rows, rows left out
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> StudyRecord:
        return _from_attrs(cls, attrs)

    @classmethod
    def from_study(cls, study: optuna.Study) -> StudyRecord:
        return cls.from_attrs(study.user_attrs)

    def to_attrs(self, names: Iterable[str] | None = None) -> dict[str, Any]:
        """Stored attributes: the named fields (None included) or all that are set; + extra."""
        return _to_attrs(self, names)

    def write(self, study: optuna.Study, names: Iterable[str] | None = None) -> None:
        """Store `to_attrs(names)` on the study."""
        for key, value in self.to_attrs(names).items():
            study.set_user_attr(key, value)

    def retrain_of(self, trial: int | None) -> dict[str, Any] | None:
        """`trial`'s retrain summary when it was retrained, else the latest (None: none). Why:
        tables show the pick's retrain, not whichever trial was retrained last (the paper
        configuration, retrained after the pick to compare them)."""
        found = (self.retrains or {}).get(str(trial)) if trial is not None else None
        return found or self.retrain

    @property
    def data_key(self) -> str | None:
        """What tells one dataset from another: its content hash (older studies: fingerprint)."""
        return self.data_sha256 or self.data_fingerprint

    @property
    def val_clip_count(self) -> int | None:
        """Clips of the validation split (what a value's standard error is computed on)."""
        return int(self.val_clips) if self.val_clips else None
