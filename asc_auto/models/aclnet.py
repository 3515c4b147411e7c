"""AclNet (Huang & Alvarado Leanos 2018, arXiv 1811.06669): an end-to-end CNN on raw audio.

Two blocks, as the seed paper uses it (width 0.5, depthwise-separable convolutions):

- LLF, the low-level features: two 1-D convolutions over the 16 kHz waveform (kernel 9 stride 2
  with `llf_channels[0]` filters, kernel 5 stride 2 with `llf_channels[1]`), each with BN + ReLU,
  then a 1-D max-pool whose stride brings the product of strides to 160 samples: one frame per
  10 ms. The (C, T) result is read as a one-plane image, C acting as the frequency axis.
  `llf_compress = "log1p"` (ours, searched; not the paper's) takes log(1 + x) of those frames,
  the compression a log-mel applies to its energies (see `LLF_COMPRESS`).
- HLF, the high-level features: a 3x3 conv (32 x width) and 2x2 max-pool, then depthwise-separable
  3x3 convs whose channels double VGG-style (64, 128 | 128, 256 | 256, 512 | 512, ... x width),
  a 2x2 max-pool after each pair, a 1x1 conv to the 512-d embedding (not width-scaled: the seed
  paper's AclNet0.5 emits 512 embeddings), global average pooling and a linear classifier.

The layer table is reconstructed from the AclNet paper's description (LLF: two 1-D convs + pool to
a 10 ms frame rate; HLF: MobileNet-style separable convs under a width multiplier); the exact
table could not be consulted here, so the count at the paper's settings differs from the seed
paper's 317,038 (see `PAPER_PARAMS` and tests/test_aclnet.py for the measured difference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from asc_auto.models.registry import build_config, register_model

PAPER_PARAMS = 317_038  # the seed paper's AclNet0.5 (3 classes)
HLF_CHANNELS = (64, 128, 128, 256, 256, 512, 512)  # at width 1.0; a max-pool follows every pair
# What follows the LLF's max-pool: nothing (the paper) or log(1 + x). The frames are ReLU outputs
# whose loud and quiet parts differ by orders of magnitude, as a spectrogram's energies do before
# the log of a log-mel. office16, the int8 search's first pick (docs/BENCHMARKS.md), 40 epochs,
# seeds 0-2, evaluate fold: INT8 80.8 -> 83.8 %, FP32 79.8 -> 82.8 % (+3.0 +- 0.9 paired, better
# on every seed); fsdd's int8 pick, 10 epochs, seeds 0-1: INT8 45.4 -> 53.2 % (+7.8 +- 2.2); the
# office16 lt pick (dense, FP32), 40 epochs: 76.8 -> 82.3 % (+5.6 +- 0.5, every seed), a pruned
# lt pick (structured, 3 rounds), seeds 0-1: 73.5 -> 78.0 % (+4.5 +- 1.5); but fsdd's first lt pick
# (structured, 2 rounds, depth 8, llf 8-33), 10 epochs, seeds 0-2: 34.4 -> 33.2 % (-1.3 +- 1.2),
# and office16's later lt pick (width 1.0, depth 3), 40 epochs: 88.4 -> 87.4 % (-0.5 +- 0.5).
# Searched, the paper point "none" (the table: docs/BENCHMARKS.md "Design measurements: int8
# and lt"). A log of pooled squared outputs (log energies) reached FP32 81.8 % but 57.1 % in
# INT8: NNCF's linear 8-bit grid cannot hold energies spanning decades before the log.
LLF_COMPRESS = ("none", "log1p")


@dataclass(frozen=True)
class AclNetConfig:
    """AclNet architecture; defaults are the seed paper's AclNet0.5 for the 3 scene classes."""

    width: float = 0.5  # HLF width multiplier (alpha)
    llf_channels: tuple[int, int] = (16, 128)  # filters of the two 1-D convs
    depth: int = 7  # separable conv layers of the HLF (1..len(HLF_CHANNELS) + extra 512s)
    first_channels: int = 32  # standard 3x3 conv opening the HLF (x width)
    embed_dim: int = 512
    n_classes: int = 3
    sample_rate: int = 16000
    frame_ms: float = 10.0  # LLF output frame period
    in_channels: int = 1
    dropout: float = 0.2
    llf_compress: str = "none"  # LLF_COMPRESS: "log1p" compresses the LLF frames

    def __post_init__(self) -> None:
        if self.llf_compress not in LLF_COMPRESS:
            raise ValueError(f"llf_compress must be one of {LLF_COMPRESS}, "
                             f"got {self.llf_compress!r}")
        if not 0 < self.width <= 4:
            raise ValueError(f"width must be in (0, 4], got {self.width}")
        if len(self.llf_channels) != 2 or min(self.llf_channels) < 1:
            raise ValueError(f"llf_channels must be 2 positive ints, got {self.llf_channels}")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        if self.hop % 4:
            raise ValueError(f"frame of {self.hop} samples is not a multiple of the LLF stride 4")

    @property
    def hop(self) -> int:
        """Samples per LLF frame (160 at 16 kHz and 10 ms)."""
        return round(self.sample_rate * self.frame_ms / 1000)

    def scaled(self, channels: int) -> int:
        return max(1, int(channels * self.width))

    @property
    def hlf_channels(self) -> tuple[int, ...]:
        base = HLF_CHANNELS + (HLF_CHANNELS[-1],) * max(0, self.depth - len(HLF_CHANNELS))
        return tuple(self.scaled(c) for c in base[: self.depth])


def _separable(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
        nn.BatchNorm2d(c_in),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class AclNet(nn.Module):
    """(B, 1, samples) waveform -> (logits (B, n_classes), embedding (B, embed_dim))."""

    def __init__(self, config: AclNetConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or AclNetConfig()
        c1, c2 = cfg.llf_channels
        self.llf = nn.Sequential(
            nn.Conv1d(cfg.in_channels, c1, 9, stride=2, padding=4, bias=False),
            nn.BatchNorm1d(c1),
            nn.ReLU(inplace=True),
            nn.Conv1d(c1, c2, 5, stride=2, padding=2, bias=False),
            nn.BatchNorm1d(c2),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(cfg.hop // 4, ceil_mode=True),
            *([Log1p()] if cfg.llf_compress == "log1p" else []),  # no weights: same checkpoint keys
        )
        c = cfg.scaled(cfg.first_channels)
        layers: list[nn.Module] = [
            nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
        ]
        for i, c_out in enumerate(cfg.hlf_channels):
            layers += _separable(c, c_out)
            c = c_out
            if i % 2 == 1 and i < cfg.depth - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
        layers += [nn.Conv2d(c, cfg.embed_dim, 1, bias=False), nn.BatchNorm2d(cfg.embed_dim),
                   nn.ReLU(inplace=True)]
        self.hlf = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.embed_dim, cfg.n_classes)
        self.embed_dim = cfg.embed_dim
        self.n_classes = cfg.n_classes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.llf(x)  # (B, c2, T): one column per 10 ms
        embedding = self.pool(self.hlf(frames.unsqueeze(1))).flatten(1)
        return self.classifier(self.dropout(embedding)), embedding


class Log1p(nn.Module):
    """log(1 + x) as a layer (ONNX and OpenVINO take it as Log(x + 1))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log1p(x)


class SegmentAverage(nn.Module):
    """Runs `model` on non-overlapping segments of each clip and averages the class probabilities.

    The seed paper evaluates AclNet on 1 s segments averaged over the clip; wrapping the model
    makes that the deployed behaviour (export and evaluate see the same thing). Returns the log of
    the mean probabilities as logits (softmax of them = the mean) and the mean embedding. A clip
    shorter than one segment is one segment; a tail shorter than a segment is dropped.

    With `skip_silent`, segments that are all exact zeros (the padding that makes short clips
    `clip_seconds` long: office16's median clip is 1.0 s of 3.3 s, fsdd's 0.4 s of 2.3 s) are left
    out of the average, so a short event is not outvoted by the silence after it; a clip that is
    all zeros averages every segment. The mask is computed from the input inside the model, so
    the exported IR does the same.
    """

    def __init__(self, model: nn.Module, segment_samples: int, skip_silent: bool = False) -> None:
        super().__init__()
        self.model = model
        self.segment_samples = segment_samples
        self.skip_silent = skip_silent

    def wrap(self, model: nn.Module) -> SegmentAverage:
        """The same averaging around another network (the quantized or pruned one)."""
        return SegmentAverage(model, self.segment_samples, self.skip_silent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, length = x.shape
        n = max(1, length // self.segment_samples)
        if n == 1:
            return self.model(x)
        seg = x[..., : n * self.segment_samples].reshape(b, c, n, self.segment_samples)
        logits, emb = self.model(seg.transpose(1, 2).reshape(b * n, c, self.segment_samples))
        probs = torch.softmax(logits.float(), dim=1).reshape(b, n, -1)
        emb = emb.reshape(b, n, -1)
        if not self.skip_silent:
            return torch.log(probs.mean(dim=1).clamp_min(1e-12)), emb.mean(dim=1)
        heard = seg.abs().amax(dim=(1, 3)).gt(0).to(probs.dtype)  # (b, n)
        weight = torch.where(heard.sum(dim=1, keepdim=True) > 0, heard,
                             torch.ones_like(heard))
        weight = weight / weight.sum(dim=1, keepdim=True)
        mean = (probs * weight[..., None]).sum(dim=1)
        return (torch.log(mean.clamp_min(1e-12)),
                (emb * weight[..., None].to(emb.dtype)).sum(dim=1))


@register_model("aclnet")
def aclnet(config: AclNetConfig | None = None, **overrides: Any) -> AclNet:
    """Build AclNet; overrides are AclNetConfig fields (e.g. width=0.25, depth=5)."""
    return AclNet(build_config(AclNetConfig, config, overrides, "aclnet"))
