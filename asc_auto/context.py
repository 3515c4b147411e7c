"""What every trial of one search shares: data, features, split, space, training settings, rule.

Kept apart from the technique contract so shared services (the KD teacher cache) can use it
without importing the techniques.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from asc_auto.compress.size import SizeRule
from asc_auto.data.tau import TauDataset
from asc_auto.features.cache import FeatureSet
from asc_auto.space import SearchSpace
from asc_auto.train import TrainConfig


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
