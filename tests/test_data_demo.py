"""asc_auto.data.demo: made once on first use, reused after, remade when its settings change."""

from __future__ import annotations

from pathlib import Path

import pytest

from asc_auto.data import demo
from asc_auto.data.tau import load_dataset
from asc_auto.errors import DataError


@pytest.fixture
def small_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "DEMO_SETTINGS", demo.DemoSettings(n_clips=10, clip_seconds=0.1))


def test_defaults_stay_a_fast_demo() -> None:
    settings = demo.DemoSettings()
    assert settings.n_clips * settings.clip_seconds <= 3600  # at most an hour of audio


def test_made_on_first_use_then_reused(tmp_path: Path, small_demo: None) -> None:
    root = demo.ensure_demo_dataset(tmp_path, progress=False)
    assert root == tmp_path / "demo-tau3"
    assert len(load_dataset(root).all_clips()) == 10
    meta_mtime = (root / "meta.csv").stat().st_mtime_ns
    assert demo.ensure_demo_dataset(tmp_path, progress=False) == root
    assert (root / "meta.csv").stat().st_mtime_ns == meta_mtime  # not regenerated


def test_remade_when_settings_change(
    tmp_path: Path, small_demo: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = demo.ensure_demo_dataset(tmp_path, progress=False)
    monkeypatch.setattr(demo, "DEMO_SETTINGS", demo.DemoSettings(n_clips=12, clip_seconds=0.1))
    assert len(load_dataset(demo.ensure_demo_dataset(tmp_path, progress=False)).all_clips()) == 12
    assert root.is_dir()


def test_a_foreign_folder_in_the_way_is_not_deleted(tmp_path: Path, small_demo: None) -> None:
    (tmp_path / "demo-tau3").mkdir()
    (tmp_path / "demo-tau3" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="does not look like a dataset"):
        demo.ensure_demo_dataset(tmp_path, progress=False)
    assert (tmp_path / "demo-tau3" / "notes.txt").read_text() == "mine"
