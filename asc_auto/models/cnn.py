"""The seed paper's 3-layer CNN student, and the projection used only while distilling into it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from asc_auto.models.base import PooledCnn, check_pool
from asc_auto.models.registry import build_config, register_model


@dataclass(frozen=True)
class StudentConfig:
    """Student architecture: 3 x (conv-BN-ReLU-maxpool 2x2), global average pool, linear.

    The defaults give exactly the paper's 252,713 trainable parameters (convs without bias
    because BN follows, BN affine, Linear 512 -> 3); ending in 512 channels also matches the
    teacher's 512-d embedding, so the default student distils without a projection.
    """

    channels: tuple[int, int, int] = (32, 51, 512)
    kernel_size: int = 3  # odd, "same" padding
    in_channels: int = 1  # log-mel planes
    n_classes: int = 3
    dropout: float = 0.2  # before the classifier
    pool: str = "avg"  # global pool over frequency and time: the paper's "avg", or "max"

    def __post_init__(self) -> None:
        check_pool(self.pool)
        if len(self.channels) != 3 or min(self.channels) < 1:
            raise ValueError(f"channels must be 3 positive ints, got {self.channels}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {self.kernel_size}")


class CnnStudent(PooledCnn):
    """Own nn.Module class (not a bare Sequential) so NNCF and torch-pruning can trace it."""

    def __init__(self, config: StudentConfig | None = None) -> None:
        super().__init__()
        self.config = config or StudentConfig()
        k = self.config.kernel_size
        layers: list[nn.Module] = []
        c_in = self.config.in_channels
        for c_out in self.config.channels:
            layers += [
                nn.Conv2d(c_in, c_out, kernel_size=k, padding=k // 2, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            c_in = c_out
        self._set_trunk(nn.Sequential(*layers), c_in, self.config.n_classes, self.config.dropout,
                        self.config.pool)


class Projection(nn.Module):
    """Maps the student embedding to the teacher's size for the embedding KD term.

    Trained alongside the student but never part of it: not exported, not counted in the size.
    """

    def __init__(self, embed_dim: int, teacher_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(embed_dim, teacher_dim)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.linear(embedding)


@register_model("cnn_student")
def cnn_student(config: StudentConfig | None = None, **overrides: Any) -> CnnStudent:
    """Build the student; overrides are StudentConfig fields (e.g. channels=(16, 32, 64))."""
    return CnnStudent(build_config(StudentConfig, config, overrides, "cnn_student"))
