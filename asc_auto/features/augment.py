"""Training-time augmentation on cached features: SpecAugment masking and mixup.

Both act on batches of features (B, planes, F, T) after they leave the cache, so one cached
feature set serves every augmentation setting a search tries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import numpy as np
import torch
import torchaudio
from torch import nn

from asc_auto.staging import to_device


class SpecAugment(nn.Module):
    """Random frequency and time masks, drawn independently per example and plane.

    Masked cells are set to `fill`: "mean" (each example-plane's mean, so a mask looks like
    average energy rather than a band of digital silence or of loud noise; log-mels are not
    zero-centred) or "zero". Identity in eval mode and when both widths are 0. Each mask's
    width is drawn from [0, width) as in torchaudio, from torch's global generator (seed it with
    torch.manual_seed for reproducible runs).
    """

    def __init__(
        self,
        freq_masks: int = 2,
        freq_width: int = 8,
        time_masks: int = 2,
        time_width: int = 40,
        fill: str = "mean",
    ) -> None:
        super().__init__()
        if min(freq_masks, freq_width, time_masks, time_width) < 0:
            raise ValueError("SpecAugment mask counts and widths must be >= 0")
        if fill not in ("mean", "zero"):
            raise ValueError(f"fill must be 'mean' or 'zero', got {fill!r}")
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width
        self.fill = fill
        self.freq = torchaudio.transforms.FrequencyMasking(max(freq_width, 1), iid_masks=True)
        self.time = torchaudio.transforms.TimeMasking(max(time_width, 1), iid_masks=True)

    @property
    def active(self) -> bool:
        return (self.freq_masks > 0 and self.freq_width > 0) or (
            self.time_masks > 0 and self.time_width > 0
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.active:
            return x
        if x.dim() != 4:
            raise ValueError(f"SpecAugment expects (batch, planes, F, T), got {tuple(x.shape)}")
        # Mask the centred features with 0, then shift back: masked cells end up at the mean.
        offset = x.mean(dim=(-2, -1), keepdim=True) if self.fill == "mean" else None
        out = x - offset if offset is not None else x
        if self.freq_width > 0:
            for _ in range(self.freq_masks):
                out = self.freq(out)
        if self.time_width > 0:
            for _ in range(self.time_masks):
                out = self.time(out)
        return out + offset if offset is not None else out


@overload
def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    alpha: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]: ...


@overload
def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    alpha: float,
    generator: torch.Generator | None = None,
    *,
    extras: Sequence[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]: ...


def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    alpha: float,
    generator: torch.Generator | None = None,
    *,
    extras: Sequence[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Mix each example with a random partner; returns mixed x and soft targets (B, n_classes).

    One mixing weight lam ~ Beta(alpha, alpha) per example; x' = lam*x + (1-lam)*x[perm] and the
    targets mix the one-hot labels the same way, so every target row sums to 1. `extras`
    (per-example tensors, e.g. cached teacher outputs) are mixed with the same lam and partner
    and returned as a third element. alpha <= 0 returns x (and extras) unchanged with one-hot
    targets. Randomness comes only from `generator` (or torch's global generator), so a seeded
    run is reproducible.
    """
    onehot = nn.functional.one_hot(y.long(), n_classes).to(torch.float32).to(x.device)
    if alpha <= 0 or len(x) < 2:
        return (x, onehot) if extras is None else (x, onehot, list(extras))
    # torch's Beta sampler takes no generator: seed a numpy generator from the torch one.
    gen_device = generator.device if generator is not None else torch.device("cpu")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=gen_device).item())
    lam = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, size=len(x)))
    # Both cross to the batch's device once, without blocking the host (to_device: pinned,
    # non-blocking), not once per mixed tensor.
    lam = to_device(lam, x.device)
    perm = to_device(torch.randperm(len(x), generator=generator, device=gen_device), x.device)

    def mix(t: torch.Tensor) -> torch.Tensor:
        w = lam.to(device=t.device, dtype=t.dtype).view(-1, *([1] * (t.dim() - 1)))
        return w * t + (1 - w) * t[perm.to(t.device)]

    if extras is None:
        return mix(x), mix(onehot)
    return mix(x), mix(onehot), [mix(e) for e in extras]
