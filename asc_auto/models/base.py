"""The head every spectrogram CNN here shares: global average pool -> embedding -> linear.

Returning the pooled embedding beside the logits is what knowledge distillation needs; keeping
the head in one place keeps state-dict names (`features`, `classifier`) the same for all models.
"""

from __future__ import annotations

import torch
from torch import nn


class PooledCnn(nn.Module):
    """A conv trunk `features` followed by the shared head; forward returns (logits, embedding)."""

    def _set_trunk(self, features: nn.Module, embed_dim: int, n_classes: int,
                   dropout: float) -> None:
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(embed_dim, n_classes)
        self.embed_dim = embed_dim
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, in_channels, n_mels, T) -> (logits (B, n_classes), embedding (B, embed_dim))."""
        embedding = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(embedding)), embedding
