"""Fault corpus: what the tool writes never destroys what a user has, and looks like their files.

Issue 8 items 2 (`export --out DIR` deleted DIR) and 10 (0600/0700 files, stale temp folders).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from asc_auto.cli import app
from asc_auto.errors import UsageError
from asc_auto.export import check_out_folder, export_study
from asc_auto.io import MANIFEST, atomic_dir, atomic_path, remove_stale_temps, write_text_atomic
from asc_auto.retrain import retrain
from asc_auto.search import SearchOptions, run_search

SPACE = Path(__file__).parents[1] / "spaces" / "kd.toml"
runner = CliRunner()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_export_refuses_a_user_folder_before_any_work(tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("years of work")
    (work / "data").mkdir()
    (work / "data" / "a.wav").write_bytes(b"RIFF")
    before = _tree(work)
    monkeypatch.chdir(work)
    # `--out .` once emptied the working directory; no study is needed to be refused.
    result = runner.invoke(app, ["export", "--study", "kd", "--out", "."])
    assert result.exit_code == 2, result.output
    assert "not an asc-auto export package" in result.output and "\n" not in result.output.strip()
    assert _tree(work) == before
    result = runner.invoke(app, ["export", "--study", "kd", "--out", ".", "--force"])
    assert result.exit_code == 2 and _tree(work) == before  # --force does not change that


def test_check_out_folder_rules(tmp_path: Path) -> None:
    check_out_folder(tmp_path / "new", force=False)  # a new folder
    (tmp_path / "empty").mkdir()
    check_out_folder(tmp_path / "empty", force=False)  # an empty one
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        check_out_folder(tmp_path / "file", force=True)
    pkg = tmp_path / "pkg"  # an earlier package written before packages had a manifest
    pkg.mkdir()
    for name in ("model.xml", "model.bin", "export.json", "x_task1b_1.meta.yaml"):
        (pkg / name).write_text("{}")
    with pytest.raises(UsageError, match="--force"):
        check_out_folder(pkg, force=False)
    check_out_folder(pkg, force=True)
    (pkg / "my-notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"my-notes\.txt"):
        check_out_folder(pkg, force=True)


@pytest.mark.slow
def test_export_replaces_its_own_package_only_with_force(tiny_dataset: Path,
                                                         tmp_path: Path) -> None:
    home = tmp_path / "home"
    study = run_search(SearchOptions(technique="kd", data=tiny_dataset, space=SPACE, trials=1,
                                     epochs=1, storage=f"sqlite:///{home / 'asc.db'}",
                                     home=home, progress=False), status=lambda m: None)
    retrain(study, seeds=1, home=home, progress=False, status=lambda m: None)
    out = tmp_path / "pkg"
    export_study(study, out, home=home, status=lambda m: None)
    assert (out / MANIFEST).is_file()
    first = _tree(out)
    with pytest.raises(UsageError, match="--force"):
        export_study(study, out, home=home, status=lambda m: None)
    assert _tree(out) == first
    export_study(study, out, home=home, force=True, status=lambda m: None)
    assert set(_tree(out)) == set(first)
    (out / "submission-notes.md").write_text("mine")
    with pytest.raises(UsageError, match=r"submission-notes\.md"):
        export_study(study, out, home=home, force=True, status=lambda m: None)
    assert (out / "submission-notes.md").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_atomic_dir_replaces_only_its_own_output(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "user.txt").write_text("mine")
    with pytest.raises(FileExistsError), atomic_dir(target) as tmp:
        (tmp / "a").write_text("new")
    assert (target / "user.txt").read_text() == "mine"
    other = tmp_path / "ours"
    with atomic_dir(other) as tmp:
        (tmp / "a").write_text("1")
    with atomic_dir(other) as tmp:  # its own output: replaced
        (tmp / "a").write_text("2")
    assert (other / "a").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours", "out"]  # no temps left


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_written_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "f.txt", "x")
        with atomic_path(tmp_path / "g.bin") as tmp:
            tmp.write_bytes(b"x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "inner").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "g.bin").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~umask


def test_temps_of_a_killed_writer_are_removed_others_kept(tmp_path: Path) -> None:
    """A process killed inside atomic_dir leaves its temp folder; the next write removes it,
    but never a live process's temp folder or a user's dotted file."""
    code = ("import os, sys; from pathlib import Path; from asc_auto.io import atomic_dir\n"
            "with atomic_dir(Path(sys.argv[1]) / 'entry') as tmp:\n"
            "    (tmp / 'x.npy').write_bytes(b'0' * 10)\n"
            "    os._exit(9)\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    left = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(left) == 1 and left[0].name.startswith(".entry.")
    live = tmp_path / left[0].name.replace(left[0].name.split(".")[3], str(os.getpid()), 1)
    live.mkdir()  # looks like ours, but its process (this one) is alive
    (tmp_path / ".user.settings.tmp").write_text("mine")  # not our naming pattern
    removed = remove_stale_temps(tmp_path)
    assert removed == left
    assert live.exists() and (tmp_path / ".user.settings.tmp").exists()
    with atomic_dir(tmp_path / "other") as tmp:  # any atomic write sweeps the folder too
        (tmp / "a").write_text("x")
    assert live.exists()


def test_a_build_lock_held_elsewhere_is_waited_for_and_said(tmp_path: Path) -> None:
    """Two workers needing one cache entry: the second waits for the first (build_lock), and
    says so; try_lock gives nothing while the lock is held."""
    import threading

    from asc_auto.io import build_lock, try_lock

    target = tmp_path / "features" / "entry"
    (tmp_path / "features").mkdir()
    held = try_lock(tmp_path / "features" / ".entry.lock")  # the first worker, building
    assert held is not None and try_lock(tmp_path / "features" / ".entry.lock") is None
    said: list[str] = []
    entered = threading.Event()

    def second() -> None:
        with build_lock(target, said.append):
            entered.set()

    worker = threading.Thread(target=second)
    worker.start()
    assert not entered.wait(0.5)  # still waiting while the first holds it
    assert said == ["waiting for another worker building entry"]
    held.release()
    worker.join(10)
    assert entered.is_set()
