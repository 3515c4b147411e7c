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
    # status lines are text, not rich markup: nothing in them is swallowed as a style tag
    assert "each trial trains 1 epoch (--epochs) of " in result.output

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


def test_messages_with_square_brackets_print_as_written(tmp_path: Path,
                                                        tiny_dataset: Path) -> None:
    """Rich reads '[teacher]' or a path 'runs[old]' as markup and drops it unless escaped: errors
    and status lines must reach the user as written."""
    import io

    from rich.console import Console

    import asc_auto.cli as cli

    odd = tmp_path / "runs[old]" / "space.toml"  # a file that does not exist, brackets in its path
    result = runner.invoke(app, ["search", "--technique", "kd", "--data", str(tiny_dataset),
                                 "--space", str(odd), "--home", str(tmp_path / "home")])
    assert result.exit_code == 2 and "runs[old]" in result.output, result.output
    out = io.StringIO()
    real = cli.console
    cli.console = Console(file=out, width=200)
    try:
        cli._say("a larger [teacher] budget, [train] epochs = 12")
    finally:
        cli.console = real
    assert out.getvalue().strip() == "a larger [teacher] budget, [train] epochs = 12"


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


def test_a_benchmark_script_with_a_wrong_data_path_says_so_in_one_line(tmp_path: Path) -> None:
    """benchmarks/ scripts run inside the CLI's error boundary: a bad --data is one line naming
    the folder and the fix, exit 2, not a traceback."""
    import subprocess
    import sys

    missing = tmp_path / "no-such-dataset"
    script = Path(__file__).parents[1] / "benchmarks" / "ablation.py"
    proc = subprocess.run([sys.executable, str(script), "--technique", "lt", "--data",
                           str(missing), "--arm", "paper", "--home", str(tmp_path / "home")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert str(missing) in lines[0] and "does not exist" in lines[0] and "fix:" in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("command", "texts"), [
    ("search", ["[default: built-in demo data]", "[default: technique]",
                "[default: the shipped <t>.toml]", "[default: searched]",
                "[default: sqlite:///<home>/asc.db]", "[default: the rule's limit]",
                "[default: the rule's limit, if any]"]),
    ("retrain", ["[default: those that see the clips each search training saw]",
                 "[default: the confirmed winner, else the best feasible]"]),
    ("export", ["[default: from the corresponding author, else asc-auto_<study>_task1b_1]"]),
    ("show", ["[default: sqlite:///<home>/asc.db]"]),
])
def test_help_keeps_the_defaults_written_in_it(command: str, texts: list[str]) -> None:
    """rich markup read "[default: ...]" in help texts as a tag and dropped it (issue 14)."""
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    flat = " ".join(result.output.replace("│", " ").split())  # a wrapped line's box edges
    for text in texts:
        assert text in flat, text


# ------------------------------------------------------------------ issue 14: the CLI at a glance


def _studies_db(tmp_path: Path) -> str:
    """Two studies: 'kd' (trial 3 best, retrained trial 2 earlier, 60 validation clips) and an
    empty 'lt'."""
    import optuna

    from asc_auto.schema import SIZE_CONSTRAINT

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(storage=url, study_name="kd", direction="maximize")
    for key, value in {"technique": "kd", "budget_kb": 500.0, "rule": "dcase2020",
                       "val_clips": 60}.items():
        study.set_user_attr(key, value)
    for i, (kb, acc, ok) in enumerate([(10.0, 0.60, True), (200.0, 0.55, True),
                                       (300.0, 0.70, True), (450.0, 0.72, True),
                                       (900.0, 0.0, False)]):
        trial = study.ask()
        for key, value in {"size_kb": kb, "params": int(kb * 256), "precision": "fp16",
                           "feasible": ok, "source": "paper" if i == 0 else "search",
                           "config": {"c1": i}}.items():
            trial.set_user_attr(key, value)
        trial.set_constraint(SIZE_CONSTRAINT, kb * 1024 - 512_000)
        study.tell(trial, acc)
    study.set_user_attr("retrain", {"trial": 2, "seeds": 3, "mean": 0.81, "std": 0.02,
                                    "folder": "x"})
    lt = optuna.create_study(storage=url, study_name="lt", direction="maximize")
    lt.set_user_attr("technique", "lt")
    return url


def test_version_and_short_help() -> None:
    import tomllib

    wanted = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"asc-auto {wanted['project']['version']}"
    for args in (["-h"], ["search", "-h"], ["data", "synth", "-h"]):
        short, long = runner.invoke(app, args), runner.invoke(app, [*args[:-1], "--help"])
        assert short.exit_code == 0 and short.output == long.output and "Usage" in short.output


def _all_commands() -> list[list[str]]:
    import typer

    commands = [[c.name or c.callback.__name__] for c in app.registered_commands]
    for group in app.registered_groups:
        sub: typer.Typer = group.typer_instance
        commands += [[group.name, c.name or c.callback.__name__] for c in sub.registered_commands]
    return commands


def test_help_shows_no_type_placeholders() -> None:
    """Flags have no '<bool>', values a word such as N, DIR or URL, not '<int range>'."""
    commands = _all_commands()
    assert ["search"] in commands and ["data", "synth"] in commands and ["studies"] in commands
    for command in [[], *commands]:
        result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, command
        for placeholder in ("<bool>", "<int", "<float", "<str>", "<path>", "<dir>", "<file>",
                            "<list["):
            assert placeholder not in result.output, (command, placeholder)
    predict = runner.invoke(app, ["predict", "--help"], env={"COLUMNS": "200"}).output
    assert "predict [OPTIONS] [WAV]... " in " ".join(predict.split())


def test_verbosity_sets_optuna_and_status_lines(tmp_path: Path, monkeypatch) -> None:
    import logging

    import optuna

    from asc_auto.verbosity import ENV

    monkeypatch.setenv(ENV, "0")
    url = _studies_db(tmp_path)
    for flags, level in ((["-q"], logging.ERROR), ([], logging.WARNING),
                         (["-v"], logging.INFO), (["-vv"], logging.DEBUG)):
        result = runner.invoke(app, [*flags, "studies", "--storage", url])
        assert result.exit_code == 0, result.output
        assert optuna.logging.get_verbosity() == level, flags
    optuna.logging.set_verbosity(logging.WARNING)

    from asc_auto import cli

    cli.set_verbosity(-1)
    cli._say("a status line")
    cli.set_verbosity(0)
    assert "a status line" not in runner.invoke(app, ["-q", "studies", "--storage", url]).output


def test_studies_lists_best_pick_and_what_was_retrained(tmp_path: Path) -> None:
    import json

    url = _studies_db(tmp_path)
    table = runner.invoke(app, ["studies", "--storage", url], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    flat = " ".join(table.output.split())
    assert "4/0/1/0/0" in flat and "0.7200 ± 0.058" in flat  # sqrt(.72 * .28 / 60) = 0.058
    assert "#3 (best)" in flat
    assert "#2: 0.8100 ± 0.0115 (SE of seeds; std 0.0200, 3 seeds, not the pick)" in flat
    assert "retrained: evaluate ± SE" in flat  # the header says what the cell's ± is
    assert "not retrained" in flat  # the empty lt study

    listed = runner.invoke(app, ["studies", "--json"], env={"ASC_AUTO_STORAGE": url})
    assert listed.exit_code == 0, listed.output
    data = {s["study"]: s for s in json.loads(listed.output)}
    kd = data["kd"]
    assert kd["trials"] == {"complete": 4, "pruned": 0, "infeasible": 1, "failed": 0,
                            "running": 0, "waiting": 0}
    assert kd["best"]["trial"] == 3 and kd["best"]["value"] == 0.72
    assert abs(kd["best"]["value_se"] - (0.72 * 0.28 / 60) ** 0.5) < 1e-9
    assert kd["pick"] == {"trial": 3, "how": "best"}
    assert kd["retrain"]["trial"] == 2 and kd["retrain"]["is_pick"] is False
    assert data["lt"]["best"] is None and data["lt"]["retrain"] is None

    shown = runner.invoke(app, ["show", "--study", "kd", "--json", "--storage", url])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert [t["trial"] for t in doc["feasible"]] == [3, 2, 0, 1]
    assert [t["trial"] for t in doc["pareto"]] == [0, 2, 3]
    assert doc["pick_config"] == {"c1": 3} and doc["best"]["paper"] is False

    # a kd study's teacher: its accuracy beside the best student's, each ± its standard error
    import optuna

    kd_study = optuna.load_study(study_name="kd", storage=url)
    kd_study.set_user_attr("teacher_val_accuracy", 0.8)
    kd_study.set_user_attr("teacher_params", 1000)
    doc = json.loads(runner.invoke(app, ["show", "--study", "kd", "--json", "--storage",
                                         url]).output)
    assert abs(doc["teacher"]["val_se"] - (0.8 * 0.2 / 60) ** 0.5) < 1e-9
    text = runner.invoke(app, ["show", "--study", "kd", "--storage", url],
                         env={"COLUMNS": "250"}).output
    assert ("KD teacher: 1,000 params, validation accuracy 0.8000 ± 0.052; best student "
            "0.7200 ± 0.058") in text, text


def test_trials_unlimited_with_only_a_timeout(monkeypatch, tmp_path: Path) -> None:
    import optuna

    from asc_auto import cli

    seen = []

    def fake_search(opts, status):  # type: ignore[no-untyped-def]
        seen.append(opts.trials)
        return optuna.create_study(study_name="kd")

    monkeypatch.setattr(cli, "run_search", fake_search)
    home = ["--home", str(tmp_path)]
    for args, trials in ((["--timeout", "60"], None), ([], 10),
                         (["--timeout", "60", "--trials", "3"], 3)):
        result = runner.invoke(app, ["search", "--technique", "kd", *args, *home])
        assert result.exit_code == 0, result.output
        assert seen[-1] == trials, args


def test_without_a_terminal_tables_are_whole_and_bars_are_lines(monkeypatch,
                                                                 tmp_path: Path) -> None:
    """A log or a pipe gets whole table rows (not 80-column cuts) and one line per trial
    instead of live bars; --teacher-epochs sets the kd teacher's epochs."""
    import optuna

    from asc_auto import cli

    url = _studies_db(tmp_path)
    monkeypatch.delenv("COLUMNS", raising=False)
    out = runner.invoke(app, ["studies", "--storage", url]).output
    assert max(len(line) for line in out.splitlines()) > 80
    # one line, uncut
    assert "#2: 0.8100 ± 0.0115 (SE of seeds; std 0.0200, 3 seeds, not the pick)" in out

    seen = []

    def fake_search(opts, status):  # type: ignore[no-untyped-def]
        seen.append(opts)
        return optuna.create_study(study_name="kd")

    monkeypatch.setattr(cli, "run_search", fake_search)
    home = ["--home", str(tmp_path)]
    assert runner.invoke(app, ["search", "--technique", "kd", "--teacher-epochs", "3",
                               *home]).exit_code == 0
    assert seen[-1].progress is False  # CliRunner's output is not a terminal
    assert seen[-1].overrides == {"teacher": {"epochs": 3, "min_clips_seen": 0}}
    wrong = runner.invoke(app, ["search", "--technique", "lt", "--teacher-epochs", "3", *home])
    assert wrong.exit_code == 2 and "--teacher-epochs applies to --technique kd" in wrong.output
