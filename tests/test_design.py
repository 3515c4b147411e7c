"""The initial design: which categorical values it covers, that its trials fit the limit, and
that a search runs it once, right after the paper trial."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from asc_auto import design
from asc_auto.errors import UsageError
from asc_auto.report import _row as trial_row
from asc_auto.report import design_line
from asc_auto.search import SearchOptions, run_search
from asc_auto.space import SearchSpace, default_space_file, load_space
from asc_auto.techniques import get_technique

SPACES = Path(__file__).parent / "spaces"


def _space(technique: str, file: Path | None = None) -> SearchSpace:
    tech = get_technique(technique)
    return load_space(file or default_space_file(technique), technique, set(tech.tables))


def _covered(space: SearchSpace, rows: list[dict[str, Any]]) -> tuple[set, set]:
    """(value, pair) sets covered by the paper trial and `rows`."""
    names = [p.name for p in design.categoricals(space)]
    runs = [{n: space.paper[n] for n in names}, *rows]
    values = {(n, r[n]) for r in runs for n in names}
    pairs = {((a, r[a]), (b, r[b])) for r in runs for a, b in itertools.combinations(names, 2)}
    return values, pairs


@pytest.mark.parametrize("technique", ["kd", "int8", "lt", "gcc"])
def test_pairs_cover_every_pair_and_values_every_value(technique: str) -> None:
    space = _space(technique)
    cats = design.categoricals(space)
    every_value = {(p.name, v) for p in cats for v in p.choices}
    every_pair = {((a.name, x), (b.name, y)) for a, b in itertools.combinations(cats, 2)
                  for x in a.choices for y in b.choices}

    pairs = design.categorical_rows(space, "pairs")
    assert _covered(space, pairs)[1] == every_pair
    # no row repeats the paper trial's values: that combination has run
    paper = {p.name: space.paper[p.name] for p in cats}
    assert paper not in pairs

    values = design.categorical_rows(space, "values")
    assert _covered(space, values)[0] == every_value
    assert len(values) <= max(len(p.choices) for p in cats)
    assert design.categorical_rows(space, "none") == []


@pytest.mark.parametrize("technique", ["int8", "lt"])
def test_value_rows_never_move_two_parameters_in_lockstep(technique: str) -> None:
    """Every two-level pair shows all four combinations over the paper trial and the rows: the
    old design put content crops, log1p, structured pruning and FP32 in the same rows, so no
    trial could tell which of them its value owed."""
    space = _space(technique)
    rows = design.categorical_rows(space, "values")
    assert len(rows) == 4  # width's four values besides the paper's 0.5, one a row
    assert [r["width"] for r in rows] == [0.25, 0.375, 0.75, 1.0]
    two_level = [p for p in design.categoricals(space) if len(p.choices) == 2]
    assert len(two_level) == (2 if technique == "int8" else 4)
    pairs = _covered(space, rows)[1]
    for a, b in itertools.combinations(two_level, 2):
        combos = {(x, y) for x in a.choices for y in b.choices}
        assert {(x, y) for ((n, x), (m, y)) in pairs if (n, m) == (a.name, b.name)} == combos
    assert design.categorical_rows(space, "values") == rows  # the same rows every time


def test_kd_rows_include_kernel_7_with_the_max_pool() -> None:
    """The combination a 24-trial fsdd search never tried (design.py's docstring)."""
    rows = design.categorical_rows(_space("kd"), "pairs")
    # 3 x 3 pairs need 9 runs (the two 2-level factors, pool and crops, fit in the same 9);
    # the paper trial is one of them
    assert len(rows) == 8
    assert any(r["kernel_size"] == 7 and r["pool"] == "max" for r in rows)


def test_auto_takes_pairs_only_when_the_trial_budget_affords_them() -> None:
    kd = _space("kd")  # 8 pair rows + the paper trial
    assert design.resolve_kind(kd, "auto", 18) == "pairs"
    assert design.resolve_kind(kd, "auto", 17) == "values"
    assert design.resolve_kind(kd, "auto", 8) == "values"
    assert design.resolve_kind(kd, "auto", None) == "pairs"  # --timeout alone
    assert design.resolve_kind(kd, "values", 100) == "values"
    baseline = _space("baseline")  # one categorical (precision): no pairs to cover
    assert design.resolve_kind(baseline, "pairs", 100) == "values"
    assert design.resolve_kind(baseline, "none", 100) == "none"
    with pytest.raises(UsageError, match="--initial-design 'grid': choose one of auto, pairs"):
        design.resolve_kind(kd, "grid", 10)


def test_rows_are_drawn_until_they_fit_and_impossible_rows_are_left_out() -> None:
    space = _space("kd")
    # a stand-in for the size check: kernel 7 fits only narrow; fp32 never fits
    def fits(config: dict[str, Any]) -> bool:
        return config["precision"] != "fp32" and (config["kernel_size"] != 7
                                                   or config["c3"] <= 64)

    made = design.initial_design(space, "pairs", 30, fits, seed=3)
    names = set(space.paper_trial_params())
    assert made.kind == "pairs" and made.rows
    for params in made.rows:
        assert set(params) == names  # every parameter, ready to enqueue
        assert params["precision"] != "fp32"
        assert params["kernel_size"] != 7 or params["c3"] <= 64
    assert {(r["kernel_size"], r["pool"]) for r in made.left_out} <= {
        (k, p) for k in (3, 5, 7) for p in ("avg", "max")}
    assert made.left_out and all(r["precision"] == "fp32" for r in made.left_out)
    assert len(made.rows) + len(made.left_out) == 8
    line = made.describe(["kernel_size", "pool", "crops", "spec_augment", "precision"])
    assert "cover every pair of kernel_size x pool x crops x spec_augment x precision" in line
    assert re.search(r"left out kernel_size=[357], pool=(avg|max), crops=(clip|content), "
                     r"spec_augment=(on|off), precision=fp32", line)
    # the same seed draws the same rows; another seed other widths
    assert design.initial_design(space, "pairs", 30, fits, seed=3).rows == made.rows
    assert design.initial_design(space, "pairs", 30, fits, seed=4).rows != made.rows


def test_the_design_never_enqueues_more_trials_than_the_search_runs() -> None:
    space = _space("kd")
    made = design.initial_design(space, "pairs", 4, lambda config: True, seed=0)
    assert len(made.rows) == 3 and made.cut == 5  # 4 trials: the paper's and 3 designed
    line = made.describe(["kernel_size", "pool", "precision"])
    assert "cover part of every pair" in line and "5 more rows do not fit in --trials" in line
    assert design.initial_design(space, "auto", 1, lambda config: True, seed=0).rows == []
    assert len(design.initial_design(space, "auto", None, lambda c: True, seed=0).rows) == 8


@pytest.mark.slow
def test_a_search_runs_the_design_after_the_paper_trial_once(
    tmp_path: Path, tiny_dataset: Path
) -> None:
    # the tiny test space with a second kernel size: 2 x 3 categorical combinations
    text = (SPACES / "kd.toml").read_text().replace("choices = [3]\n", "choices = [3, 5]\n")
    space_file = tmp_path / "kd.toml"
    space_file.write_text(text)
    opts = SearchOptions(technique="kd", data=tiny_dataset, trials=6, space=space_file,
                         storage=f"sqlite:///{tmp_path / 'asc.db'}", home=tmp_path / "home",
                         progress=False, budget_kb=10.0, epochs=1, initial_design="pairs")
    lines: list[str] = []
    study = run_search(opts, status=lines.append)
    trials = study.get_trials()
    assert [t.user_attrs["source"] for t in trials] == ["paper"] + ["design"] * 5
    combos = {(t.params["kernel_size"], t.params["precision"]) for t in trials}
    assert combos == {(k, p) for k in (3, 5) for p in ("fp16", "fp32", "int8")}
    # drawn to fit: 10 KB is tight (the paper student is 3 KB at fp16; the widest kernel-5
    # student at fp32 is over 100 KB), and no designed trial is over it
    assert all(t.user_attrs["feasible"] for t in trials[1:])
    assert study.user_attrs["initial_design"] == {"kind": "pairs", "rows": 5, "left_out": [],
                                                  "cut": 0}
    assert any("initial design: 5 trials after the paper trial cover every pair of "
               "kernel_size x precision" in line for line in lines)
    assert any(line.startswith("trial 0 (paper) COMPLETE") for line in lines)
    # each finished trial's line gives its value with its standard error, as the tables do
    assert any(re.match(r"trial 0 \(paper\) COMPLETE val acc \d\.\d{4} ± \d\.\d{3} at ", line)
               for line in lines), lines
    assert any(line.startswith("trial 1 (design) ") for line in lines)
    # ... and, in a log, how far the run is and the time left at its pace
    trial_lines = [line for line in lines if re.match(r"trial \d ", line)]
    assert len(trial_lines) == 6, lines
    for n, line in enumerate(trial_lines[:-1], 1):
        assert re.search(rf"; {n} of 6 trials, about [\d.]+ (s|min) left at this run's pace$",
                         line), line
    assert trial_lines[-1].endswith("; 6 of 6 trials"), trial_lines[-1]
    assert design_line(study) == ("initial design: 5 trials after the paper trial, covering "
                                  "every pair of categorical values")
    assert [r[0] for r in map(trial_row, trials)] == ["0 paper"] + [f"{n} design"
                                                                   for n in range(1, 6)]

    # resumed: TPE's trials only, the design is not enqueued again
    again = run_search(SearchOptions(**{**opts.__dict__, "trials": 1}), status=lambda m: None)
    assert [t.user_attrs["source"] for t in again.get_trials()][6:] == ["search"]


@pytest.mark.slow
def test_a_design_row_of_a_stopped_run_is_enqueued_again(
    tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or a killed worker) in a design row failed it for good: the resumed search left
    that corner of the space to chance. It is enqueued again, as the paper trial is."""
    import asc_auto.search as search_mod

    text = (SPACES / "kd.toml").read_text().replace("choices = [3]\n", "choices = [3, 5]\n")
    space_file = tmp_path / "kd.toml"
    space_file.write_text(text)
    opts = SearchOptions(technique="kd", data=tiny_dataset, trials=6, space=space_file,
                         storage=f"sqlite:///{tmp_path / 'asc.db'}", home=tmp_path / "home",
                         progress=False, budget_kb=10.0, epochs=1, initial_design="pairs",
                         cv=0, confirm_seeds=0)
    real_run = search_mod.Objective._run

    def interrupted_at_trial_2(self: Any, trial: Any) -> Any:
        if trial.number == 1:  # an error: the row was tried (its reason is the result)
            raise RuntimeError("a made-up failure")
        if trial.number == 2:  # Ctrl-C: the row was stopped, not tried
            raise KeyboardInterrupt
        return real_run(self, trial)

    monkeypatch.setattr(search_mod.Objective, "_run", interrupted_at_trial_2)
    with pytest.raises(KeyboardInterrupt):
        run_search(opts, status=lambda m: None)
    monkeypatch.setattr(search_mod.Objective, "_run", real_run)
    import optuna

    stopped = optuna.load_study(study_name="kd", storage=opts.storage).get_trials()
    assert [t.state.name for t in stopped] == ["COMPLETE", "FAIL", "FAIL"] + ["WAITING"] * 3
    assert stopped[1].user_attrs["fail_reason"] == "RuntimeError: a made-up failure"
    lost = stopped[2].system_attrs["fixed_params"]

    lines: list[str] = []
    study = run_search(SearchOptions(**{**opts.__dict__, "trials": 4}), status=lines.append)
    assert "1 initial-design row of a stopped run enqueued again" in lines
    trials = study.get_trials()
    assert len(trials) == 7 and trials[6].user_attrs["source"] == "design"
    assert trials[6].params == lost and trials[6].state.name in ("COMPLETE", "PRUNED"), \
        (trials[6].state, trials[6].user_attrs)
    assert not study.get_trials(states=(optuna.trial.TrialState.WAITING,))  # 4 trials ran 4
    # once: a later resume finds the row done and adds none
    lines.clear()
    again = run_search(SearchOptions(**{**opts.__dict__, "trials": 1}), status=lines.append)
    assert not any("enqueued again" in line for line in lines)
    assert again.get_trials()[7].user_attrs["source"] == "search"
