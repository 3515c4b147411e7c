"""The head every spectrogram CNN here shares: global pool -> embedding -> linear.

Returning the pooled embedding beside the logits is what knowledge distillation needs; keeping
the head in one place keeps state-dict names (`features`, `classifier`) the same for all models.
The global pool is the seed paper's average, or max: short events zero-padded to `clip_seconds`
(office16's median clip is 1.0 s of 3.3 s) are diluted by an average over the padding and not
by a max, which is what the DCASE baseline CNN uses over time.
"""

from __future__ import annotations

import torch
from torch import nn

POOLS = ("avg", "max")


def check_pool(pool: str) -> None:
    """A config's `pool` must be one of POOLS (raised from the configs' __post_init__)."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}")


class PooledCnn(nn.Module):
    """A conv trunk `features` followed by the shared head; forward returns (logits, embedding)."""

    def _set_trunk(self, features: nn.Module, embed_dim: int, n_classes: int,
                   dropout: float, pool: str = "avg") -> None:
        check_pool(pool)
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(embed_dim, n_classes)
        self.embed_dim = embed_dim
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, in_channels, n_mels, T) -> (logits (B, n_classes), embedding (B, embed_dim))."""
        embedding = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(embedding)), embedding
