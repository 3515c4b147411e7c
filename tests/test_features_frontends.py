"""Log-mel frontend and waveform loading: shapes, frequency placement, channels, crop/pad."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from asc_auto.errors import DataError
from asc_auto.features.config import LogMelConfig
from asc_auto.features.frontends import LogMel, load_waveform, make_frontend


def _tone(freq: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (0.5 * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def _write(path: Path, channels: list[np.ndarray], sr: int = 48000) -> Path:
    sf.write(path, np.stack(channels, axis=1), sr, subtype="PCM_24")
    return path


def _expected_band(freq: float, cfg: LogMelConfig) -> int:
    """Mel band whose (HTK) centre frequency is nearest `freq`."""

    def mel(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    f_max = cfg.f_max or cfg.sample_rate / 2
    points = np.linspace(mel(cfg.f_min), mel(f_max), cfg.n_mels + 2)
    centres_hz = 700.0 * (10 ** (points[1:-1] / 2595.0) - 1.0)
    return int(np.argmin(np.abs(centres_hz - freq)))


def _peak_band(planes: torch.Tensor) -> list[int]:
    """Loudest band per plane of one example (planes, F, T), averaged over time."""
    return planes.mean(dim=-1).argmax(dim=-1).tolist()


def test_paper_settings_give_64_by_1001_float32() -> None:
    cfg = LogMelConfig()
    out = LogMel(cfg)(torch.zeros(3, 1, cfg.n_samples))
    assert out.shape == (3, 1, 64, 1001)
    assert out.dtype == torch.float32
    # digital silence hits the log floor, finite
    assert torch.allclose(out, torch.full_like(out, math.log(1e-6)))


@pytest.mark.parametrize("freq", [250.0, 1000.0, 3000.0, 6000.0])
def test_pure_tone_lands_in_the_nearest_mel_band(freq: float) -> None:
    cfg = LogMelConfig(clip_seconds=1.0)
    wave = torch.from_numpy(_tone(freq, 1.0, cfg.sample_rate)).view(1, 1, -1)
    out = make_frontend(cfg)(wave)
    assert _peak_band(out[0]) == [_expected_band(freq, cfg)]


def test_stereo_gives_one_plane_per_channel_and_mean_mixes_them(tmp_path: Path) -> None:
    path = _write(tmp_path / "lr.wav", [_tone(500.0, 1.0, 48000), _tone(3000.0, 1.0, 48000)])
    low, high = _expected_band(500.0, LogMelConfig()), _expected_band(3000.0, LogMelConfig())
    feats = {}
    for mode in ("stereo", "mean", "left", "right"):
        cfg = LogMelConfig(clip_seconds=1.0, channels=mode)
        wave = load_waveform(path, cfg)
        assert wave.shape == (cfg.n_planes, 16000)
        feats[mode] = LogMel(cfg)(wave.unsqueeze(0))[0]
    assert feats["stereo"].shape == (2, 64, 101)
    assert _peak_band(feats["stereo"]) == [low, high]
    assert _peak_band(feats["left"]) == [low]
    assert _peak_band(feats["right"]) == [high]
    torch.testing.assert_close(feats["stereo"][0], feats["left"][0])
    torch.testing.assert_close(feats["stereo"][1], feats["right"][0])
    # the downmix holds both tones, each about 6 dB (x0.25 power) below its own channel
    mean_db = feats["mean"][0].mean(dim=-1)
    left_db, right_db = feats["left"][0].mean(dim=-1), feats["right"][0].mean(dim=-1)
    assert float(mean_db[low]) == pytest.approx(float(left_db[low]) - math.log(4), abs=0.1)
    assert float(mean_db[high]) == pytest.approx(float(right_db[high]) - math.log(4), abs=0.1)


def test_logmel_reduces_raw_stereo_input_with_its_channel_mode() -> None:
    cfg = LogMelConfig(clip_seconds=0.5, channels="mean")
    stereo = torch.randn(2, 2, cfg.n_samples)
    torch.testing.assert_close(LogMel(cfg)(stereo), LogMel(cfg)(stereo.mean(dim=1, keepdim=True)))
    right = LogMelConfig(clip_seconds=0.5, channels="right")
    torch.testing.assert_close(LogMel(right)(stereo), LogMel(right)(stereo[:, 1:2]))


def test_mono_file_serves_left_and_right_but_not_stereo(tmp_path: Path) -> None:
    path = _write(tmp_path / "mono.wav", [_tone(1000.0, 1.0, 48000)])
    left = load_waveform(path, LogMelConfig(clip_seconds=1.0, channels="left"))
    right = load_waveform(path, LogMelConfig(clip_seconds=1.0, channels="right"))
    mean = load_waveform(path, LogMelConfig(clip_seconds=1.0, channels="mean"))
    assert left.shape == (1, 16000)
    torch.testing.assert_close(left, right)
    torch.testing.assert_close(left, mean)
    with pytest.raises(DataError, match="needs two channels") as info:
        load_waveform(path, LogMelConfig(clip_seconds=1.0, channels="stereo"))
    assert info.value.file == str(path)


def test_long_clip_is_resampled_then_cropped_keeping_the_start(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = (0.2 * rng.standard_normal(72000)).astype(np.float32)  # 1.5 s at 48 kHz
    path = _write(tmp_path / "long.wav", [noise], sr=48000)
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    full = torchaudio.functional.resample(torch.from_numpy(data.T.copy()), 48000, 16000)
    wave = load_waveform(path, LogMelConfig(clip_seconds=1.0))
    assert full.shape[-1] == 24000
    assert wave.shape == (1, 16000)
    torch.testing.assert_close(wave, full[:, :16000])


def test_short_clip_is_zero_padded_at_the_end(tmp_path: Path) -> None:
    path = _write(tmp_path / "short.wav", [_tone(440.0, 0.5, 48000)] * 2)
    wave = load_waveform(path, LogMelConfig(clip_seconds=1.0))
    assert wave.shape == (1, 16000)
    assert torch.count_nonzero(wave[:, 8000:]) == 0
    assert wave[:, :8000].abs().max() > 0.4  # the tone itself is kept at the start


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_logmel_runs_on_cuda_and_matches_cpu() -> None:
    cfg = LogMelConfig(clip_seconds=1.0, channels="stereo")
    wave = torch.randn(4, 2, cfg.n_samples)
    cpu = LogMel(cfg)(wave)
    gpu = LogMel(cfg).cuda()(wave.cuda())
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=1e-3)
