"""Training crops taken from the recorded part of each clip, for waveforms and feature frames.

Why: clips shorter than `clip_seconds` are cached zero-padded at the end, and on data of short
sounds most of a padded clip is silence (office16's median clip is 1.0 s of 3.3 s, fsdd's 0.4 s of
2.3 s). A model trained on the whole padded clip spends most of its compute on that silence; one
trained on crops from the recorded part spends it on the sound, and a global pool over time lets
the same model score the whole clip at evaluation. AclNet's waveform crops (`crops = "content"`,
techniques/aclnet_common.py) and the kd student's log-mel crops share the rule below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from asc_auto.features.config import frontend_config_from_dict
from asc_auto.features.frontends import LOG_FLOOR
from asc_auto.staging import to_device

# The value a log-mel frame of digital silence holds everywhere: log(0 + LOG_FLOOR) (-13.8155;
# -13.8125 in the float16 cache). A frame counts as recorded when any of its cells is above it by
# more than the float16 rounding.
LOGMEL_SILENCE = math.log(LOG_FLOOR)
_ABOVE_SILENCE = 0.01

CROPS = ("clip", "content")  # train on whole padded clips (the paper), or on CROP_SECONDS-long
# crops of each clip's recorded part (the kd student's searched `crops`, the teacher's setting)
CROP_SECONDS = 1.0


def recorded_frames(x: torch.Tensor) -> torch.Tensor:
    """Frames up to and including each clip's last recorded one: (B, P, F, T) log-mels -> (B,).

    A frame is recorded when any plane or band is above `LOGMEL_SILENCE`; the frames after the
    last such one are the zero padding's. Silence inside a clip counts as recorded (only the
    padding at the end is skipped), as `aclnet_common.content_lengths` does for samples.
    """
    return heard_length(x.gt(LOGMEL_SILENCE + _ABOVE_SILENCE).flatten(1, 2).any(dim=1))


def heard_length(heard: torch.Tensor) -> torch.Tensor:
    """(B, T) booleans -> (B,): positions up to and including each row's last True (0: none)."""
    last = heard.flip(-1).int().argmax(dim=-1)  # positions after the last True
    return torch.where(heard.any(dim=-1), heard.shape[-1] - last, torch.zeros_like(last))


def content_starts(draws: torch.Tensor, content: torch.Tensor, length: int, crop: int
                   ) -> torch.Tensor:
    """Crop starts that hold as much of each clip's recorded part as a crop can.

    `draws` are starts drawn uniformly in [0, length - crop]; each is scaled onto [0, content -
    crop] when the recorded part is longer than a crop, and onto [content - crop, 0] (a negative
    start: the crop begins before the clip) when it is shorter, so a short sound sits whole at a
    random offset in its crop: a time shift instead of the same crop every epoch. Clips without
    padding (content = length) keep their draws unchanged.
    """
    spare = content - crop  # < 0: content shorter than the crop
    low, high = spare.clamp(max=0), spare.clamp(0, length - crop)
    return low + draws * (high - low + 1) // (length - crop + 1)


class FrameCrop:
    """Batch transform for `train_model`: a crop of `frames` log-mel frames from each clip's
    recorded part (`content_starts`); frames before a shifted clip's start read as silence.

    Deterministic for a generator state; runs where the batch is (one small draw crosses to the
    device). Batches no longer than `frames` pass through unchanged.
    """

    def __init__(self, frames: int) -> None:
        if frames < 1:
            raise ValueError(f"a crop needs at least one frame, got {frames}")
        self.frames = frames

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b, p, f, length = x.shape
        if length <= self.frames:
            return x
        crop = self.frames
        draws = to_device(torch.randint(0, length - crop + 1, (b,), generator=gen), x.device)
        starts = content_starts(draws, recorded_frames(x), length, crop)
        idx = starts[:, None] + torch.arange(crop, device=x.device)[None, :]  # (B, crop)
        out = torch.gather(x, 3, idx.clamp_min(0)[:, None, None, :].expand(b, p, f, crop))
        before = (idx < 0)[:, None, None, :]
        return out.masked_fill(before, LOGMEL_SILENCE)


def crop_frames(seconds: float, hop_ms: float, n_frames: int) -> int:
    """Frames (center=True: one per hop plus one) of a `seconds`-long crop, at most the clip's."""
    return max(1, min(n_frames, round(seconds * 1000.0 / hop_ms) + 1))


def content_crop(features: Mapping[str, Any], file: str, n_frames: int,
                 seconds: float = CROP_SECONDS) -> FrameCrop:
    """The `seconds` crop (the students' CROP_SECONDS unless the teacher's own length is given)
    for log-mels of a space's [features] table, cached as `n_frames`."""
    hop_ms = frontend_config_from_dict(dict(features), file).hop_ms
    return FrameCrop(crop_frames(seconds, hop_ms, n_frames))
