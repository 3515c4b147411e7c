"""The CLI through typer's CliRunner: real commands on the tiny dataset, errors as one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from asc_auto.cli import app

SPACE = Path(__file__).parent / "spaces" / "kd.toml"
runner = CliRunner()


def _search(tmp_path: Path, data: Path, *extra: str):
    return runner.invoke(app, [
        "search", "--technique", "kd", "--data", str(data), "--space", str(SPACE),
        "--trials", "1", "--epochs", "1", "--storage", f"sqlite:///{tmp_path / 'cli.db'}",
        "--home", str(tmp_path / "home"), *extra,
    ])


@pytest.mark.slow
def test_search_then_show_prints_the_tables(tmp_path: Path, tiny_dataset: Path) -> None:
    result = _search(tmp_path, tiny_dataset)
    assert result.exit_code == 0, result.output
    assert "1 complete" in result.output
    assert "Pareto front" in result.output
    assert "0 paper" in result.output  # the enqueued paper trial is in the table
    assert "KD teacher" in result.output

    shown = runner.invoke(app, ["show", "--study", "kd",
                                "--storage", f"sqlite:///{tmp_path / 'cli.db'}"])
    assert shown.exit_code == 0, shown.output
    assert "best feasible trials" in shown.output and "0 paper" in shown.output


def test_show_unknown_study_is_one_line_error(tmp_path: Path) -> None:
    from asc_auto.storage import open_storage

    open_storage(f"sqlite:///{tmp_path / 'x.db'}", create=True)  # an existing, empty storage
    result = runner.invoke(app, ["show", "--study", "nope",
                                 "--storage", f"sqlite:///{tmp_path / 'x.db'}"])
    assert result.exit_code == 2
    assert "no study 'nope'" in result.output
    assert "Traceback" not in result.output


def test_bad_space_file_names_the_key(tmp_path: Path, tiny_dataset: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SPACE.read_text().replace("[params.c1]", "[params.c1]\nlgo = true", 1))
    result = runner.invoke(app, [
        "search", "--technique", "kd", "--data", str(tiny_dataset), "--space", str(bad),
        "--storage", f"sqlite:///{tmp_path / 'cli.db'}", "--home", str(tmp_path / "home"),
    ])
    assert result.exit_code == 2
    assert "params.c1.lgo" in result.output and str(bad) in result.output
    assert "Traceback" not in result.output


def test_unknown_technique_is_rejected_by_the_cli() -> None:
    result = runner.invoke(app, ["search", "--technique", "nope"])
    assert result.exit_code != 0
    assert "nope" in result.output


def test_broken_dataset_is_one_line_error(tmp_path: Path) -> None:
    data = tmp_path / "empty"
    data.mkdir()
    result = runner.invoke(app, ["search", "--technique", "kd", "--data", str(data),
                                 "--home", str(tmp_path / "home"),
                                 "--storage", f"sqlite:///{tmp_path / 'cli.db'}"])
    assert result.exit_code == 2
    assert "meta.csv" in result.output


def test_sigterm_stops_like_ctrl_c_and_restores_the_handler() -> None:
    import os
    import signal

    import typer

    from asc_auto.console import user_errors

    before = signal.getsignal(signal.SIGTERM)

    @user_errors
    def long_job() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt")

    with pytest.raises(typer.Exit) as stop:
        long_job()
    assert stop.value.exit_code == 130
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.parametrize(("command", "texts"), [
    ("search", ["[default: built-in demo data]", "[default: technique]",
                "[default: the shipped <t>.toml]", "[default: searched]",
                "[default: sqlite:///<home>/asc.db]", "[default: the rule's limit]",
                "[default: the rule's limit, if any]"]),
    ("retrain", ["[default: the search's]", "[default: best feasible]"]),
    ("export", ["[default: asc-auto_<study>_task1b_1]"]),
    ("show", ["[default: sqlite:///<home>/asc.db]"]),
])
def test_help_keeps_the_defaults_written_in_it(command: str, texts: list[str]) -> None:
    """rich markup read "[default: ...]" in help texts as a tag and dropped it (issue 14)."""
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    flat = " ".join(result.output.split())
    for text in texts:
        assert text in flat, text
