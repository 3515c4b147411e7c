"""The DCASE2020 Task 1b baseline CNN: the reference every technique is compared with.

Task 1b baseline (Heittola et al., DCASE2020): log-mel 40 bands (40 ms window, 20 ms hop), then
conv 32 7x7 - BN - ReLU - maxpool 5x5 - dropout 0.3 - conv 64 7x7 - BN - ReLU - maxpool 4x100 -
dropout 0.3 - flatten - dense 100 - ReLU - dropout 0.3 - dense (classes) - softmax. On 10 s clips
(40 x 500) the second pool leaves 2 x 1 positions (128 values); here that pool is adaptive to
(2, 1), which is identical at 40 x 500 and keeps the head the same size for any clip length.
With 3 classes: 115,411 parameters (BatchNorm affine included), 450.8 KB at FP32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from asc_auto.models.registry import build_config, register_model


@dataclass(frozen=True)
class BaselineConfig:
    """Widths of the baseline; the defaults are the DCASE2020 Task 1b system's."""

    channels: tuple[int, int] = (32, 64)
    kernel_size: int = 7
    pool1: int = 5
    dense: int = 100
    dropout: float = 0.3
    in_channels: int = 1
    n_classes: int = 3

    def __post_init__(self) -> None:
        if len(self.channels) != 2 or min(self.channels) < 1 or self.dense < 1:
            raise ValueError(f"channels must be 2 positive ints and dense >= 1: {self}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {self.kernel_size}")


class BaselineCnn(nn.Module):
    """Two conv blocks and a dense layer; forward returns (logits, the dense embedding)."""

    def __init__(self, config: BaselineConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or BaselineConfig()
        k, (c1, c2) = cfg.kernel_size, cfg.channels
        self.features = nn.Sequential(
            nn.Conv2d(cfg.in_channels, c1, k, padding=k // 2), nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True), nn.MaxPool2d(cfg.pool1, ceil_mode=True),
            nn.Dropout(cfg.dropout),
            nn.Conv2d(c1, c2, k, padding=k // 2), nn.BatchNorm2d(c2), nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool2d((2, 1)), nn.Dropout(cfg.dropout),
        )
        self.embed = nn.Sequential(nn.Linear(2 * c2, cfg.dense), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.dense, cfg.n_classes)
        self.n_classes = cfg.n_classes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, in_channels, n_mels, T) -> (logits (B, n_classes), embedding (B, dense))."""
        embedding = self.embed(self.features(x).flatten(1))
        return self.classifier(self.dropout(embedding)), embedding


@register_model("dcase2020_baseline")
def dcase2020_baseline(config: BaselineConfig | None = None, **overrides: Any) -> BaselineCnn:
    """The DCASE2020 Task 1b baseline; overrides are BaselineConfig fields."""
    return BaselineCnn(build_config(BaselineConfig, config, overrides, "dcase2020_baseline"))
