"""`asc-auto clean` / `make clean-studies`: what the tool wrote under --home goes, nothing else."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
from typer.testing import CliRunner

from asc_auto.clean import clean, plan_clean
from asc_auto.cli import app
from asc_auto.data.filehash import file_hashes
from asc_auto.io import atomic_dir, file_sha256
from asc_auto.procs import HOST
from asc_auto.storage import open_storage
from asc_auto.summary import write_report


def _tool_folder(path: Path, files: dict[str, str]) -> None:
    with atomic_dir(path) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _home(tmp_path: Path) -> Path:
    """A home as searches, retrains, reports, exports and pretrain leave it, plus user files."""
    home = tmp_path / "studies"
    url = f"sqlite:///{home / 'asc.db'}"
    study = optuna.create_study(storage=open_storage(url, create=True), study_name="kd",
                                direction="maximize")
    study.set_user_attr("technique", "kd")
    _tool_folder(home / "data" / "demo-tau3", {"meta.csv": "x", "audio/a.wav": "w"})
    (home / "data" / ".demo-tau3.lock").write_text("")  # io.build_lock's lock file
    _tool_folder(home / "cache" / "features" / "abc123", {"features.npy": "f"})
    _tool_folder(home / "cache" / "teachers" / "def456", {"teacher.safetensors": "t"})
    (home / "data" / "demo-tau3" / "audio" / "a.wav").write_bytes(b"RIFF")
    file_hashes([home / "data" / "demo-tau3" / "audio" / "a.wav"], home / "cache")  # writes
    # cache/file-sha256.json, the remembered hashes; one of that name elsewhere is the user's
    (home / "mine").mkdir()
    (home / "mine" / "file-sha256.json").write_text("{}")
    _tool_folder(home / "kd" / "retrain" / "trial-0-aa" / "seed-0", {"result.json": "{}"})
    _tool_folder(home / "export" / "kd", {"model.xml": "<x/>", "export.json": "{}"})
    write_report(open_storage(url), home / "report")
    (home / "pre.safetensors").write_bytes(b"weights")
    (home / "pre.json").write_text(json.dumps(
        {"checkpoint": "pre.safetensors", "sha256": file_sha256(home / "pre.safetensors")}))
    (home / f".asc.db.{HOST}.{_dead_pid()}.abc.tmp").write_text("half")  # a killed write
    # The user's: kept.
    (home / "README.md").write_text("mine")
    (home / "cache" / "notes.txt").write_text("mine")
    stopped = home / "cache" / "epoch-state" / "0123abcd"  # a stopped training's epochs
    stopped.mkdir(parents=True)
    (stopped / "epoch-state.json").write_text(json.dumps({"format": 1, "key": "k"}))
    (stopped / "training-0.pt").write_bytes(b"state")
    (stopped / "kept-rewind.pt").write_bytes(b"state")
    (stopped.parent / ".0123abcd.lock").write_bytes(b"")  # its owner's lock, beside it
    look_alike = home / "mine" / "runs"  # the names without the tool's marker: the user's
    look_alike.mkdir(parents=True)
    (look_alike / "training-0.pt").write_bytes(b"mine")
    (home / "report" / "slides.pdf").write_text("mine")
    (home / "export" / "edited").mkdir()
    _tool_folder(home / "export" / "edited" / "pkg", {"model.xml": "<x/>"})
    (home / "export" / "edited" / "pkg" / "added-by-me.txt").write_text("mine")
    (home / "other.json").write_text(json.dumps({"checkpoint": "README.md", "sha256": "0"}))
    return home


def _rel(paths: list[Path], home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in paths}


def test_clean_removes_what_the_tool_wrote_and_only_that(tmp_path: Path) -> None:
    home = _home(tmp_path)
    plan = plan_clean(home)
    assert (home / "asc.db").exists()  # planning touches nothing
    removed = _rel(plan.remove, home)
    assert removed == {
        "asc.db", "asc.db.asc-setup.lock", "data", "cache/features", "cache/teachers",
        "cache/epoch-state",
        "cache/file-sha256.json", "kd",
        "export/kd",
        "report/summary.md", "report/kd-pareto.png", "report/kd-history.png",
        "pre.safetensors", "pre.json", next(p.name for p in home.glob(".asc.db.*.tmp")),
    }
    clean(home)
    left = {str(p.relative_to(home)) for p in home.rglob("*")}
    assert left == {
        "README.md", "cache", "cache/notes.txt", "report", "report/slides.pdf", "mine",
        "mine/file-sha256.json", "mine/runs", "mine/runs/training-0.pt",
        "export", "export/edited", "export/edited/pkg", "export/edited/pkg/model.xml",
        "export/edited/pkg/.asc-auto-written.json", "export/edited/pkg/added-by-me.txt",
        "other.json",
    }


def test_clean_cli_dry_run_then_clean(tmp_path: Path) -> None:
    home = _home(tmp_path)
    runner = CliRunner()
    dry = runner.invoke(app, ["clean", "--dry-run", "--home", str(home)],
                        env={"COLUMNS": "250"})
    assert dry.exit_code == 0, dry.output
    assert "would remove 15 entries" in dry.output and (home / "asc.db").exists()
    done = runner.invoke(app, ["clean", "--home", str(home)], env={"COLUMNS": "250"})
    assert done.exit_code == 0, done.output
    assert "removed 15 entries" in done.output and not (home / "asc.db").exists()
    assert (home / "README.md").read_text() == "mine"
    again = runner.invoke(app, ["clean", "--home", str(home)], env={"COLUMNS": "250"})
    assert "removed 0 entries" in again.output
