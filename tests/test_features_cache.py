"""The feature cache: built once, keyed by dataset and settings, never half-valid."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from asc_auto.data import audio
from asc_auto.data.tau import load_dataset
from asc_auto.errors import AscError, DataError
from asc_auto.features import cache
from asc_auto.features.cache import FeatureSet, build_features, feature_cache_dir
from asc_auto.features.config import LogMelConfig
from asc_auto.features.frontends import LogMel, load_waveform

CFG = LogMelConfig(clip_seconds=1.0)


@pytest.fixture(scope="module")
def source_root(tiny_dataset: Path) -> Path:
    return Path(tiny_dataset)


@pytest.fixture
def dataset_root(source_root: Path, tmp_path: Path) -> Path:
    """A private copy, so tests may touch and edit files."""
    return Path(shutil.copytree(source_root, tmp_path / "data"))


@pytest.fixture(scope="module")
def built(source_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[FeatureSet, Path]:
    cache_root = tmp_path_factory.mktemp("cache")
    return build_features(load_dataset(source_root), CFG, cache_root, progress=False), cache_root


class _CountReads:
    """Wraps read_audio, counting calls from every loader thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.lock = threading.Lock()
        real = audio.read_audio

        def counting(path: Path) -> tuple[np.ndarray, int]:
            with self.lock:
                self.calls += 1
            return real(path)

        monkeypatch.setattr(audio, "read_audio", counting)


def _forbid_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: Path) -> None:
        raise AssertionError(f"audio decoded on a cache hit: {path}")

    monkeypatch.setattr(audio, "read_audio", fail)


def test_build_stores_every_clip_once_as_float16_memmap(
    built: tuple[FeatureSet, Path], source_root: Path
) -> None:
    fs, cache_root = built
    ds = load_dataset(source_root)
    clips = ds.all_clips()
    assert fs.filenames == tuple(c.filename for c in clips)
    assert fs.x.shape == (len(clips), 1, 64, 101)
    assert fs.x.dtype == np.float16
    assert isinstance(fs.x, np.memmap)
    assert fs.y.tolist() == [ds.label_index(c.label) for c in clips]
    assert fs.labels == ds.labels
    folder = feature_cache_dir(cache_root, ds, CFG)
    assert folder.name == f"logmel-{fs.key[:16]}"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["complete"] is True
    assert meta["config"] == CFG.key_dict()
    # stored values are the frontend's output for that clip (to float16 precision)
    clip = clips[5]
    direct = LogMel(CFG)(load_waveform(ds.path(clip), CFG).unsqueeze(0))[0]
    np.testing.assert_allclose(fs.x[5].astype(np.float32), direct.numpy(), atol=0.02, rtol=2e-3)


def test_second_call_is_a_cache_hit_without_audio_reads(
    built: tuple[FeatureSet, Path], source_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs, cache_root = built
    _forbid_reads(monkeypatch)
    again = build_features(load_dataset(source_root), CFG, cache_root, progress=False)
    assert again.key == fs.key
    np.testing.assert_array_equal(again.x, fs.x)


def test_changed_setting_gives_a_new_key(built: tuple[FeatureSet, Path], source_root: Path) -> None:
    fs, cache_root = built
    ds = load_dataset(source_root)
    other = LogMelConfig(clip_seconds=1.0, n_mels=40)
    assert cache.cache_key(ds, other) != fs.key
    assert feature_cache_dir(cache_root, ds, other) != feature_cache_dir(cache_root, ds, CFG)
    assert cache.cache_key(ds, LogMelConfig(clip_seconds=1.0)) == fs.key


def test_changed_dataset_file_gives_a_new_key_and_a_touched_one_does_not(
        dataset_root: Path) -> None:
    ds = load_dataset(dataset_root)
    before = cache.cache_key(ds, CFG)
    wav = ds.path(ds.train[0])
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache.cache_key(ds, CFG) == before  # same bytes: the features are still right
    data = bytearray(wav.read_bytes())
    data[-1] ^= 1  # one sample's low bits: same size
    wav.write_bytes(bytes(data))
    changed = cache.cache_key(ds, CFG)
    assert changed != before
    csv = dataset_root / "evaluation_setup/fold1_train.csv"
    csv.write_text(csv.read_text() + "\n")  # a blank line: same clips, different bytes
    assert cache.cache_key(load_dataset(dataset_root), CFG) not in (before, changed)


def test_interrupted_build_leaves_nothing_valid_and_next_call_rebuilds(
    dataset_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = load_dataset(dataset_root)
    cache_root = tmp_path / "cache"
    real_store = cache._store
    stored = []

    def interrupt_on_second_batch(x: np.ndarray, start: int, feats: torch.Tensor) -> None:
        if stored:
            raise KeyboardInterrupt
        stored.append(start)
        real_store(x, start, feats)

    monkeypatch.setattr(cache, "_store", interrupt_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        build_features(ds, CFG, cache_root, progress=False, batch_size=8)
    assert stored == [0]
    assert not feature_cache_dir(cache_root, ds, CFG).exists()
    # the temp dir is gone too (the empty build lock beside the entry stays, by design)
    assert [p.name for p in cache_root.iterdir() if not p.name.endswith(".lock")] == []

    monkeypatch.setattr(cache, "_store", real_store)
    reads = _CountReads(monkeypatch)
    fs = build_features(ds, CFG, cache_root, progress=False, batch_size=8)
    assert reads.calls == len(ds.all_clips()) == len(fs)


@pytest.mark.parametrize("damage", ["no_marker", "truncated_x", "wrong_shape"])
def test_damaged_cache_dir_is_ignored_and_rebuilt(
    dataset_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    ds = load_dataset(dataset_root)
    cache_root = tmp_path / "cache"
    first = build_features(ds, CFG, cache_root, progress=False)
    reference = np.array(first.x)
    del first
    folder = feature_cache_dir(cache_root, ds, CFG)
    meta_path, x_path = folder / "meta.json", folder / "x.npy"
    if damage == "no_marker":
        meta = json.loads(meta_path.read_text())
        del meta["complete"]
        meta_path.write_text(json.dumps(meta))
    elif damage == "truncated_x":
        x_path.write_bytes(x_path.read_bytes()[:1000])
    else:
        np.save(x_path, np.zeros((3, 1, 64, 101), dtype=np.float16))
    reads = _CountReads(monkeypatch)
    rebuilt = build_features(ds, CFG, cache_root, progress=False)
    assert reads.calls == len(ds.all_clips())
    np.testing.assert_array_equal(rebuilt.x, reference)


def test_select_returns_float32_rows_in_the_requested_order(built: tuple[FeatureSet, Path]) -> None:
    fs, _ = built
    names = [fs.filenames[7], fs.filenames[2], fs.filenames[7]]
    x, y = fs.select(names)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape == (3, 1, 64, 101)
    np.testing.assert_array_equal(x.numpy(), fs.x[[7, 2, 7]].astype(np.float32))
    assert y.tolist() == [int(fs.y[7]), int(fs.y[2]), int(fs.y[7])]
    assert fs.index[fs.filenames[7]] == 7


def test_select_names_a_clip_that_is_not_in_the_set(built: tuple[FeatureSet, Path]) -> None:
    fs, _ = built
    with pytest.raises(AscError, match=r"audio/nope\.wav"):
        fs.select([fs.filenames[0], "audio/nope.wav"])


def test_bad_audio_surfaces_as_data_error_from_the_loader_threads(
    dataset_root: Path, tmp_path: Path
) -> None:
    ds = load_dataset(dataset_root)
    broken = ds.path(ds.evaluate[-1])
    broken.write_bytes(broken.read_bytes()[:2000])  # truncated WAV
    with pytest.raises(DataError) as info:
        build_features(ds, CFG, tmp_path / "cache", progress=False)
    assert info.value.file == str(broken)
    assert not feature_cache_dir(tmp_path / "cache", ds, CFG).exists()


def test_losing_a_rename_race_uses_the_winners_entry(
    dataset_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = load_dataset(dataset_root)
    real_write = cache._write_entry

    def winner_then_fail(final: Path, *args: object) -> None:
        real_write(final, *args)  # "another process" puts a valid entry in place...
        raise OSError(39, "Directory not empty")  # ...and our own rename fails

    monkeypatch.setattr(cache, "_write_entry", winner_then_fail)
    fs = build_features(ds, CFG, tmp_path / "cache", progress=False)
    assert len(fs) == len(ds.all_clips())

    def fail_without_entry(final: Path, *args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "_write_entry", fail_without_entry)
    with pytest.raises(OSError, match="No space"):
        build_features(ds, CFG, tmp_path / "other", progress=False)


def test_select_can_keep_float16_as_cached(built: tuple[FeatureSet, Path]) -> None:
    fs, _ = built
    names = list(fs.filenames[:3])
    x32, y32 = fs.select(names)
    x16, y16 = fs.select(names, dtype=torch.float16)
    assert x16.dtype == torch.float16 and x32.dtype == torch.float32
    assert torch.equal(x16.float(), x32)  # the cache is float16: nothing is lost
    assert torch.equal(y16, y32)
