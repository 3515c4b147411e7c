"""Channel modes (mean, left, right, stereo) applied to audio: shared by the log-mel and
waveform frontends, so neither imports the other."""

from __future__ import annotations

from pathlib import Path

import torch

from asc_auto.errors import DataError


def select_channels(wave: torch.Tensor, channels: str, source: Path | str) -> torch.Tensor:
    """Apply a channel mode to (..., C, S) audio; `source` names the file in errors."""
    n = wave.shape[-2]
    if channels == "mean":
        return wave.mean(dim=-2, keepdim=True) if n > 1 else wave
    if channels in ("left", "right"):
        index = 0 if channels == "left" or n == 1 else 1
        return wave[..., index : index + 1, :]
    if channels == "stereo":
        if n < 2:
            raise DataError(
                source,
                f"channels='stereo' needs two channels, the audio has {n}",
                "use channels 'mean' or 'left' for mono audio",
            )
        return wave[..., :2, :]
    raise ValueError(f"unknown channel mode {channels!r}")
