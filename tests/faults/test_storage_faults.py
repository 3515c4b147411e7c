"""Fault corpus: storages, interruptions and dead workers give one line and lose nothing.

Issue 8 items 8 (a killed paper trial left the study without its baseline) and 9 (raw tracebacks
for bad storages and Ctrl-C; read-only commands created DB files).
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

import asc_auto.search as search_mod
from asc_auto.cli import app
from asc_auto.errors import CommandFailed, UsageError
from asc_auto.search import SearchOptions, run_search
from asc_auto.storage import WORKER_ATTR, open_storage

SPACE = Path(__file__).parents[1] / "spaces" / "kd.toml"
runner = CliRunner()


def _opts(data: Path, home: Path, **kw: object) -> SearchOptions:
    return SearchOptions(technique="kd", data=data, space=SPACE, trials=1, epochs=1,
                         storage=f"sqlite:///{home / 'asc.db'}", home=home, progress=False,
                         **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("url", "message"), [
    ("studies/asc.db", "not a storage URL"),
    ("sqlite//x.db", "not a storage URL"),
    ("nosuchdialect://u@h/db", "not a storage URL"),
    ("mssql+pymssql://u@localhost/db", "no database driver for 'mssql+pymssql'"),
])
def test_bad_storage_urls_are_one_line_usage_errors(url: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)) as err:
        open_storage(url, create=True)
    assert url in str(err.value) and "fix:" in str(err.value)


def test_a_file_that_is_not_a_database_is_left_alone(tmp_path: Path) -> None:
    bad = tmp_path / "results.db"
    bad.write_bytes(b"my spreadsheet, not SQLite" * 100)
    before = bad.read_bytes()
    with pytest.raises(CommandFailed, match="cannot be read as an Optuna storage"):
        open_storage(f"sqlite:///{bad}", create=True)
    assert bad.read_bytes() == before
    for args in (["show", "--study", "kd"], ["report"], ["retrain", "--study", "kd"]):
        result = runner.invoke(app, [*args, "--storage", f"sqlite:///{bad}"])
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output and str(bad) in result.output
    assert bad.read_bytes() == before
    with pytest.raises(UsageError, match="is a folder"):
        open_storage(f"sqlite:///{tmp_path}", create=True)


@pytest.mark.parametrize("command", [
    ["show", "--study", "kd"], ["report"], ["retrain", "--study", "kd"],
    ["export", "--study", "kd", "--out", "pkg"], ["dashboard"],
])
def test_read_only_commands_never_create_a_db(command: list[str], tmp_path: Path,
                                              monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [*command, "--home", str(tmp_path / "home")])
    assert result.exit_code == 2, result.output
    assert "no study database there" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_in_a_trial_prints_no_optuna_traceback(tiny_dataset: Path, tmp_path: Path,
                                                      monkeypatch) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logging.getLogger("optuna").addHandler(handler)

    def interrupted(self, trial):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    monkeypatch.setattr(search_mod.Objective, "__call__", interrupted)
    home = tmp_path / "home"
    try:
        result = runner.invoke(app, ["search", "--technique", "kd", "--data", str(tiny_dataset),
                                     "--space", str(SPACE), "--home", str(home),
                                     "--trials", "1", "--epochs", "1"])
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output and "Traceback" not in result.output
    assert not [r.getMessage() for r in records if "Trial 0" in r.getMessage()]  # all dropped
    study = optuna.load_study(study_name="kd", storage=f"sqlite:///{home / 'asc.db'}")
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL]  # recorded, not RUNNING


_KILL_IN_PAPER_TRIAL = """
import os, signal, sys
from pathlib import Path
import asc_auto.search as s
from asc_auto.search import SearchOptions, run_search

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

s.rule_macs = die  # runs inside trial 0 (the paper point), after it is RUNNING
home = Path(sys.argv[2])
run_search(SearchOptions(technique="kd", data=Path(sys.argv[1]), space=Path(sys.argv[3]),
                         trials=1, epochs=1, storage=f"sqlite:///{home / 'asc.db'}", home=home,
                         progress=False, cv=0, confirm_seeds=0), status=lambda m: None)
"""


@pytest.mark.slow
def test_a_killed_paper_trial_is_failed_and_enqueued_again(tiny_dataset: Path,
                                                            tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.run([sys.executable, "-c", _KILL_IN_PAPER_TRIAL, str(tiny_dataset),
                           str(home), str(SPACE)], check=False, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    url = f"sqlite:///{home / 'asc.db'}"
    killed = optuna.load_study(study_name="kd", storage=url).get_trials()
    assert [t.state for t in killed] == [TrialState.RUNNING]
    assert killed[0].user_attrs["source"] == "paper" and WORKER_ATTR in killed[0].user_attrs

    study = run_search(_opts(tiny_dataset, home), status=lambda m: None)  # within the grace time
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL
    papers = [t for t in trials if t.user_attrs.get("source") == "paper"]
    assert [t.state for t in papers] == [TrialState.FAIL, TrialState.COMPLETE]
    again = run_search(_opts(tiny_dataset, home), status=lambda m: None)
    papers = [t for t in again.get_trials() if t.user_attrs.get("source") == "paper"]
    assert len(papers) == 2  # never enqueued twice once a complete one exists
