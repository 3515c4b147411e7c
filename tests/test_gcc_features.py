"""The gcc frontend: GCC-PHAT lag, PHAT whitening, frame alignment, numerical safety, caching."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from asc_auto.data.tau import load_dataset
from asc_auto.errors import ConfigError, DataError
from asc_auto.features.cache import build_features, cache_key
from asc_auto.features.config import GccConfig, LogMelConfig, frontend_config_from_dict
from asc_auto.features.frontends import LogMel, load_waveform, make_frontend
from asc_auto.features.gcc import LOG_FLOOR, GccGram, central_lags

CFG = GccConfig(clip_seconds=1.0)  # the paper's framing: 40 lags, 1024-sample window, hop 304
LAGS = central_lags(CFG.n_mels)


def _delayed_pair(source: torch.Tensor, d: int, n: int = 16000) -> torch.Tensor:
    """(1, 2, n): right(t) = left(t - d)."""
    start = 64
    return torch.stack([source[start:start + n], source[start - d:start - d + n]])[None]


def _peak_lags(gram: torch.Tensor) -> torch.Tensor:
    """Lag of the maximum of every frame of a (lags, frames) GCC plane."""
    return LAGS[gram.argmax(dim=0)]


def _noise(seed: int, n: int = 16200) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("d", [-20, -7, -1, 0, 4, 13, 19])
def test_peak_is_at_the_delay_in_every_frame(d: int) -> None:
    out = GccGram(CFG)(_delayed_pair(_noise(0), d))
    assert out.shape == (1, *CFG.feature_shape) == (1, 3, 40, 53)
    peaks = _peak_lags(out[0, 2])
    assert (peaks == d).all(), peaks.tolist()
    assert out[0, 2].max(dim=0).values.min() > 0.7  # a sharp peak, not a marginal maximum


@pytest.mark.parametrize("d", [-11, 0, 6])
def test_phat_makes_the_lag_independent_of_the_source_spectrum(d: int) -> None:
    white = _noise(1)
    lowpass = torchaudio.functional.lowpass_biquad(white, CFG.sample_rate, 300.0, Q=0.707)
    frontend = GccGram(CFG)
    white_peaks = _peak_lags(frontend(_delayed_pair(white, d))[0, 2])
    low_peaks = _peak_lags(frontend(_delayed_pair(lowpass, d))[0, 2])
    assert (white_peaks == d).all() and (low_peaks == d).all()
    # Without the PHAT weighting the low-pass correlation is broad: its value one lag away from
    # the peak is close to the peak, while the whitened one is sharp.
    spec = frontend.stft_zero(_delayed_pair(lowpass, d))
    plain = torch.fft.irfft(spec[0, 0] * spec[0, 1].conj(), n=CFG.n_fft, dim=0)
    peak, beside = plain[(-d) % CFG.n_fft], plain[(-d + 1) % CFG.n_fft]
    assert (beside / peak).median() > 0.9
    gram = frontend(_delayed_pair(lowpass, d))[0, 2]
    row = d + CFG.n_mels // 2  # the row of lag d
    assert (gram[row + 1] / gram[row]).median() < 0.6


def test_log_mel_planes_equal_the_logmel_frontend() -> None:
    wave = torch.randn(2, 2, 16000, generator=torch.Generator().manual_seed(2))
    logmel = LogMel(LogMelConfig(n_mels=40, win_ms=64.0, hop_ms=19.0, clip_seconds=1.0,
                                 channels="stereo"))
    out = GccGram(CFG)(wave)
    torch.testing.assert_close(out[:, :2], logmel(wave))


def test_the_three_planes_share_their_frames() -> None:
    """A burst lights up exactly the frames whose window covers it, in all three planes."""
    n, d = 16000, 5
    burst = (7000, 7800)
    left = torch.zeros(n)
    left[burst[0]:burst[1]] = _noise(3, burst[1] - burst[0])
    right = torch.zeros(n)
    right[burst[0] + d:burst[1] + d] = left[burst[0]:burst[1]]
    out = GccGram(CFG)(torch.stack([left, right])[None])[0]
    centres = torch.arange(CFG.n_frames) * CFG.hop_length
    half = CFG.n_fft // 2
    untouched = (centres + half <= burst[0]) | (centres - half >= burst[1] + d)
    inside = (centres >= burst[0] + 100) & (centres < burst[1] - 100)
    assert untouched.sum() > 30 and inside.sum() >= 2
    floor = float(np.log(LOG_FLOOR))
    for plane in (0, 1):
        assert torch.allclose(out[plane][:, untouched], torch.tensor(floor))
        assert (out[plane][:, inside].max(dim=0).values > floor + 5).all()
    assert (out[2][:, untouched] == 0).all()
    assert (_peak_lags(out[2][:, inside]) == d).all()


def test_silence_identical_and_zero_channels_are_finite() -> None:
    frontend = GccGram(CFG)
    noise = _noise(4, 16000)
    silence = frontend(torch.zeros(1, 2, 16000))[0]
    same = frontend(torch.stack([noise, noise])[None])[0]
    one_zero = frontend(torch.stack([noise, torch.zeros(16000)])[None])[0]
    for out in (silence, same, one_zero):
        assert torch.isfinite(out).all()
    assert (silence[2] == 0).all() and (one_zero[2] == 0).all()
    assert (_peak_lags(same[2]) == 0).all()
    assert torch.allclose(same[2].max(dim=0).values, torch.tensor(1.0), atol=1e-3)


def test_mono_audio_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    sf.write(path, np.zeros(4800, dtype=np.float32), 48000, subtype="PCM_24")
    with pytest.raises(DataError, match="gcc needs two channels") as err:
        load_waveform(path, CFG)
    assert str(path) in str(err.value)


def test_config_defaults_keys_and_validation() -> None:
    paper = GccConfig()
    assert (paper.win_length, paper.hop_length, paper.n_fft, paper.n_frames) == (1024, 304, 1024,
                                                                               527)
    assert paper.feature_shape == (3, 40, 527) and paper.n_planes == 3
    assert set(paper.key_dict()) == {"kind", "sample_rate", "n_mels", "win_ms", "hop_ms",
                                     "f_min", "f_max", "clip_seconds"}
    parsed = frontend_config_from_dict({"kind": "gcc", "hop_ms": 16, "clip_seconds": 4}, "s.toml")
    assert parsed == GccConfig(hop_ms=16.0, clip_seconds=4.0)
    assert isinstance(make_frontend(parsed), GccGram)
    with pytest.raises(ConfigError, match=r"s\.toml: key 'features\.channels'"):
        frontend_config_from_dict({"kind": "gcc", "channels": "mean"}, "s.toml")
    with pytest.raises(ConfigError, match=r"key 'features\.n_mels'.*lags do not fit"):
        frontend_config_from_dict({"kind": "gcc", "n_mels": 64, "win_ms": 2.0}, "s.toml")


def test_features_are_cached_with_every_setting_in_the_key(tiny_dataset: Path,
                                                           tmp_path: Path) -> None:
    ds = load_dataset(tiny_dataset)
    cfg = GccConfig(n_mels=16, win_ms=32.0, hop_ms=16.0, clip_seconds=1.0)
    feats = build_features(ds, cfg, tmp_path, progress=False)
    assert feats.x.shape == (48, 3, 16, 63) and np.isfinite(feats.x).all()
    assert np.abs(feats.x[:, 2]).max() <= 1.0 + 1e-3  # GCC values are bounded correlations
    again = build_features(ds, cfg, tmp_path, progress=False)
    assert again.key == feats.key and len([p for p in tmp_path.iterdir() if p.is_dir()]) == 1
    keys = {cache_key(ds, cfg)}
    for change in ({"n_mels": 20}, {"win_ms": 40.0}, {"hop_ms": 10.0}, {"f_min": 50.0},
                   {"f_max": 7000.0}, {"clip_seconds": 0.5}, {"sample_rate": 8000}):
        keys.add(cache_key(ds, dataclasses.replace(cfg, **change)))
    assert len(keys) == 8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_gpu_like_on_cpu() -> None:
    wave = _delayed_pair(_noise(5), 3)
    cpu = GccGram(CFG)(wave)
    gpu = GccGram(CFG).cuda()(wave.cuda()).cpu()
    torch.testing.assert_close(gpu[:, :2], cpu[:, :2], atol=1e-3, rtol=1e-4)
    assert (_peak_lags(gpu[0, 2]) == 3).all()
