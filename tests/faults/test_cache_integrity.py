"""Fault corpus: a damaged feature or teacher cache is rebuilt, never used (issue 8 item 7).

Each entry's meta.json holds the sha256 of its arrays, written with them and checked on every
load; a mismatch gives one status line and a rebuild in place.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from asc_auto.data.tau import load_dataset
from asc_auto.features.cache import CACHE_FORMAT_VERSION, X_FILE, Y_FILE, build_features
from asc_auto.features.config import LogMelConfig
from asc_auto.search import SearchOptions, prepare_search

SPACE = Path(__file__).parents[1] / "spaces" / "kd.toml"
CFG = LogMelConfig(n_mels=16, clip_seconds=0.5)


def _entries(root: Path) -> list[str]:
    """Cache entries and leftover temp folders (not the build locks that sit beside them)."""
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def test_an_overwritten_feature_cache_is_rebuilt_not_used(tiny_dataset: Path,
                                                          tmp_path: Path) -> None:
    ds = load_dataset(tiny_dataset)
    first = build_features(ds, CFG, tmp_path, progress=False)
    good = np.array(first.x, dtype=np.float32)
    (entry,) = _entries(tmp_path)
    x = np.load(tmp_path / entry / X_FILE, mmap_mode="r+")
    x[: int(0.998 * x.size) // x[0].size] = np.nan  # 99.8 % NaN, shapes and meta untouched
    x.flush()
    del x, first
    said: list[str] = []
    again = build_features(ds, CFG, tmp_path, progress=False, status=said.append)
    assert np.array_equal(np.asarray(again.x, dtype=np.float32), good)
    assert len(said) == 1 and "x.npy changed since it was written" in said[0], said
    assert "rebuilding" in said[0]
    assert _entries(tmp_path) == [entry]  # replaced in place, no temps


def test_a_cache_entry_records_the_checksum_of_each_array(tiny_dataset: Path,
                                                          tmp_path: Path) -> None:
    build_features(load_dataset(tiny_dataset), CFG, tmp_path, progress=False)
    (entry,) = _entries(tmp_path)
    meta = json.loads((tmp_path / entry / "meta.json").read_text())
    assert meta["format"] == CACHE_FORMAT_VERSION >= 2
    assert set(meta["sha256"]) == {X_FILE, Y_FILE}
    assert all(len(digest) == 64 for digest in meta["sha256"].values())


def test_relabelled_clips_are_rebuilt(tiny_dataset: Path, tmp_path: Path) -> None:
    """y.npy is covered too: labels shifted within the valid range pass every shape check."""
    ds = load_dataset(tiny_dataset)
    good = build_features(ds, CFG, tmp_path, progress=False).y.copy()
    (entry,) = _entries(tmp_path)
    np.save(tmp_path / entry / Y_FILE, (good + 1) % len(ds.labels))
    said: list[str] = []
    again = build_features(ds, CFG, tmp_path, progress=False, status=said.append)
    assert np.array_equal(again.y, good)
    assert len(said) == 1 and "y.npy changed" in said[0]


def test_a_damaged_teacher_cache_is_trained_again(tiny_dataset: Path, tmp_path: Path) -> None:
    opts = SearchOptions(technique="kd", data=tiny_dataset, space=SPACE, home=tmp_path,
                         progress=False, epochs=1)
    setup = prepare_search(opts, status=lambda m: None)
    setup.technique.prepare(setup.context)
    (folder,) = (p for p in (tmp_path / "cache" / "teachers").iterdir() if p.is_dir())
    outputs = dict(np.load(folder / "outputs.npz"))
    outputs["logits"][:] = np.nan
    np.savez(folder / "outputs.npz", **outputs)
    said: list[str] = []
    again = prepare_search(opts, status=said.append)
    again.technique.prepare(again.context)
    teacher = again.technique.teacher_for(again.context)
    assert teacher is not None and np.isfinite(teacher.logits).all()  # trained again
    damaged = [line for line in said if "changed since it was written" in line]
    assert len(damaged) == 1 and "outputs.npz" in damaged[0] and "teacher" in damaged[0], said
    assert _entries(folder.parent) == [folder.name]  # replaced, no temps
