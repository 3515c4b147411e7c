"""What every trial of one search shares (data, features, split, space, training settings,
rule), and the one builder of it.

`build_context` is the set-up that search, retrain and export share: search gives it its
options, retrain and export a study's recorded settings (`study_context`). Kept apart from the
technique contract so shared services (the KD teacher cache) can use it without importing the
techniques; a technique is passed in as a `FeatureSource`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import optuna
import torch

from asc_auto.compress.size import SizeRule, sized_rule
from asc_auto.data.audio import longest_seconds
from asc_auto.data.splits import train_val_split
from asc_auto.data.tau import TauDataset, dataset_fingerprint, load_dataset
from asc_auto.errors import AscError, UsageError
from asc_auto.features.cache import FeatureSet, build_features
from asc_auto.schema import StudyRecord
from asc_auto.space import (
    SearchSpace,
    SpaceReader,
    default_space_file,
    load_technique_space,
    shipped_spaces,
    space_digest,
)
from asc_auto.train import TrainConfig, epochs_for, epochs_to_see, resolve_device, train_config
from asc_auto.transfer import Sources, pin_space


@dataclass
class TrialContext:
    """Everything a technique needs that is shared by all trials of one search."""

    dataset: TauDataset
    features: FeatureSet
    train_files: tuple[str, ...]
    val_files: tuple[str, ...]
    space: SearchSpace
    train_cfg: TrainConfig
    rule: SizeRule
    cache_root: Path
    progress: bool = True
    status: Callable[[str], None] = field(default=lambda msg: None)
    sources: Sources = field(default_factory=Sources)  # --init-from, --teacher, --teacher-logits

    @property
    def n_classes(self) -> int:
        return len(self.dataset.labels)

    # Held as float16 (as cached): half the memory of float32 (the full TAU train fold of 10 s
    # waveforms is 2.3 GB instead of 4.7 GB); the training loop casts each batch to float32.
    @cached_property
    def train_xy(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features.select(self.train_files, dtype=torch.float16)

    @cached_property
    def val_xy(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features.select(self.val_files, dtype=torch.float16)

    def example_input(self) -> torch.Tensor:
        """One clip's features (batch of 1): what MACs are counted on."""
        return self.train_xy[0][:1].float()

    def split_digest(self) -> str:
        """Identifies the train/validation split, for keys of caches derived from it."""
        blob = json.dumps([self.features.key, self.train_files, self.val_files]).encode()
        return hashlib.sha256(blob).hexdigest()


class FeatureSource(SpaceReader, Protocol):
    """What the builder needs of a technique: what its space may hold (`SpaceReader`: name,
    extra tables, choices, ranges) and its frontend settings."""

    def feature_config(self, space: SearchSpace) -> Any: ...

    def with_sources(self, space: SearchSpace, sources: Sources) -> SearchSpace: ...

    def settle(self, space: SearchSpace, dataset: TauDataset,
               status: Callable[[str], None]) -> SearchSpace: ...


@dataclass(frozen=True)
class ContextSettings:
    """What a `TrialContext` is built from: a search's options, or a study's recorded settings."""

    data: Path  # the dataset folder (the demo's, already generated, when `demo`)
    space_file: Path
    rule: str
    budget_kb: float | None  # None: the rule's own limit
    home: Path  # caches live under home/cache
    max_mmacs: float | None = None  # MACs limit in millions; None: the rule's own (or none)
    demo: bool = False  # apply the space file's [demo.*] tables
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # table values
    epochs: int | None = None  # None: [train] epochs (raised by min_clips_seen), or clips_seen
    # Retrain, export: the clips each search training saw (StudyRecord.clips_seen); with epochs
    # None the epochs are those that see as many on these training clips.
    clips_seen: int | None = None
    seed: int | None = None  # the training seed; None keeps [train] seed
    device: str = "auto"
    progress: bool = True
    # Validation: this fraction of fold1_train, grouped and seeded with `split_seed`; None:
    # train on all of fold1_train and score on the evaluate fold (retrain, export).
    val_fraction: float | None = 0.2
    split_seed: int = 0
    sources: Sources = field(default_factory=Sources)  # what trials start from (transfer.py)
    # A study's recorded digests (retrain, export): the space and data must still give them.
    study: StudyRecord | None = None
    study_name: str = ""
    # The study's space file where it is gone (another checkout, a GPU machine running from
    # source elsewhere, an upgrade): `space_file` is then the shipped space of its name or
    # technique (`study_context`), accepted when it is the same space by digest (`_check_study`).
    space_gone: Path | None = None


def _check_study(s: ContextSettings, space: SearchSpace, dataset: TauDataset,
                 status: Callable[[str], None]) -> None:
    """Retrain and export train what the search validated, or refuse: a space file edited
    since (or a shipped space changed by an update) or other audio would train something else
    under the study's name."""
    if s.study is None:
        return
    fix = "; fix: restore it as the search had it, or search again under a new --study"
    recorded = s.study.space_sha256
    now = space_digest(space)
    if s.space_gone is not None:
        if not recorded or recorded != now:
            raise UsageError(
                f"study '{s.study_name}': its search space file {s.space_gone} is gone, and the "
                f"shipped {s.space_file} is not that space (digest "
                f"{(recorded or 'not recorded')[:12]}, shipped {now[:12]}); fix: restore "
                f"{s.space_gone} as the search had it, or search again under a new --study")
        status(f"the study's search space file {s.space_gone} is gone: using the shipped "
               f"{s.space_file}, the same space (digest {now[:12]})")
    if recorded and recorded != now:
        raise UsageError(
            f"study '{s.study_name}' was searched with another search space than {s.space_file} "
            f"gives now (digest {recorded[:12]}, now {now[:12]}: the file was edited, or an "
            f"asc-auto update changed a shipped space){fix}")
    recorded = s.study.data_sha256
    if recorded:
        now = dataset_fingerprint(dataset, s.home / "cache", status)
        if recorded != now:
            raise UsageError(
                f"study '{s.study_name}' was searched on other data than {s.data} holds now "
                f"(content {recorded[:12]}, now {now[:12]}){fix}")


def build_context(technique: FeatureSource, settings: ContextSettings,
                  status: Callable[[str], None] = print) -> TrialContext:
    """Load space, dataset and features; split; settle the training settings and the rule."""
    s = settings
    space = load_technique_space(s.space_file, technique)
    if s.demo:
        space = space.for_demo()
    space = pin_space(space.with_overrides(dict(s.overrides)), s.sources.pinned)
    space = technique.with_sources(space, s.sources)
    dataset = load_dataset(s.data)
    space = space.with_clip_seconds(lambda: longest_seconds(dataset.clip_paths()))
    space = technique.settle(space, dataset, status)
    _check_study(s, space, dataset, status)
    features = build_features(dataset, technique.feature_config(space),
                              s.home / "cache" / "features", progress=s.progress,
                              device=str(resolve_device(s.device)), status=status,
                              hash_dir=s.home / "cache")
    if s.val_fraction is None:
        train, val = dataset.train, dataset.evaluate
    else:
        train, val = train_val_split(dataset.train, s.val_fraction, seed=s.split_seed)
    tcfg = train_config(space.train, str(space.file))
    epochs = s.epochs or (epochs_to_see(s.clips_seen, len(train)) if s.clips_seen
                          else epochs_for(tcfg.epochs, tcfg.min_clips_seen, len(train)))
    tcfg = dataclasses.replace(tcfg, epochs=epochs, device=s.device)
    if s.seed is not None:
        tcfg = dataclasses.replace(tcfg, seed=s.seed)
    return TrialContext(
        dataset=dataset, features=features,
        train_files=tuple(c.filename for c in train), val_files=tuple(c.filename for c in val),
        space=space, train_cfg=tcfg, rule=sized_rule(s.rule, s.budget_kb, s.max_mmacs),
        cache_root=s.home / "cache", progress=s.progress, status=status, sources=s.sources,
    )


def study_context(study: optuna.Study, technique: FeatureSource, home: Path,
                  epochs: int | None, device: str, progress: bool,
                  status: Callable[[str], None], data: Path | None = None) -> TrialContext:
    """Whole fold1_train for training, the evaluate fold for scoring; the study's own settings
    (data, space, demo profile, table overrides, rule, budget, MACs limit). `epochs` None: those
    that see the clips each search training saw (`clips_seen`; a study made before it was
    recorded: the search's epochs). `data`: the study's dataset at another place (moved, or
    staged to a job's disk), accepted when its content is the study's."""
    record = StudyRecord.from_study(study)
    for key in ("data", "space_file", "rule", "budget_kb"):
        if getattr(record, key) is None:
            raise AscError(f"study '{study.study_name}' lacks '{key}' (not made by asc-auto "
                           "search?); fix: retrain a study that asc-auto search created")
    if data is not None and record.data_sha256 is None:
        raise UsageError(f"study '{study.study_name}' was made before datasets were recorded by "
                         f"content, so {data} cannot be checked against it; fix: leave out "
                         f"--data (the study's dataset is {record.data})")
    space_file = Path(str(record.space_file))
    gone = not space_file.exists()
    return build_context(technique, ContextSettings(
        data=Path(str(record.data)) if data is None else Path(data),
        # a shipped space of that name (kd-small.toml), else the technique's own
        space_file=default_space_file(space_file.stem if space_file.stem in shipped_spaces()
                                      else technique.name) if gone else space_file,
        space_gone=space_file if gone else None,
        rule=str(record.rule), budget_kb=float(record.budget_kb or 0.0),
        max_mmacs=record.max_mmacs, home=home, demo=bool(record.demo),
        overrides=record.overrides or {},
        epochs=epochs or (int(record.epochs) if record.epochs is not None and not record.clips_seen
                          else None),
        clips_seen=record.clips_seen,
        device=device, progress=progress, val_fraction=None,
        sources=Sources.from_attrs(record.sources), study=record,
        study_name=study.study_name), status)
