"""Feature-frontend settings: frozen dataclasses, one per frontend kind, plus a registry.

Why dataclasses: the settings are the feature cache key (`key_dict`) and are copied into search
spaces (TOML), so they must be plain, hashable, and validated in one place. Every frontend config
has the same shape: a `kind` class attribute, `sample_rate`, `clip_seconds`, `n_planes` (input
channels of the model), `feature_shape` and `key_dict()`. A new frontend (GCC-gram, raw waveform)
is a sibling dataclass registered with `@register_frontend`; `frontend_config_from_dict` then
accepts it through a `kind = "..."` key with no other change.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from asc_auto.errors import ConfigError
from asc_auto.registry import Registry
from asc_auto.tables import range_problems, ranged, table_values

CHANNEL_MODES: tuple[str, ...] = ("mean", "left", "right", "stereo")
TABLE = "features"  # the space file's table (and export.json's object) these are read from
FRONTENDS: Registry[type] = Registry("frontend")  # kind -> config dataclass

C = TypeVar("C")


def register_frontend(cls: type[C]) -> type[C]:
    """Class decorator: make a frontend config available as `kind = "<its kind>"`."""
    return FRONTENDS.add(cls.kind, cls)  # type: ignore[attr-defined]


class FrontendConfig:
    """Shared behaviour of every frontend config dataclass (mixin: subclasses are dataclasses)."""

    kind: ClassVar[str] = ""
    requires_stereo: ClassVar[bool] = False  # True: a mono file is a DataError naming it
    sample_rate: int
    clip_seconds: float

    @property
    def n_samples(self) -> int:
        """Samples of one clip at `sample_rate` after crop/pad."""
        return round(self.clip_seconds * self.sample_rate)

    @property
    def n_planes(self) -> int:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    @property
    def wave_channels(self) -> int:
        """Waveform channels the frontend consumes (after channel selection): one per plane
        unless a frontend derives several planes from the same channels (gcc)."""
        return self.n_planes

    @property
    def feature_shape(self) -> tuple[int, ...]:  # pragma: no cover - every subclass overrides
        """Shape of one clip's features, without the batch axis."""
        raise NotImplementedError

    def key_dict(self) -> dict[str, Any]:
        """Kind plus every field: what makes two feature caches interchangeable."""
        return {"kind": self.kind, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    def problems(self) -> list[tuple[str, str, str]]:
        """(key, problem, fix) for every invalid value; empty when the config is usable. The
        per-field ranges sit beside the fields; subclasses add what relates several fields."""
        return range_problems(self)

    def _channel_problems(self) -> list[tuple[str, str, str]]:
        channels = getattr(self, "channels", "mean")
        if channels in CHANNEL_MODES:
            return []
        return [("channels", f"unknown mode {channels!r}", f"use one of {list(CHANNEL_MODES)}")]

    def __post_init__(self) -> None:
        for key, problem, fix in self.problems():
            raise ConfigError(type(self).__name__, key, problem, fix)


@register_frontend
@dataclass(frozen=True)
class LogMelConfig(FrontendConfig):
    """Log-mel spectrogram settings; defaults are the seed paper's KD student input."""

    kind: ClassVar[str] = "logmel"
    sample_rate: int = ranged(16000, 1)  # Hz; audio is resampled to this before anything else
    n_mels: int = ranged(64, 1)  # mel bands
    win_ms: float = ranged(25.0, 0.0, None, low_open=True)  # analysis window
    hop_ms: float = ranged(10.0, 0.0, None, low_open=True)  # frame step
    f_min: float = ranged(0.0, 0.0)  # lowest mel filter edge (Hz)
    f_max: float | None = ranged(None, 0.0, None, low_open=True)  # None = sample_rate / 2
    clip_seconds: float = ranged(10.0, 0.0, None, low_open=True)  # cropped / zero-padded to this
    channels: str = "mean"  # "mean" (mono downmix), "left", "right", "stereo" (2 planes)

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.win_ms / 1000.0)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000.0)

    @property
    def n_fft(self) -> int:
        """Next power of two >= win_length (the window is zero-padded to it)."""
        return 1 << max(0, math.ceil(math.log2(self.win_length)))

    @property
    def n_frames(self) -> int:
        """Frames of one clip with center=True: one frame per hop plus one."""
        return self.n_samples // self.hop_length + 1

    @property
    def n_planes(self) -> int:
        return 2 if self.channels == "stereo" else 1

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        return (self.n_planes, self.n_mels, self.n_frames)

    def problems(self) -> list[tuple[str, str, str]]:
        out = FrontendConfig.problems(self) + self._channel_problems()
        if {k for k, _, _ in out} & {"sample_rate", "win_ms", "hop_ms", "clip_seconds"}:
            return out  # the framing below needs those four in range
        nyquist = self.sample_rate / 2
        if self.win_length < 1:
            out.append(("win_ms", f"window too short: {self.win_ms} ms is no sample at "
                        f"{self.sample_rate} Hz", "use e.g. 25.0"))
        if self.hop_length < 1:
            out.append(("hop_ms", f"hop too short: {self.hop_ms} ms is no sample at "
                        f"{self.sample_rate} Hz", "use e.g. 10.0"))
        if self.win_length >= 1 and self.n_samples <= self.n_fft // 2:
            # the STFT's reflect padding (center=True) needs more samples than half its size
            shortest = (self.n_fft // 2 + 1) / self.sample_rate
            out.append(("clip_seconds", f"{self.clip_seconds:g} s is {self.n_samples} samples, "
                        f"fewer than the {self.n_fft // 2 + 1} a {self.n_fft}-point STFT needs",
                        f"use at least {shortest:.3g}"))
        if not self.f_min < nyquist:
            out.append(("f_min", f"must be in [0, {nyquist:g}), got {self.f_min}", "use 0.0"))
        if self.f_max is not None and not self.f_min < self.f_max <= nyquist:
            out.append(
                ("f_max", f"must be in (f_min, {nyquist:g}], got {self.f_max}", "omit it (Nyquist)")
            )
        return out


@register_frontend
@dataclass(frozen=True)
class GccConfig(FrontendConfig):
    """Binaural log-mels plus a GCC-PHAT gram (asc_auto.features.gcc); defaults are the paper's.

    Three planes on the same STFT frames: log-mel left, log-mel right, and the `n_mels` central
    lags of GCC-PHAT (so the planes stack). Framing is LogMelConfig's (its properties are reused
    below); the paper's 64 ms window with 45 ms overlap is a 19 ms hop (~527 frames per 10 s).
    Always all three planes: the ablation without the GCC plane drops it in the technique, so
    the with/without comparison reads one cache.
    """

    kind: ClassVar[str] = "gcc"
    requires_stereo: ClassVar[bool] = True
    channels: ClassVar[str] = "stereo"  # the waveform policy's channel mode (not a setting)
    sample_rate: int = ranged(16000, 1)  # Hz; audio is resampled to this before anything else
    n_mels: int = ranged(40, 1)  # mel bands per log-mel plane = GCC lags kept
    win_ms: float = ranged(64.0, 0.0, None, low_open=True)  # analysis window
    hop_ms: float = ranged(19.0, 0.0, None, low_open=True)  # frame step (45 ms overlap)
    f_min: float = ranged(0.0, 0.0)  # lowest mel filter edge (Hz)
    f_max: float | None = ranged(None, 0.0, None, low_open=True)  # None = sample_rate / 2
    clip_seconds: float = ranged(10.0, 0.0, None, low_open=True)  # cropped / zero-padded to this

    win_length = LogMelConfig.win_length
    hop_length = LogMelConfig.hop_length
    n_fft = LogMelConfig.n_fft
    n_frames = LogMelConfig.n_frames

    @property
    def n_planes(self) -> int:
        return 3

    @property
    def wave_channels(self) -> int:
        return 2

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        return (3, self.n_mels, self.n_frames)

    def problems(self) -> list[tuple[str, str, str]]:
        out = LogMelConfig.problems(self)  # type: ignore[arg-type]
        framing_ok = not {k for k, _, _ in out} & {"sample_rate", "n_mels", "win_ms", "hop_ms",
                                                     "clip_seconds"}
        if framing_ok and self.n_mels > self.n_fft:
            out.append(("n_mels", f"{self.n_mels} lags do not fit an FFT of {self.n_fft}",
                        "use fewer bands or a longer window"))
        return out


@register_frontend
@dataclass(frozen=True)
class WaveformConfig(FrontendConfig):
    """Raw audio (AclNet's input; module in features/waveform.py): 16 kHz mono by default."""

    kind: ClassVar[str] = "waveform"
    sample_rate: int = ranged(16000, 1)  # Hz; audio is resampled to this
    clip_seconds: float = ranged(10.0, 0.0, None, low_open=True)  # cropped / zero-padded to this
    channels: str = "mean"  # "mean" (mono downmix), "left", "right", "stereo" (2 planes)

    @property
    def n_planes(self) -> int:
        return 2 if self.channels == "stereo" else 1

    @property
    def feature_shape(self) -> tuple[int, int]:
        return (self.n_planes, self.n_samples)

    def problems(self) -> list[tuple[str, str, str]]:
        out = FrontendConfig.problems(self) + self._channel_problems()
        if not out and self.n_samples < 1:
            out.append(("clip_seconds", f"{self.clip_seconds:g} s is no sample at "
                        f"{self.sample_rate} Hz", f"use at least {1 / self.sample_rate:.3g}"))
        return out


# Union of every registered config type; widen it when a sibling frontend is added.
FeatureConfig = LogMelConfig | GccConfig | WaveformConfig


def frontend_config_from_dict(d: dict[str, Any], file: str | Path) -> FeatureConfig:
    """Build a frontend config from a [features] table; unknown keys, wrong types and values
    out of range are ConfigErrors naming the file and `features.key`.

    An optional `kind` key picks the frontend (default "logmel"); every other key must be a field
    of that frontend's dataclass. Missing keys take the dataclass defaults.
    """
    file = str(file)
    d = dict(d)
    kind = d.pop("kind", LogMelConfig.kind)
    if kind not in FRONTENDS:
        raise ConfigError(
            file, f"{TABLE}.kind", f"unknown frontend {kind!r}", f"use one of {list(FRONTENDS)}"
        )
    cls = FRONTENDS[kind]
    kwargs = table_values(cls, d, file, TABLE)
    # Check values on an unvalidated probe first so the error names the user's file, not the class.
    probe = object.__new__(cls)
    for f in dataclasses.fields(cls):
        object.__setattr__(probe, f.name, kwargs.get(f.name, f.default))
    for key, problem, fix in probe.problems():
        raise ConfigError(file, f"{TABLE}.{key}", problem, fix)
    return cls(**kwargs)
