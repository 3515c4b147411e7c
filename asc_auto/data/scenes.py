"""A synthetic sound model of the 10 TAU scenes: learnable, but not trivially so.

Why it looks like this (the synthetic dataset must make a search meaningful):
- each scene mixes a coloured-noise background (class-typical but overlapping spectral tilt and
  band emphasis), hums, and random events (voices, steps/clacks, tonal events, pass-bys) whose
  rates and frequencies overlap between classes;
- every recording location adds its own colouring (EQ, tilt, a narrow-band "signature", event
  rates), so clips of one location resemble each other and grouped splits matter;
- gain, event SNR and reverberation vary as nuisances;
- the two channels carry spatial cues whose statistics differ by class: indoor is reverberant
  and diffuse (low coherence), outdoor has lateral sources (inter-channel delays up to 0.7 ms
  and level differences), transportation has near-centred coherent sources (tiny delays).

A clip is rendered mostly in the frequency domain (about seven clip-length FFTs), from numpy
Generators seeded by the caller, so equal seeds give equal samples.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SCENE_CLASSES: dict[str, str] = {
    "airport": "indoor",
    "shopping_mall": "indoor",
    "metro_station": "indoor",
    "park": "outdoor",
    "public_square": "outdoor",
    "street_pedestrian": "outdoor",
    "street_traffic": "outdoor",
    "bus": "transportation",
    "metro": "transportation",
    "tram": "transportation",
}

Range = tuple[float, float]


@dataclass(frozen=True)
class Scene:
    """Per-clip parameter ranges of one scene (uniform draws; rates are events per second)."""

    tilt: Range  # background power spectrum ~ f^-tilt
    bump_hz: Range  # centre of the background's band emphasis
    bump_db: Range
    voices: Range = (0.0, 0.0)  # talker phrases (babble)
    steps: Range = (0.0, 0.0)  # short transients (footsteps, rail clacks)
    step_band: Range = (300.0, 4000.0)
    tones: Range = (0.0, 0.0)  # chimes, birds, horns, squeals, bells
    tone_hz: Range = (500.0, 1000.0)
    tone_s: Range = (0.2, 0.6)
    tone_glide: float = 0.0  # largest relative pitch glide over a tonal event
    tone_harmonics: int = 3
    swells: Range = (0.0, 0.0)  # pass-bys, arriving trains, accelerations
    swell_band: Range = (60.0, 800.0)
    swell_s: Range = (2.0, 5.0)
    hum_p: float = 0.0  # probability of an engine / mains / motor hum
    hum_hz: Range = (50.0, 120.0)


@dataclass(frozen=True)
class Space:
    """Spatial statistics of a class: how the two channels relate."""

    coherence: Range  # background inter-channel coherence
    bg_itd_ms: Range  # |delay| of the background's coherent part
    itd_ms: Range  # |inter-channel delay| of events and hums (random sign)
    ild_db: float  # level difference at the largest delay (the earlier channel is louder)
    rt60_s: Range
    wet: Range  # reverberant energy relative to the direct sound


# fmt: off
SCENES: dict[str, Scene] = {
    "airport": Scene((0.9, 1.3), (400, 1200), (4, 10), voices=(0.5, 1.5), steps=(0.5, 2),
                     tones=(0.05, 0.25), tone_hz=(500, 900), tone_s=(0.4, 1.0), hum_p=0.5,
                     hum_hz=(90, 130)),
    "shopping_mall": Scene((0.8, 1.2), (300, 1000), (5, 11), voices=(0.8, 2.0), steps=(1, 3),
                           tones=(0.5, 2), tone_hz=(200, 800), tone_s=(0.15, 0.4),
                           tone_harmonics=4, hum_p=0.4, hum_hz=(95, 125)),
    "metro_station": Scene((1.2, 1.6), (150, 500), (4, 10), voices=(0.25, 1.0), steps=(0.5, 2),
                           tones=(0.05, 0.25), tone_hz=(1500, 3500), tone_s=(0.5, 1.5),
                           tone_glide=0.3, tone_harmonics=2, swells=(0.05, 0.25),
                           swell_band=(50, 600), swell_s=(3, 6), hum_p=0.3, hum_hz=(80, 200)),
    "park": Scene((0.8, 1.3), (2000, 5000), (3, 9), voices=(0.0, 0.25), tones=(0.5, 3),
                  tone_hz=(2000, 6000), tone_s=(0.05, 0.25), tone_glide=0.5, tone_harmonics=1,
                  swells=(0.05, 0.2), swell_band=(50, 400), swell_s=(3, 8)),
    "public_square": Scene((1.0, 1.4), (500, 2000), (3, 8), voices=(0.4, 1.2), steps=(0.5, 2),
                           tones=(0.1, 0.6), tone_hz=(400, 900), tone_s=(0.1, 0.3),
                           tone_glide=0.2, tone_harmonics=2, swells=(0.1, 0.3),
                           swell_band=(60, 800), swell_s=(2, 5)),
    "street_pedestrian": Scene((1.0, 1.5), (400, 1500), (3, 8), voices=(0.5, 1.5),
                               steps=(1, 3), swells=(0.1, 0.3), swell_band=(80, 1000),
                               swell_s=(2, 4), tones=(0.02, 0.1), tone_hz=(350, 500),
                               tone_harmonics=6),
    "street_traffic": Scene((1.4, 1.9), (80, 400), (5, 12), voices=(0.0, 0.25),
                            swells=(0.3, 0.8), swell_band=(60, 2000), swell_s=(1.5, 4),
                            tones=(0.02, 0.2), tone_hz=(350, 500), tone_harmonics=6, hum_p=0.2,
                            hum_hz=(30, 80)),
    "bus": Scene((1.5, 2.0), (60, 250), (5, 12), voices=(0.1, 0.8), swells=(0.05, 0.2),
                 swell_band=(40, 300), swell_s=(2, 5), tones=(0.0, 0.05), tone_hz=(900, 1600),
                 tone_harmonics=4, hum_p=0.9, hum_hz=(30, 80)),
    "metro": Scene((1.6, 2.1), (100, 400), (5, 12), voices=(0.0, 0.5), steps=(0.8, 2.5),
                   step_band=(200, 3000), tones=(0.05, 0.3), tone_hz=(1500, 4000),
                   tone_s=(0.5, 1.5), tone_glide=0.3, tone_harmonics=2, hum_p=0.6,
                   hum_hz=(80, 200)),
    "tram": Scene((1.3, 1.8), (150, 500), (4, 11), voices=(0.1, 0.8), steps=(0.5, 1.5),
                  step_band=(200, 3000), tones=(0.02, 0.1), tone_hz=(900, 1600),
                  tone_s=(0.3, 0.6), tone_harmonics=5, hum_p=0.7, hum_hz=(100, 300)),
}
SPACES: dict[str, Space] = {
    "indoor": Space((0.1, 0.6), (0.0, 0.3), (0.0, 0.5), 3.0, (0.5, 1.5), (0.4, 1.5)),
    "outdoor": Space((0.2, 0.8), (0.05, 0.6), (0.1, 0.7), 6.0, (0.05, 0.4), (0.02, 0.4)),
    "transportation": Space((0.4, 0.9), (0.0, 0.25), (0.0, 0.3), 3.0, (0.15, 0.6), (0.1, 0.6)),
}
# fmt: on


def render_scene(
    scene_name: str,
    frames: int,
    sample_rate: int,
    location_seed: Sequence[int],
    clip_seed: Sequence[int],
) -> np.ndarray:
    """One clip of `scene_name` as float32 (2, frames), peak below full scale.

    `location_seed` fixes what all clips of one recording location share; `clip_seed` the rest.
    """
    sr, n = sample_rate, frames
    scene, space = SCENES[scene_name], SPACES[SCENE_CLASSES[scene_name]]
    place = _Location.draw(np.random.default_rng(list(location_seed)), scene)
    rng = np.random.default_rng(list(clip_seed))
    freqs, log_f = _grid(n, sr)

    left, right = _background(rng, scene, space, place, freqs, log_f, n)
    if rng.random() < scene.hum_p:  # engine / mains / motor hum: narrow harmonic lines
        itd, ild = _placement(rng, space)
        level = rng.uniform(-22, -8)
        for h in range(1, 7):
            _add_line(left, right, freqs, place.hum_hz * h, level - 4 * (h - 1), itd, ild, rng)
    if place.signature_db is not None:
        _add_line(left, right, freqs, place.signature_hz, place.signature_db, 0.0, 0.0, rng)

    direct = _events(rng, scene, space, place.rate_scale, sr, n)
    wet = math.sqrt(rng.uniform(*space.wet))
    rt60 = rng.uniform(*space.rt60_s) * place.rt60_scale
    eq = np.exp2(np.interp(log_f, _EQ_GRID, place.eq_db) / 20 * _LOG2_10)
    channels = []
    for bg, dry in ((left, direct[0]), (right, direct[1])):
        room = 1 + wet * np.fft.rfft(_tail(rng, rt60, sr, n), n=n)
        spectrum = (bg + np.fft.rfft(dry) * room) * eq
        channels.append(np.fft.irfft(spectrum.astype(np.complex64), n=n))
    audio = np.stack(channels)

    level_db = rng.uniform(-34, -20)  # nuisance: overall recording gain
    audio *= 10 ** (level_db / 20) / max(float(np.sqrt(np.mean(audio**2))), 1e-12)
    peak = float(np.max(np.abs(audio)))
    if peak > 0.98:
        audio *= 0.98 / peak
    return audio.astype(np.float32)


_EQ_GRID = np.linspace(np.log2(20.0), np.log2(24000.0), 256)  # log2 Hz
_LOG2_10 = math.log2(10.0)


@dataclass(frozen=True)
class _Location:
    """What every clip recorded at one location shares: microphone/room colouring and habits."""

    eq_db: np.ndarray  # on _EQ_GRID
    tilt_offset: float
    bump_octaves: float
    bump_db_offset: float
    rate_scale: float
    signature_hz: float
    signature_db: float | None  # a narrow-band whine of this place (half of the places)
    hum_hz: float
    rt60_scale: float
    coherence_offset: float

    @classmethod
    def draw(cls, loc: np.random.Generator, scene: Scene) -> _Location:
        eq_db = np.zeros_like(_EQ_GRID)
        for _ in range(3):
            eq_db += loc.uniform(-4, 4) * np.exp(
                -0.5 * ((_EQ_GRID - loc.uniform(6, 14)) / 0.8) ** 2
            )
        return cls(
            eq_db=eq_db,
            tilt_offset=loc.normal(0, 0.15),
            bump_octaves=loc.normal(0, 0.4),
            bump_db_offset=loc.normal(0, 2),
            rate_scale=float(np.exp(loc.normal(0, 0.3))),
            signature_hz=2 ** loc.uniform(np.log2(200), np.log2(6000)),
            signature_db=loc.uniform(-30, -15) if loc.random() < 0.5 else None,
            hum_hz=loc.uniform(*scene.hum_hz),
            rt60_scale=float(np.exp(loc.normal(0, 0.2))),
            coherence_offset=loc.normal(0, 0.1),
        )


def _background(
    rng: np.random.Generator,
    scene: Scene,
    space: Space,
    place: _Location,
    freqs: np.ndarray,
    log_f: np.ndarray,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Spectra of coloured noise (tilt + band emphasis); the right channel holds a delayed copy
    of the left with the class's coherence, plus independent noise."""
    tilt = rng.uniform(*scene.tilt) + place.tilt_offset
    bump_log_hz = np.log2(rng.uniform(*scene.bump_hz)) + place.bump_octaves
    bump_db = rng.uniform(*scene.bump_db) + place.bump_db_offset
    curve_db = bump_db * np.exp(-0.5 * ((_EQ_GRID - bump_log_hz) / 1.2) ** 2)
    curve_db -= 10 * tilt * _EQ_GRID / _LOG2_10  # power ~ f^-tilt
    shape = np.exp2(np.interp(log_f, _EQ_GRID, curve_db) / 20 * _LOG2_10)
    low = freqs < 20
    shape[low] *= (freqs[low] / 20) ** 2
    shape *= n / math.sqrt(2 * float(np.sum(shape**2)))  # unit RMS in the time domain
    rho = float(np.clip(rng.uniform(*space.coherence) + place.coherence_offset, 0.02, 0.98))
    delay = _signed(rng, space.bg_itd_ms) / 1000
    left = _cnoise(rng, freqs.size) * shape
    right = rho * _delay(freqs, delay) * left
    right += math.sqrt(1 - rho**2) * shape * _cnoise(rng, freqs.size)
    return left, right


def _events(
    rng: np.random.Generator, scene: Scene, space: Space, rate_scale: float, sr: int, n: int
) -> np.ndarray:
    """(2, n) direct sound of all events, each with its own delay and level difference."""
    direct = np.zeros((2, n))  # float64: numpy's rfft is faster on it
    snr = rng.uniform(-6, 10)
    sources = _Sources(scene, rng, sr, n)
    kinds = (("voice", scene.voices), ("step", scene.steps), ("tone", scene.tones),
             ("swell", scene.swells))  # fmt: skip
    for kind, rate in kinds:
        mean = rng.uniform(*rate) * rate_scale * n / sr
        for _ in range(int(rng.poisson(mean)) if mean > 0 else 0):
            sig = sources.make(kind)
            if sig is None:
                continue
            level = snr + rng.normal(0, 3) - (6 if kind == "voice" else 0)
            sig *= 10 ** (level / 20) / max(float(np.sqrt(np.mean(sig**2))), 1e-9)
            itd, ild = _placement(rng, space)
            start, lag = int(rng.integers(n)), round(itd * sr)
            _add_wrapped(direct[0], start, sig * 10 ** (-ild / 40))
            _add_wrapped(direct[1], start + lag, sig * 10 ** (ild / 40))
    return direct


class _Sources:
    """Makes mono float32 event waveforms. Noise events cut slices from one band-limited buffer
    per kind, so a clip needs two short FFTs instead of one per event."""

    def __init__(self, scene: Scene, rng: np.random.Generator, sr: int, n: int) -> None:
        self.scene, self.rng, self.sr, self.n = scene, rng, sr, n
        self._buffers: dict[str, np.ndarray] = {}

    def make(self, kind: str) -> np.ndarray | None:
        rng, scene, sr = self.rng, self.scene, self.sr
        if kind == "voice":
            return _voice(rng, sr)
        if kind == "tone":
            f0 = rng.uniform(*scene.tone_hz)
            if f0 * (1 + scene.tone_glide) >= 0.45 * sr:
                return None  # the event does not exist at this sample rate
            n = max(16, int(rng.uniform(*scene.tone_s) * sr))
            env = _decay_envelope(rng, sr, n)
            return _tone(rng, sr, f0, n, scene.tone_harmonics, scene.tone_glide) * env
        if kind == "step":
            dur = rng.uniform(0.005, 0.03)
            sig = self._slice("step", scene.step_band, max(16, int(4 * dur * sr)))
            return sig * np.exp(-np.arange(sig.size, dtype=np.float32) / np.float32(dur * sr))
        sig = self._slice("swell", scene.swell_band, max(16, int(rng.uniform(*scene.swell_s) * sr)))
        return sig * np.sin(np.linspace(0, np.pi, sig.size, dtype=np.float32)) ** 2

    def _slice(self, kind: str, band: Range, length: int) -> np.ndarray:
        if kind not in self._buffers:
            size = self.n if kind == "swell" else min(self.n, self.sr)
            self._buffers[kind] = _band_noise(self.rng, size, self.sr, *band)
        buf = self._buffers[kind]
        if length >= buf.size:
            return np.resize(buf, length)
        start = int(self.rng.integers(buf.size - length + 1))
        return buf[start : start + length].copy()


def _voice(rng: np.random.Generator, sr: int) -> np.ndarray:
    """A talker's phrase: a voiced tone with a wandering pitch, gated into ~4 Hz syllables."""
    n = max(16, int(rng.uniform(0.5, 2.5) * sr))
    f0 = rng.uniform(90, 260)
    sig = _tone(rng, sr, f0, n, 12, 0.15)
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    gate = np.abs(np.sin(np.float32(np.pi * rng.uniform(3, 5)) * t + np.float32(rng.uniform(0, 3))))
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) * np.float32(20))
    return sig * gate * gate * fade


def _tone(
    rng: np.random.Generator, sr: int, f0: float, n: int, harmonics: int, glide: float
) -> np.ndarray:
    """Harmonic tone with a pitch glide, read from a one-period wavetable (the cost does not
    grow with the number of harmonics, which stop below the Nyquist frequency)."""
    ratio = 1 + rng.uniform(-glide, glide)
    usable = max(1, min(harmonics, int(0.45 * sr / (f0 * max(1.0, ratio)))))
    size = 512
    grid = np.arange(size) * (2 * np.pi / size)
    weights = rng.uniform(0.3, 1.0, usable) / np.arange(1, usable + 1)
    table = (np.sin(np.outer(np.arange(1, usable + 1), grid)).T @ weights).astype(np.float32)
    phase = np.cumsum(np.linspace(f0, f0 * ratio, n) * (size / sr))
    return table[phase.astype(np.int64) % size]


def _decay_envelope(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    attack = max(1, int(rng.uniform(0.005, 0.03) * sr))
    idx = np.arange(n, dtype=np.float32)
    return np.minimum(1.0, idx / attack) * np.exp(-idx / np.float32(n / 3))


def _band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    """float32 noise with a smooth band from lo to hi Hz (clipped below the Nyquist frequency)."""
    freqs, log_f = _grid(n, sr)
    hi = min(hi, 0.45 * sr)
    lo = min(lo, hi / 2)
    centre = (np.log2(lo) + np.log2(hi)) / 2
    width = max((np.log2(hi) - np.log2(lo)) / 2, 0.3)
    mask = np.exp(-0.5 * ((log_f - centre) / width) ** 4)
    return np.fft.irfft(_cnoise(rng, freqs.size) * mask, n=n).astype(np.float32)


def _tail(rng: np.random.Generator, rt60: float, sr: int, n: int) -> np.ndarray:
    """Unit-energy exponentially decaying noise: a late-reverberation impulse response."""
    length = min(n, max(16, int(rt60 * sr)))
    t = np.arange(length) / sr
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
    tail[: int(0.005 * sr)] = 0.0  # pre-delay: the direct sound comes first
    return tail / max(float(np.sqrt(np.sum(tail**2))), 1e-12)


def _add_line(
    left: np.ndarray,
    right: np.ndarray,
    freqs: np.ndarray,
    hz: float,
    level_db: float,
    itd: float,
    ild: float,
    rng: np.random.Generator,
) -> None:
    """Add a narrow (about 1 Hz wide, slowly beating) component at `hz` to both spectra."""
    if hz >= freqs[-1] * 0.9:
        return
    half = max(1.0, 2 * float(freqs[1]))
    lo, hi = np.searchsorted(freqs, [hz - half, hz + half])
    band = slice(int(lo), int(hi) + 1)
    weights = np.exp(-0.5 * ((freqs[band] - hz) / 0.5) ** 2) + 1e-3
    line = _cnoise(rng, weights.size) * weights
    n = 2 * (freqs.size - 1)  # even frame counts; an odd one changes the scale negligibly
    line *= math.sqrt(10 ** (level_db / 10) * n * n / (2 * float(np.sum(np.abs(line) ** 2))))
    left[band] += line * 10 ** (-ild / 40)
    right[band] += line * 10 ** (ild / 40) * _delay(freqs[band], itd)


def _placement(rng: np.random.Generator, space: Space) -> tuple[float, float]:
    """(delay in s, level difference in dB) of a source; the earlier channel is the louder."""
    itd_ms = _signed(rng, space.itd_ms)
    ild = -space.ild_db * itd_ms / max(space.itd_ms[1], 1e-9) + rng.normal(0, 1)
    return itd_ms / 1000, ild


def _signed(rng: np.random.Generator, span: Range) -> float:
    return float(rng.uniform(*span) * rng.choice((-1.0, 1.0)))


def _delay(freqs: np.ndarray, seconds: float) -> np.ndarray:
    """Spectral factor delaying a signal by `seconds` (complex64: float32 is plenty here)."""
    phase = freqs.astype(np.float32) * np.float32(-2 * np.pi * seconds)
    return np.cos(phase) + 1j * np.sin(phase)


def _cnoise(rng: np.random.Generator, size: int) -> np.ndarray:
    noise = rng.standard_normal((2, size), dtype=np.float32)
    return noise[0] + 1j * noise[1]


@functools.lru_cache(maxsize=8)
def _grid(n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """rfft bin frequencies and their log2 (floored at 20 Hz), shared by every clip."""
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    log_f = np.log2(np.maximum(freqs, 20.0))
    freqs.setflags(write=False)
    log_f.setflags(write=False)
    return freqs, log_f


def _add_wrapped(buf: np.ndarray, start: int, sig: np.ndarray) -> None:
    """Add `sig` at `start`, wrapping past the end (scenes are stationary; circular is fine)."""
    n = buf.size
    start %= n
    for offset in range(0, sig.size, n):
        piece = sig[offset : offset + n]
        first = min(piece.size, n - start)
        buf[start : start + first] += piece[:first]
        buf[: piece.size - first] += piece[first:]
