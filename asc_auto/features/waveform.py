"""The raw-waveform frontend: AclNet learns its own filterbank, so the cache holds audio itself.

Trials must not decode and resample the dataset again, so the 16 kHz mono waveform of every clip
is cached like any other feature (settings: `WaveformConfig` in features/config.py): shape
(1, samples) per clip, stored as float16 by the shared cache. Audio lies in [-1, 1], where
float16 keeps 11 significant bits (relative error <= 2^-11, ~66 dB below each sample) and
subnormals down to 6e-8: finer than a scene classifier needs, at half the bytes of float32
(a 10 s clip takes 320 KB). Values are clamped to [-1, 1] so a hot resampler overshoot cannot
overflow anything downstream.
"""

from __future__ import annotations

import torch
from torch import nn

from asc_auto.features.channels import select_channels
from asc_auto.features.config import WaveformConfig

__all__ = ["Waveform", "WaveformConfig"]


class Waveform(nn.Module):
    """(B, C, samples) prepared audio -> (B, n_planes, samples) float32 in [-1, 1].

    Raw stereo input is reduced with the config's channel mode, so the module accepts the same
    inputs as the log-mel frontend.
    """

    def __init__(self, cfg: WaveformConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() != 3:
            raise ValueError(f"Waveform expects (batch, channels, samples), got {wave.shape}")
        if wave.shape[1] != self.cfg.n_planes:
            wave = select_channels(wave, self.cfg.channels, "input batch")
        return wave.float().clamp(-1.0, 1.0)
