"""VGG-style teacher of the seed paper's knowledge-distillation technique.

12 conv3x3-BN-ReLU layers (64..512 channels), 2x2 max-pools after each VGG block, global average
pooling to a 512-d embedding (the vector the student imitates) and a linear classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from asc_auto.models.base import PooledCnn, check_pool
from asc_auto.models.registry import build_config, register_model


@dataclass(frozen=True)
class VggConfig:
    """Teacher architecture; the defaults are the seed paper's Vgg12 shape."""

    # Output channels of each conv3x3 layer, in order; the last one is the embedding size.
    channels: tuple[int, ...] = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512)
    # 0-based conv indices followed by a 2x2 max-pool: the end of each VGG block (2, 2, 4, 4).
    pool_after: tuple[int, ...] = (1, 3, 7, 11)
    in_channels: int = 1  # log-mel planes
    n_classes: int = 3
    dropout: float = 0.3  # before the classifier
    pool: str = "avg"  # global pool: the paper's "avg", or "max" (see models/base.py)

    def __post_init__(self) -> None:
        check_pool(self.pool)
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be non-empty and positive, got {self.channels}")
        bad = [i for i in self.pool_after if not 0 <= i < len(self.channels)]
        if bad:
            raise ValueError(f"pool_after indices {bad} outside 0..{len(self.channels) - 1}")

    def scaled(self, width: float) -> VggConfig:
        """Same depth with every width multiplied by `width` (>= 1 channel): small demo teachers."""
        channels = tuple(max(1, round(c * width)) for c in self.channels)
        return VggConfig(channels, self.pool_after, self.in_channels, self.n_classes, self.dropout,
                         self.pool)


class VggTeacher(PooledCnn):
    """Own nn.Module class (not a bare Sequential) so NNCF and torch-pruning can trace it."""

    def __init__(self, config: VggConfig | None = None) -> None:
        super().__init__()
        self.config = config or VggConfig()
        layers: list[nn.Module] = []
        c_in = self.config.in_channels
        for i, c_out in enumerate(self.config.channels):
            layers += [
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            if i in self.config.pool_after:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            c_in = c_out
        self._set_trunk(nn.Sequential(*layers), c_in, self.config.n_classes, self.config.dropout,
                        self.config.pool)


@register_model("vgg_teacher")
def vgg_teacher(config: VggConfig | None = None, **overrides: Any) -> VggTeacher:
    """Build the teacher; overrides are VggConfig fields (e.g. channels=(16, 16, ...))."""
    return VggTeacher(build_config(VggConfig, config, overrides, "vgg_teacher"))
