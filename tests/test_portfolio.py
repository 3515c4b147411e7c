"""The portfolio: `[[portfolio]]` entries are checked like the paper's point, tried once per study
right after the paper trial (before the initial design), and a resumed study tries the entries
it has not tried, new ones included."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from asc_auto import portfolio
from asc_auto.errors import ConfigError
from asc_auto.report import _row as trial_row
from asc_auto.schema import TrialRecord
from asc_auto.search import SearchOptions, run_search
from asc_auto.space import SearchSpace, load_space, space_digest
from asc_auto.techniques import get_technique

SPACES = Path(__file__).parent / "spaces"

WIDE = """
[[portfolio]]
name = "wide-int8"
note = "wider, INT8"
c1 = 8
c3 = 48
precision = "int8"
"""
TEACHERLESS = """
[[portfolio]]
name = "no-teacher"
alpha = 0.0
beta = 0.0
gamma = 1.0
lr = 5e-3
"""
HUGE = """
[[portfolio]]
name = "huge"
c1 = 8
c2 = 16
c3 = 64
precision = "fp32"
"""


def _space(tmp_path: Path, extra: str, name: str = "kd.toml") -> tuple[Path, SearchSpace]:
    file = tmp_path / name
    file.write_text((SPACES / "kd.toml").read_text() + extra)
    return file, load_space(file, "kd", set(get_technique("kd").tables))


def test_entries_take_the_papers_values_for_what_they_do_not_give(tmp_path: Path) -> None:
    _, space = _space(tmp_path, WIDE + TEACHERLESS)
    wide, teacherless = space.portfolio
    assert (wide.name, wide.note) == ("wide-int8", "wider, INT8")
    assert wide.point == {**space.paper, "c1": 8, "c3": 48, "precision": "int8"}
    assert teacherless.point["gamma"] == 1.0 and teacherless.point["c1"] == space.paper["c1"]
    params = space.trial_params(teacherless.point)
    assert params == {**space.paper_trial_params(), "alpha_w": 0.0, "beta_w": 0.0,
                      "gamma_w": 1.0, "lr": 5e-3}


def test_the_portfolio_is_not_part_of_what_a_trial_means(tmp_path: Path) -> None:
    """A study stays resumable when its space gains an entry (the entry is then tried in it)."""
    _, plain = _space(tmp_path, "", "plain.toml")
    _, more = _space(tmp_path, WIDE)
    assert space_digest(plain) == space_digest(more)


@pytest.mark.parametrize(("extra", "key", "why"), [
    ('\n[[portfolio]]\nc1 = 8\n', "portfolio[0].name", "missing or empty"),
    (WIDE + WIDE, "portfolio.wide-int8", "name used twice"),
    ('\n[[portfolio]]\nname = "x"\nwidth = 2\n', "portfolio.x.width", "not a searched parameter"),
    ('\n[[portfolio]]\nname = "x"\nc1 = 80\n', "portfolio.x.c1", "80 outside [4, 8]"),
    ('\n[[portfolio]]\nname = "x"\nprecision = "int4"\n', "portfolio.x.precision",
     "'int4' not in choices"),
    ('\n[[portfolio]]\nname = "x"\nalpha = 1.0\n', "portfolio.x.alpha", "part of the simplex"),
    ('\n[[portfolio]]\nname = "x"\nalpha = 0.5\nbeta = 0.5\ngamma = 0.5\n', "portfolio.x",
     "must sum to 1"),
])
def test_a_bad_entry_is_an_error_naming_the_file_and_key(tmp_path: Path, extra: str, key: str,
                                                        why: str) -> None:
    with pytest.raises(ConfigError) as err:
        _space(tmp_path, extra)
    text = str(err.value)
    assert "kd.toml" in text and key in text and why in text, text


def test_a_portfolio_that_is_not_tables_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "kd.toml"
    file.write_text("portfolio = 3\n" + (SPACES / "kd.toml").read_text())
    with pytest.raises(ConfigError, match=r"kd.toml: key 'portfolio': must be \[\[portfolio\]\]"):
        load_space(file, "kd", set(get_technique("kd").tables))


def test_an_entry_stopped_without_an_error_is_tried_again(tmp_path: Path) -> None:
    """Ctrl-C or a killed worker leaves a FAIL without a reason: the entry is pending again; an
    entry that failed with its own error, or ran, is not."""
    _, space = _space(tmp_path, WIDE + TEACHERLESS)
    study = optuna.create_study(direction="maximize")
    made = portfolio.enqueue_portfolio(study, space, room=None, fits=lambda config: True)
    assert made.names == ["wide-int8", "no-teacher"]
    assert portfolio.pending(space, study) == []  # both waiting
    first = study.ask()
    assert TrialRecord.from_trial(first).portfolio == "wide-int8"
    study.tell(first, state=TrialState.FAIL)  # interrupted: no fail_reason
    assert [e.name for e in portfolio.pending(space, study)] == ["wide-int8"]
    second = study.ask()
    second.set_user_attr("fail_reason", "RuntimeError: out of memory")
    study.tell(second, state=TrialState.FAIL)
    assert [e.name for e in portfolio.pending(space, study)] == ["wide-int8"]
    assert portfolio.tried_entries(study) == {"no-teacher"}
    # room and the limits: what is not enqueued says why
    again = portfolio.enqueue_portfolio(study, space, room=0, fits=lambda config: True)
    assert again.names == [] and again.left_out == ["wide-int8 (no room in --trials)"]
    over = portfolio.enqueue_portfolio(study, space, room=5, fits=lambda c: c["c1"] < 8)
    assert over.left_out == ["wide-int8 (over the size or MACs limit here)"]
    assert "portfolio left out: wide-int8 (over the size" in over.describe()


@pytest.mark.slow
def test_a_search_tries_the_portfolio_after_the_paper_trial_and_a_resume_adds_new_entries(
    tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 10 KB: the "huge" entry (an 8-16-64 student at FP32, about 40 KB) is over the limit
    file, _ = _space(tmp_path, WIDE + HUGE)
    # a pruner that stops every trial it may: the paper's and the portfolio's train to the end
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)
    opts = SearchOptions(technique="kd", data=tiny_dataset, trials=3, space=file,
                         storage=f"sqlite:///{tmp_path / 'asc.db'}", home=tmp_path / "home",
                         progress=False, budget_kb=10.0, epochs=1, initial_design="none")
    lines: list[str] = []
    study = run_search(opts, status=lines.append)
    trials = study.get_trials()
    assert [t.user_attrs["source"] for t in trials] == ["paper", "portfolio", "search"]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.PRUNED]
    assert trials[1].params["c1"] == 8 and trials[1].params["c3"] == 48
    assert trials[1].params["precision"] == "int8" and trials[1].user_attrs["feasible"]
    assert any(line.startswith("portfolio: wide-int8 enqueued after the paper trial")
               and "portfolio left out: huge (over the size or MACs limit here)" in line
               for line in lines), lines
    assert any(line.startswith("trial 1 (portfolio wide-int8) COMPLETE") for line in lines)
    assert trial_row(trials[1])[0] == "1 portfolio wide-int8"

    # the space gains an entry: a resume tries it (and not the one it tried), then TPE's
    file.write_text(file.read_text() + TEACHERLESS)
    lines.clear()
    again = run_search(SearchOptions(**{**opts.__dict__, "trials": 2}), status=lines.append)
    later = again.get_trials()[3:]
    assert [t.user_attrs.get("portfolio") for t in later] == ["no-teacher", None]
    assert later[0].params["gamma_w"] == 1.0 and later[0].params["lr"] == 5e-3
    assert [t.user_attrs["source"] for t in later] == ["portfolio", "search"]
    assert [t.state for t in later] == [TrialState.COMPLETE, TrialState.PRUNED]
