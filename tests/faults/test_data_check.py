"""Fault corpus: `data check` accepts exactly what `search` accepts (issue 8 item 7).

`check_dataset` runs `scan_audio` and the feature build runs `read_audio`; both decode through
the one `_checked_frames` (header, truncation, NaN/inf anywhere in the file), `scan_audio` in
blocks. Mixed sample rates are accepted by both (every frontend resamples each clip) and
reported by `check` as a fact.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from rich.console import Console
from typer.testing import CliRunner

import asc_auto.data.audio as audio_mod
from asc_auto.cli import app
from asc_auto.cli_data import summary_table
from asc_auto.data.audio import read_audio, scan_audio
from asc_auto.data.tau import check_dataset, load_dataset
from asc_auto.errors import DataError
from asc_auto.features.cache import build_features
from asc_auto.features.config import LogMelConfig

CFG = LogMelConfig(n_mels=16, clip_seconds=0.1)  # crops the first 0.1 s of each 1 s clip
runner = CliRunner()


def _copy(tiny_dataset: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    return root


def _rewrite(path: Path, damage: str) -> None:
    """Replace a clip by a damaged version of itself (the name stays, so the CSVs do not change)."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    path.unlink()
    if damage in ("nan_at_end", "inf_in_second_block"):
        at = -5 if damage == "nan_at_end" else len(data) * 3 // 4
        data[at:] = np.nan if damage == "nan_at_end" else np.inf
        sf.write(str(path), data, rate, subtype="FLOAT", format="WAV")
    elif damage == "truncated_flac":
        sf.write(str(path), data, rate, subtype="PCM_24", format="FLAC")
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])
    elif damage == "truncated_wav":
        sf.write(str(path), data, rate, subtype="PCM_24", format="WAV")
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # garbage
        path.write_bytes(b"RIFF" + bytes(200))


DAMAGE = ("nan_at_end", "inf_in_second_block", "truncated_flac", "truncated_wav", "garbage")


@pytest.mark.parametrize("damage", DAMAGE)
def test_check_and_search_refuse_the_same_files_for_the_same_reason(
        damage: str, tiny_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(audio_mod, "_SCAN_FRAMES", 4096)  # several blocks per 1 s clip
    root = _copy(tiny_dataset, tmp_path)
    ds = load_dataset(root)
    victim = ds.path(ds.train[0])
    _rewrite(victim, damage)
    with pytest.raises(DataError) as checked:
        check_dataset(root, progress=False)
    with pytest.raises(DataError) as searched:
        build_features(ds, CFG, tmp_path / "cache", progress=False)
    assert checked.value.file == searched.value.file == str(victim)
    # the same reason (libsndfile words a broken FLAC stream by where its read stopped)
    assert checked.value.problem.split(" (")[0] == searched.value.problem.split(" (")[0]
    if "NaN" in searched.value.problem:  # ... and the same first bad frame
        assert checked.value.problem.startswith(searched.value.problem)
    assert "fold1_train.csv, row 2" in checked.value.problem  # check adds the CSV row


def test_nan_is_reported_at_its_frame_from_any_block(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(audio_mod, "_SCAN_FRAMES", 1000)
    requested: list[int] = []
    real_read = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):  # type: ignore[no-untyped-def]
        requested.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    data = np.zeros((48000, 2), dtype=np.float32)
    data[30001, 1] = np.inf
    sf.write(str(tmp_path / "x.wav"), data, 48000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"first at frame 30001, 0\.625 s"):
        scan_audio(tmp_path / "x.wav")
    assert requested and max(requested) <= 1000  # streamed: never the whole file at once
    with pytest.raises(DataError, match=r"first at frame 30001, 0\.625 s"):
        read_audio(tmp_path / "x.wav")


def test_data_check_names_a_nan_clip_and_its_row_in_one_line(tiny_dataset: Path,
                                                             tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    victim = load_dataset(root).path(load_dataset(root).evaluate[0])
    _rewrite(victim, "nan_at_end")
    result = runner.invoke(app, ["data", "check", "--data", str(root)])
    assert result.exit_code == 2, result.output
    assert str(victim) in result.output and "NaN or infinite samples" in result.output
    assert "fold1_evaluate.csv, row 2" in result.output and "fix:" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_check_and_search_both_accept_mixed_sample_rates(tiny_dataset: Path,
                                                         tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    ds = load_dataset(root)
    odd = ds.path(ds.train[0])
    data, _ = sf.read(str(odd), dtype="float32", always_2d=True)
    sf.write(str(odd), data[::3], 16000, subtype="PCM_24")
    summary = check_dataset(root, progress=False)
    assert summary.sample_rates == (16000, 48000)
    console = Console(record=True, width=160)
    console.print(summary_table(summary))
    assert "16000 Hz, 48000 Hz (mixed: each clip is resampled" in console.export_text()
    feats = build_features(ds, CFG, tmp_path / "cache", progress=False)
    assert np.isfinite(np.asarray(feats.x, dtype=np.float32)).all()
