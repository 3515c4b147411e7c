"""asc_auto.data.audio: decoding, header facts, and the damage libsndfile would hide."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asc_auto.data.audio import AudioInfo, audio_info, read_audio
from asc_auto.errors import DataError


def _wav(path: Path, channels: int = 2, frames: int = 4800, sr: int = 48000) -> np.ndarray:
    rng = np.random.default_rng(0)
    data = (rng.uniform(-0.5, 0.5, (frames, channels))).astype(np.float32)
    sf.write(str(path), data, sr, subtype="PCM_24")
    return data


def test_read_audio_returns_float32_channels_first(tmp_path: Path) -> None:
    written = _wav(tmp_path / "x.wav", channels=2, frames=4800)
    data, sr = read_audio(tmp_path / "x.wav")
    assert sr == 48000
    assert data.dtype == np.float32
    assert data.shape == (2, 4800)
    np.testing.assert_allclose(data, written.T, atol=2**-22)  # 24-bit round trip


def test_read_audio_mono_keeps_a_channel_axis(tmp_path: Path) -> None:
    _wav(tmp_path / "mono.wav", channels=1, frames=1000, sr=16000)
    data, sr = read_audio(tmp_path / "mono.wav")
    assert (data.shape, sr) == ((1, 1000), 16000)


def test_audio_info_reports_header_facts(tmp_path: Path) -> None:
    _wav(tmp_path / "x.wav", channels=2, frames=24000, sr=48000)
    assert audio_info(tmp_path / "x.wav") == AudioInfo(
        sample_rate=48000, channels=2, frames=24000, duration_s=0.5
    )


def test_truncated_wav_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    _wav(path, frames=4800)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    assert sf.info(str(path)).frames < 4800  # libsndfile alone silently shortens it
    for call in (audio_info, read_audio):
        with pytest.raises(DataError, match="truncated WAV") as err:
            call(path)
        assert str(path) in str(err.value)
        assert "fix:" in str(err.value)


def test_wav_cut_inside_its_header_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "header.wav"
    _wav(path)
    path.write_bytes(path.read_bytes()[:40])  # "data" chunk header is incomplete
    with pytest.raises(DataError, match=r"header\.wav"):
        audio_info(path)


def test_header_only_wav_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty_data.wav"
    sf.write(str(path), np.zeros((0, 2), dtype=np.float32), 48000, subtype="PCM_24")
    with pytest.raises(DataError, match="empty audio"):
        read_audio(path)


@pytest.mark.parametrize("content", [b"", b"this is not audio" * 10])
def test_unreadable_files_are_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(DataError, match="unreadable audio") as err:
        read_audio(path)
    assert str(path) in str(err.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unreadable audio"):
        audio_info(tmp_path / "nope.wav")
