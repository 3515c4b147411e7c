"""`data synth` / `data check` through Typer's CliRunner on an app that mounts data_app."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from typer.testing import CliRunner

from asc_auto.cli_data import data_app
from asc_auto.data.tau import load_dataset

app = typer.Typer()
app.add_typer(data_app, name="data")
runner = CliRunner()


def test_check_prints_the_summary_table(tiny_dataset: Path) -> None:
    result = runner.invoke(app, ["data", "check", "--data", str(tiny_dataset)])
    assert result.exit_code == 0, result.output
    for text in ("indoor", "outdoor", "transportation", "evaluate", "48000 Hz", "35", "13"):
        assert text in result.output


def test_check_reports_a_broken_dataset_in_one_line(tiny_dataset: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset, broken)
    (broken / "evaluation_setup/fold1_evaluate.csv").unlink()
    result = runner.invoke(app, ["data", "check", "--data", str(broken)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert "fold1_evaluate.csv: missing file; fix: point --data at the dataset root" in lines[0]


def test_check_names_the_row_of_a_truncated_clip(tiny_dataset: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dataset, broken)
    clip = load_dataset(broken).evaluate[0].filename
    wav = broken / clip
    wav.write_bytes(wav.read_bytes()[:5000])
    result = runner.invoke(app, ["data", "check", "--data", str(broken)])
    assert result.exit_code == 2
    assert "truncated WAV" in result.output
    assert "fold1_evaluate.csv, row 2" in result.output


def test_synth_writes_a_checkable_dataset(tmp_path: Path) -> None:
    out = tmp_path / "made"
    args = ["data", "synth", "--out", str(out), "--clips", "10", "--seconds", "0.2", "--seed", "7"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote 10 clips" in result.output
    assert len(load_dataset(out).all_clips()) == 10

    again = runner.invoke(app, args)
    assert again.exit_code == 2
    assert "already exists and is not empty" in again.output
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_synth_rejects_too_few_clips(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "x"), "--clips", "3"])
    assert result.exit_code == 2
    assert not (tmp_path / "x").exists()
