"""Waveform loading and the feature frontends (torch modules) built from a frontend config.

Crop/pad policy, shared by every frontend so cached features and on-the-fly features agree:

1. The file is decoded with `asc_auto.data.audio.read_audio` (float32, channels x frames).
2. Channels are selected: "mean" averages all channels (mono downmix), "left"/"right" take
   channel 0/1, "stereo" keeps channels 0 and 1. A mono file given "left" or "right" uses its
   single channel; a mono file given "stereo" is a DataError naming the file ("needs two
   channels"). Selecting before resampling is exact (resampling is linear) and cheaper.
3. The result is resampled to the config's `sample_rate` with
   `torchaudio.functional.resample` (windowed sinc, its defaults).
4. The clip is cropped to `clip_seconds` keeping the start, or zero-padded at the end.

The log-mel is `log(mel_power + 1e-6)` (natural log, power spectrogram, Hann window, HTK mel
scale, center=True with reflect padding). A plain log instead of AmplitudeToDB because
AmplitudeToDB's `top_db` clamp depends on each example's maximum, so a clip's features would
depend on what else is in its batch; the 1e-6 floor (-13.8) keeps digital silence finite.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchaudio
from torch import nn

from asc_auto.data import audio
from asc_auto.errors import DataError
from asc_auto.features.channels import select_channels
from asc_auto.features.config import FeatureConfig, GccConfig, LogMelConfig
from asc_auto.features.gcc import GccGram
from asc_auto.features.waveform import Waveform, WaveformConfig

LOG_FLOOR = 1e-6


def crop_or_pad(wave: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Keep the first `n_samples` samples, or zero-pad at the end up to that length."""
    length = wave.shape[-1]
    if length >= n_samples:
        return wave[..., :n_samples]
    return nn.functional.pad(wave, (0, n_samples - length))


def prepare_waveform(
    wave: torch.Tensor, sample_rate: int, cfg: FeatureConfig, source: Path | str
) -> torch.Tensor:
    """Channel selection, resampling and crop/pad of decoded (C, S) audio (the policy above)."""
    if cfg.requires_stereo and wave.shape[-2] < 2:
        raise DataError(source, f"{cfg.kind} needs two channels, the audio has {wave.shape[-2]}",
                        "use stereo (binaural) recordings, or a technique with mono features")
    wave = select_channels(wave, cfg.channels, source)
    if sample_rate != cfg.sample_rate:
        wave = torchaudio.functional.resample(wave, sample_rate, cfg.sample_rate)
    return crop_or_pad(wave, cfg.n_samples).contiguous()


def load_waveform(path: Path, cfg: FeatureConfig) -> torch.Tensor:
    """Read one file and return (wave_channels, n_samples) float32 at the config's rate."""
    data, sample_rate = audio.read_audio(path)
    return prepare_waveform(torch.from_numpy(data), sample_rate, cfg, path)


class LogMel(nn.Module):
    """Batched log-mel: (B, C, samples) at cfg.sample_rate -> (B, n_planes, n_mels, n_frames).

    C may be the config's `wave_channels` (what `load_waveform` returns) or raw stereo, which
    is then reduced with the config's channel mode. Runs on whatever device the module is on.
    """

    def __init__(self, cfg: LogMelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            win_length=cfg.win_length,
            hop_length=cfg.hop_length,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            power=2.0,
            center=True,
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() != 3:
            raise ValueError(f"LogMel expects (batch, channels, samples), got {tuple(wave.shape)}")
        if wave.shape[1] != self.cfg.n_planes:
            wave = select_channels(wave, self.cfg.channels, "input batch")
        return torch.log(self.mel(wave.float()) + LOG_FLOOR)


# Module class per frontend kind; a sibling frontend registers its module here.
FRONTEND_MODULES: dict[str, type[nn.Module]] = {LogMelConfig.kind: LogMel, GccConfig.kind: GccGram,
                                                 WaveformConfig.kind: Waveform}


def make_frontend(cfg: FeatureConfig) -> nn.Module:
    """The torch module that turns prepared waveforms into features for this config."""
    try:
        module_cls = FRONTEND_MODULES[cfg.kind]
    except KeyError:
        raise ValueError(f"no frontend module registered for kind {cfg.kind!r}") from None
    return module_cls(cfg)
