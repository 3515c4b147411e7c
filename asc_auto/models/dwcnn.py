"""The seed paper's GCC-gram CNN: five depthwise-separable conv blocks and a linear classifier."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from asc_auto.models.registry import build_config, register_model


@dataclass(frozen=True)
class DwCnnConfig:
    """5 x (depthwise kxk-BN-ReLU, pointwise 1x1-BN-ReLU, maxpool 2x2), global average pool, linear.

    The paper gives the shape (5 depthwise-separable layers, BN, ReLU, max-pooling, FC) and the
    total, 252,491 parameters, but not the widths. The default widths are a reconstruction that
    lands on 252,516 (0.01 % off) with a smooth growth: convs without bias (BN follows), BN
    affine after both the depthwise and the pointwise conv, Linear 448 -> 3.
    """

    channels: tuple[int, ...] = (48, 96, 224, 320, 448)  # pointwise outputs of the 5 blocks
    kernel_size: int = 3  # depthwise kernel, odd, "same" padding
    in_channels: int = 3  # log-mel left, log-mel right, GCC-gram
    n_classes: int = 3
    dropout: float = 0.2  # before the classifier

    def __post_init__(self) -> None:
        if len(self.channels) != 5 or min(self.channels) < 1:
            raise ValueError(f"channels must be 5 positive ints, got {self.channels}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {self.kernel_size}")
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels}")


class SeparableBlock(nn.Module):
    """Depthwise conv (one filter per input plane) then a 1x1 conv mixing planes; pooled 2x2."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, kernel_size, padding=kernel_size // 2,
                                   groups=c_in, bias=False)
        self.bn_dw = nn.BatchNorm2d(c_in)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn_pw = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn_dw(self.depthwise(x)))
        return self.pool(self.relu(self.bn_pw(self.pointwise(x))))


class DwCnn(nn.Module):
    """Own nn.Module class (not a bare Sequential) so NNCF and torch-pruning can trace it."""

    def __init__(self, config: DwCnnConfig | None = None) -> None:
        super().__init__()
        self.config = config or DwCnnConfig()
        blocks: list[nn.Module] = []
        c_in = self.config.in_channels
        for c_out in self.config.channels:
            blocks.append(SeparableBlock(c_in, c_out, self.config.kernel_size))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(self.config.dropout)
        self.classifier = nn.Linear(c_in, self.config.n_classes)
        self.embed_dim = c_in
        self.n_classes = self.config.n_classes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, in_channels, F, T) -> (logits (B, n_classes), embedding (B, embed_dim))."""
        embedding = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(embedding)), embedding


@register_model("dwcnn")
def dwcnn(config: DwCnnConfig | None = None, **overrides: Any) -> DwCnn:
    """Build the depthwise CNN; overrides are DwCnnConfig fields (e.g. in_channels=2)."""
    return DwCnn(build_config(DwCnnConfig, config, overrides, "dwcnn"))
