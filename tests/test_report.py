"""Report and dashboard: tables across studies, PNG plots, Markdown, the dashboard's API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from asc_auto.cli import app
from asc_auto.records import feasible_trials
from asc_auto.report import (
    PAPER_RESULTS,
    choice_counts,
    pareto_front,
    running_trials,
    se_basis,
    state_counts,
    studies_table,
    study_rows,
    summary_line,
    untested_choices,
)
from asc_auto.schema import SIZE_CONSTRAINT, StudyRecord
from asc_auto.search import open_storage
from asc_auto.summary import write_report

runner = CliRunner()


def _fake_study(url: str, name: str = "kd") -> optuna.Study:
    """A study with known trials: sizes/accuracies chosen so the front is trials 0, 2, 3."""
    study = optuna.create_study(storage=url, study_name=name, direction="maximize")
    study.set_user_attr("technique", "kd")
    study.set_user_attr("budget_kb", 500.0)
    study.set_user_attr("rule", "dcase2020")
    points = [(10.0, 0.60, True), (200.0, 0.55, True), (300.0, 0.70, True),
              (450.0, 0.72, True), (900.0, 0.0, False)]
    for i, (kb, acc, ok) in enumerate(points):
        trial = study.ask()
        trial.suggest_int("c1", 1, 100)
        for key, value in {"size_kb": kb, "params": int(kb * 256), "precision": "fp16",
                           "feasible": ok, "source": "paper" if i == 0 else "search",
                           "config": {"c1": 5}}.items():
            trial.set_user_attr(key, value)
        trial.set_constraint(SIZE_CONSTRAINT, kb * 1024 - 512_000)
        study.tell(trial, acc)
    pruned = study.ask()
    pruned.report(0.4, 1)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    return study


def test_an_enqueued_trial_is_waiting_not_running(tmp_path: Path) -> None:
    """One worker running trial 3 with a design row enqueued behind it showed "2 running", as
    if a second worker (or a dead one) held a trial: enqueued trials are counted as waiting."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = _fake_study(url)
    study.ask()  # RUNNING
    study.enqueue_trial({"c1": 7})  # WAITING until a worker asks
    counts = state_counts(study)
    assert (counts["running"], counts["waiting"]) == (1, 1)
    assert summary_line(study).endswith("1 running, 1 waiting")
    overview = runner.invoke(app, ["studies"], env={"ASC_AUTO_STORAGE": url, "COLUMNS": "200"})
    assert overview.exit_code == 0, overview.output
    assert "4/1/1/0/1/1" in overview.output


def test_show_says_what_the_running_trials_have_scored_so_far(tmp_path: Path) -> None:
    """A default-budget trial runs for hours: `show` from another shell says each running
    trial's finished folds and its first training's epochs, as the storage has them."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = _fake_study(url)
    study.set_user_attr("cv_folds", 4)
    trial = study.ask()  # RUNNING: one fold done, 3 epochs of fold 1 reported
    for key, value in {"source": "portfolio", "portfolio": "wide-shallow", "size_kb": 197.85,
                       "cv_accuracies": [0.718], "val_history": [0.4, 0.61, 0.72]}.items():
        trial.set_user_attr(key, value)
    study.ask().set_user_attr("resumed_from", 2)  # RUNNING, resumes interrupted trial 2
    # a confirmation run of trial 0 half-way (2 of 4 folds), one of trial 3 stored already
    study.set_user_attr("confirmation", {"seeds": 1, "top": 2,
                                         "trials": {"0": [0.6], "3": [0.72, 0.7]}})
    study.set_user_attr("confirmation_folds_0_1", [0.61, 0.65])
    study.set_user_attr("confirmation_folds_3_1", [0.7, 0.7, 0.7, 0.7])
    started = study.trials[-2].datetime_start
    assert started is not None
    rows = running_trials(study, now=started + timedelta(minutes=34))
    assert [(r.trial.number, r.folds, r.fold_accuracies, r.epochs, r.last_accuracy)
            for r in rows] == [(6, 4, (0.718,), 3, 0.72), (7, 4, (), 0, None)]
    assert rows[0].seconds == pytest.approx(34 * 60)
    env = {"ASC_AUTO_STORAGE": url, "COLUMNS": "200"}
    shown = runner.invoke(app, ["show", "--study", "kd"], env=env)
    assert shown.exit_code == 0, shown.output
    line = next(x for x in shown.output.splitlines() if x.startswith("│ 6 portfolio"))
    cells = [c.strip() for c in line.strip("│ ").split("│")]
    assert cells[0] == "6 portfolio wide-shallow" and cells[1] == "197.85"
    assert cells[3:] == ["1/4: 0.718", "3, 0.720"], cells
    assert "running trials, what they have scored so far" in shown.output
    assert "│ 7 (resumes 2)" in shown.output
    assert "confirmation runs under way: trial 0 seed 1, folds 2/4 done (0.610, 0.650)\n" \
        in shown.output
    data = json.loads(runner.invoke(app, ["show", "--study", "kd", "--json"], env=env).output)
    assert [(r["trial"], r["fold_accuracies"], r["epochs"], r["resumed_from"])
            for r in data["running"]] == [(6, [0.718], 3, None), (7, [], 0, 2)]
    assert data["confirming"] == [{"trial": 0, "seed": 1, "fold_accuracies": [0.61, 0.65]}]
    fresh = optuna.create_study(storage=url, study_name="new", direction="maximize")
    fresh.ask()
    shown = runner.invoke(app, ["show", "--study", "new"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "no trial has finished inside the limits yet" in shown.output
    assert "best feasible trials" not in shown.output and "Pareto" not in shown.output
    study.tell(study.trials[-1].number, 0.5)
    study.tell(trial, 0.7)
    assert running_trials(study) == []
    assert "running trials" not in runner.invoke(app, ["show", "--study", "kd"], env=env).output


def test_pareto_front_and_study_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = _fake_study(url)
    rows = study_rows(open_storage(url))
    assert len(rows) == 1
    r = rows[0]
    assert r.counts == {"complete": 4, "pruned": 1, "infeasible": 1, "failed": 0, "running": 0,
                        "waiting": 0}
    assert r.best is not None and r.best.number == 3
    assert [t.number for t in pareto_front(feasible_trials(study))] == [0, 2, 3]


def test_report_writes_plots_and_markdown(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    _fake_study(url)
    summary, _ = write_report(open_storage(url), tmp_path / "out")
    text = summary.read_text()
    for name in ("kd-pareto.png", "kd-history.png"):
        png = tmp_path / "out" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert f"({name})" in text
    assert "| kd | kd | 4 | 1 | 1 | 0 | #3 | 0.7200 | 450.00 |" in text
    for p in PAPER_RESULTS:
        assert f"{p.accuracy:.4f}" in text
    assert not list((tmp_path / "out").glob(".*.tmp"))  # atomic writes left no temp files


def test_report_cli_prints_both_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    _fake_study(url)
    result = runner.invoke(app, ["report", "--storage", url, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "4/1/1/0" in result.output and "AclNet0.5 INT8" in result.output
    empty = runner.invoke(app, ["report", "--storage", f"sqlite:///{tmp_path / 'e.db'}",
                                "--out", str(tmp_path / "o2")])
    assert empty.exit_code == 2 and "no study database there" in empty.output
    assert not (tmp_path / "e.db").exists()  # a read-only command creates no storage


def test_report_writes_over_its_own_files_only(tmp_path: Path) -> None:
    """A second report replaces the first; a folder holding the user's own summary.md or a
    PNG of a report's name is refused before anything is written."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    _fake_study(url)
    out = tmp_path / "out"
    for _ in range(2):  # the second run writes over the first run's files
        result = runner.invoke(app, ["report", "--storage", url, "--out", str(out)])
        assert result.exit_code == 0, result.output
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "summary.md").write_text("# my notes\n")
    refused = runner.invoke(app, ["report", "--storage", url, "--out", str(notes)],
                            env={"COLUMNS": "300"})
    assert refused.exit_code == 2
    assert (f"{notes / 'summary.md'}: exists and was not written by `asc-auto report`; fix: "
            "pass another --out") in " ".join(refused.output.split())
    assert (notes / "summary.md").read_text() == "# my notes\n"
    assert sorted(p.name for p in notes.iterdir()) == ["summary.md"]  # nothing written
    # a PNG of the user's where a report would put one, no report summary beside it
    (notes / "summary.md").unlink()
    (notes / "kd-history.png").write_bytes(b"mine")
    again = runner.invoke(app, ["report", "--storage", url, "--out", str(notes)])
    assert again.exit_code == 2 and (notes / "kd-history.png").read_bytes() == b"mine"
    assert not (notes / "summary.md").exists()


def test_report_without_studies_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    optuna.create_study(storage=url, study_name="gone").set_user_attr("x", 1)
    optuna.delete_study(study_name="gone", storage=url)  # a storage with no study left
    result = runner.invoke(app, ["report", "--storage", url, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no studies in" in result.output
    assert not (tmp_path / "o").exists()


def test_report_out_follows_home(tmp_path: Path) -> None:
    home = tmp_path / "elsewhere"
    home.mkdir()
    _fake_study(f"sqlite:///{home / 'asc.db'}")
    result = runner.invoke(app, ["report", "--home", str(home)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert (home / "report" / "summary.md").is_file()
    assert (home / "report" / "kd-pareto.png").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_dashboard_serves_the_studies_on_loopback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    _fake_study(url, name="kd-dash")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "asc_auto.cli", "dashboard", "--storage", url,
                             "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        body = b""
        deadline = time.monotonic() + 180  # a loaded 2-core machine imports slowly
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies",
                                            timeout=2) as resp:
                    body = resp.read()
                break
            except OSError:
                time.sleep(0.5)
        assert b"kd-dash" in body
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_accuracies_are_shown_with_their_standard_error() -> None:
    from asc_auto.stats import accuracy_text
    from asc_auto.stats import binomial_se as standard_error

    assert standard_error(0.6, 60) == pytest.approx(0.0632, abs=1e-4)  # sqrt(.6 * .4 / 60)
    assert standard_error(1.0, 33) == 0.0
    assert accuracy_text(0.6, 60) == "0.6000 ± 0.063"
    assert accuracy_text(0.6, None) == "0.6000" and accuracy_text(None, 60) == "-"


def test_paper_table_counts_the_student_as_rebuilt() -> None:
    """Table 2 of the seed paper prints 252,712; its text and the rebuilt student say 252,713."""
    from asc_auto.models.registry import create_model

    student = create_model("cnn_student")  # the defaults are the paper's widths (32, 51, 512)
    kd = next(p for p in PAPER_RESULTS if p.technique == "kd")
    assert kd.params == sum(p.numel() for p in student.parameters() if p.requires_grad)
    assert round(kd.params * 2 / 1024, 2) == kd.size_kb  # FP16, as the paper counts


# ------------------------------------------------------------ issue 14: report at a glance


def test_studies_table_says_which_trial_was_retrained(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = _fake_study(url)
    study.set_user_attr("retrain", {"trial": 2, "seeds": 3, "mean": 0.81, "std": 0.02,
                                    "folder": "x"})
    rows = study_rows(open_storage(url))
    assert rows[0].pick == 3 and rows[0].best.number == 3
    from rich.console import Console

    console = Console(width=250, record=True)
    console.print(studies_table(rows))
    flat = " ".join(console.export_text().split())
    assert "#3 │ 0.7200" in flat
    assert "#2: 0.8100 ± 0.0115 (SE of seeds; std 0.0200, 3 seeds, not the pick)" in flat
    assert "retrained: evaluate ± SE" in flat  # the header says what the cell's ± is
    summary, _ = write_report(open_storage(url), tmp_path / "out")
    assert "| retrained trial: evaluate acc ± SE |" in summary.read_text()
    assert "| #3 | 0.7200 | 450.00 | 115,200 | fp16 | #2: 0.8100 ± 0.0115 (SE of seeds; std " \
           "0.0200, 3 seeds, not the pick) |" in summary.read_text()
    study.set_user_attr("retrain", {"trial": 3, "seeds": 1, "mean": 0.8, "std": 0.0})
    assert "#3: 0.8000 (1 seed) |" in write_report(
        open_storage(url), tmp_path / "out")[0].read_text()


def _over_limit_paper_study() -> optuna.Study:
    """Written as search writes it now: trials over a limit PRUNED without a value; the paper's
    configuration (trial 0) is one of them."""
    from asc_auto.dashboard import record_constraints
    from asc_auto.schema import TrialRecord

    study = optuna.create_study(direction="maximize", study_name="kd-2024")
    study.set_user_attr("budget_kb", 128.0)
    study.set_user_attr("rule", "dcase2024")
    points = [(491.3, None, "fp16", "paper"), (50.2, 0.61, "fp32", "search"),
              (140.0, None, "fp32", "search"), (90.0, 0.66, "int8", "search"),
              (64.0, 0.64, "fp16", "search"), (110.0, 0.70, "fp16", "search"),
              (100.0, 0.62, "fp32", "search")]
    for kb, acc, precision, source in points:
        trial = study.ask()
        TrialRecord(size_kb=kb, feasible=acc is not None, source=source,
                    precision=precision).write(trial)
        record_constraints(trial, {SIZE_CONSTRAINT: kb * 1000 - 128_000})
        if acc is None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, acc)
    return study


def test_pareto_plot_labels_trials_precisions_and_the_paper_over_the_limit() -> None:
    from asc_auto.plots import pareto_figure

    ax = pareto_figure(_over_limit_paper_study()).axes[0]
    texts = {t.get_text() for t in ax.texts}
    assert texts == {"#1 fp32", "#4 fp16", "#3 int8", "#5 fp16",
                     "paper #0 (fp16): over the limit, not trained"}
    labels = ax.get_legend_handles_labels()[1]
    assert {"fp32 trials", "fp16 trials", "int8 trials", "Pareto front",
            "over the limit (not trained)", "seed paper's configuration",
            "limit 128.0 KB"} == set(labels)
    low, high = ax.get_ylim()
    assert 0.55 < low < 0.61 and 0.70 < high < 0.75  # no made-up 0 stretching the axis
    assert ax.get_xlim()[1] > 491.3  # the paper's point, far over the limit, is on the plot

    older = pareto_figure(_fake_study("sqlite:///:memory:")).axes[0]  # COMPLETE at 0.0
    assert "paper #0 (fp16)" in {t.get_text() for t in older.texts}
    assert "over the limit (not trained)" in older.get_legend_handles_labels()[1]
    assert older.get_ylim()[0] > 0.5


def test_history_plot_has_whole_trial_numbers() -> None:
    from asc_auto.plots import history_figure

    ax = history_figure(_over_limit_paper_study()).axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert "over the limit (not trained)" in ax.get_legend_handles_labels()[1]
    assert ax.get_ylim()[0] > 0.5


@pytest.mark.filterwarnings("error")  # matplotlib warns about an empty legend
def test_plots_of_a_study_without_a_trial_say_so() -> None:
    from asc_auto.plots import NOTHING_YET, history_figure, pareto_figure

    study = optuna.create_study(direction="maximize")
    for figure in (history_figure(study), pareto_figure(study)):
        ax = figure.axes[0]
        assert ax.get_legend() is None
        assert [t.get_text() for t in ax.texts] == [NOTHING_YET]
    # a study that knows its limit (a search stopped before its first trial ended): the limit's
    # line alone is no result, so the Pareto plot says so too
    StudyRecord(budget_kb=500.0).write(study)
    ax = pareto_figure(study).axes[0]
    assert [t.get_text() for t in ax.texts] == [NOTHING_YET]
    assert ax.get_legend_handles_labels()[1] == ["limit 500.0 KB"]


def _kernel_study(url: str) -> optuna.Study:
    """kernel 3: two finished (0.50, 0.60), one stopped early; 5: one finished (0.80), one over
    the limit; 7: never sampled."""
    study = optuna.create_study(storage=url, study_name="kd", direction="maximize")
    study.set_user_attr("val_clips", 100)
    for kernel, outcome in ((3, 0.50), (3, 0.60), (3, "stopped"), (5, 0.80), (5, "over")):
        study.enqueue_trial({"kernel_size": kernel})
        trial = study.ask()
        assert trial.suggest_categorical("kernel_size", [3, 5, 7]) == kernel
        trial.set_user_attr("feasible", outcome != "over")
        trial.set_user_attr("size_kb", 900.0 if outcome == "over" else 100.0)
        if isinstance(outcome, float):
            study.tell(trial, outcome)
        else:
            trial.report(0.3, 1)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return study


def test_choice_counts_say_how_often_each_choice_was_tried(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    study = _kernel_study(url)
    counts = {c.choice: c for c in choice_counts(study)}
    assert [(c.tried, c.finished, c.stopped, c.over_limit) for c in counts.values()] == [
        (3, 2, 1, 0), (2, 1, 0, 1), (0, 0, 0, 0)]
    assert counts[3].best.value == 0.60 and counts[5].best.value == 0.80
    assert counts[7].best is None
    line = untested_choices(study)
    assert line is not None and "kernel_size=5 (1), kernel_size=7 (0)" in line
    assert "kernel_size=3" not in line and "--trials N" in line

    shown = runner.invoke(app, ["show", "--study", "kd", "--storage", url],
                          env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "how often each choice was tried" in shown.output
    assert "0.8000 ± 0.040 (#3)" in shown.output  # best of kernel 5 with its SE on 100 clips
    data = json.loads(runner.invoke(app, ["show", "--study", "kd", "--storage", url,
                                          "--json"]).output)
    assert {(c["choice"], c["finished"], c["best_trial"]) for c in data["choices"]} == {
        (3, 2, 1), (5, 1, 3), (7, 0, None)}


def test_the_tables_say_what_a_value_and_its_error_are_computed_over() -> None:
    assert se_basis(StudyRecord(val_clips=33, train_clips=121)) == (
        "val acc ± its standard error on 33 validation clips")
    assert se_basis(StudyRecord(val_clips=33, train_clips=121, cv_folds=5)) == (
        "val acc: the mean over 5-fold cross-validation of 154 clips, ± its standard error")
    assert se_basis(StudyRecord(val_clips=33, train_clips=121, cv_folds=0)) == (
        "val acc ± its standard error on 33 validation clips")  # --cv 0: the split
    assert se_basis(StudyRecord()) is None  # an old study that did not record its clips


# ------------------------------------------------ issue 10: every report against the baseline


def _retrained(url: str, name: str, technique: str, data: str, accs: list[float]) -> None:
    study = optuna.create_study(storage=url, study_name=name, direction="maximize")
    StudyRecord(technique=technique, data_sha256=data, data=f"/recordings/{data}",
                retrain={"trial": 0, "seeds": len(accs), "mean": sum(accs) / len(accs),
                         "std": 0.0, "per_seed": [{"seed": i, "accuracy": a}
                                                  for i, a in enumerate(accs)]}).write(study)


def test_the_gap_to_the_baseline_is_the_seed_means_difference_with_its_error() -> None:
    from asc_auto.against_baseline import Retrained, baseline_gaps, difference, reference_studies

    diff, se = difference([80.0, 82.0, 84.0], [88.0, 88.0, 91.0])
    assert diff == pytest.approx(-7.0) and se == pytest.approx((4 / 3 + 3 / 3) ** 0.5)
    assert difference([80.0], [88.0, 90.0]) == (pytest.approx(-9.0), None)  # one seed: no SE

    def run(name: str, technique: str, data: str | None, accs: list[float] | None) -> Retrained:
        return Retrained(name, technique, data, None if accs is None else {
            "mean": sum(accs) / len(accs), "per_seed": [{"accuracy": a} for a in accs]})

    studies = [run("bl-one-seed", "baseline", "A", [0.95]),
               run("bl", "baseline", "A", [0.88, 0.88, 0.91]),  # more seeds: the reference
               run("bl-unretrained", "baseline", "A", None),
               run("kd", "kd", "A", [0.80, 0.82, 0.84]),
               run("int8-on-B", "int8", "B", [0.70, 0.71, 0.72]),  # no baseline on B
               run("lt-unretrained", "lt", "A", None)]
    assert {k: v.study for k, v in reference_studies(studies).items()} == {"A": "bl"}
    gaps = baseline_gaps(studies)
    assert list(gaps) == ["kd"]
    assert gaps["kd"].baseline_study == "bl" and gaps["kd"].text() == "-7.0 ± 1.5"
    # below by more than 2 SE: a warning with the ways out; within the noise, or one seed: none
    from asc_auto.against_baseline import Gap, warning_line

    said = warning_line("kd", gaps["kd"])
    assert said is not None and said.startswith(
        "warning: kd: its retrained model is 7.0 ± 1.5 points below the baseline CNN on the same "
        "data (study 'bl'), beyond the noise; fix: ")
    assert warning_line("kd", Gap("bl", -2.9, 1.5)) is None
    assert warning_line("kd", Gap("bl", -20.0, None)) is None
    assert warning_line("kd", Gap("bl", 5.0, 1.0)) is None


def test_an_aclnet_study_below_the_baseline_is_told_to_distil_from_it_unless_it_did() -> None:
    from asc_auto.against_baseline import Gap, teacher_hint, warning_line

    hint = teacher_hint("int8", {"teacher_logits": []})
    assert hint is not None and "asc-auto search --technique int8 --distil-from baseline" in hint
    assert "--technique lt --distil-from" in (teacher_hint("lt", None) or "")
    taught = {"teacher_logits": [{"path": "/t.npz", "sha256": "ab"}]}
    # distilled already, its own teacher (kd), no stored teacher at all (gcc), the reference
    assert [teacher_hint(t, s) for t, s in (("int8", taught), ("kd", None), ("gcc", None),
                                            ("baseline", None), ("unknown", None))] == [None] * 5
    said = warning_line("int8", Gap("bl", -7.0, 1.5), hint)
    assert said is not None and f"beyond the noise; fix: {hint}, a longer training" in said
    assert warning_line("int8", Gap("bl", -2.0, 1.5), hint) is None  # within the noise


def test_report_and_studies_put_each_study_against_the_baseline_on_its_data(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    _retrained(url, "baseline", "baseline", "office", [0.894, 0.894, 0.864])
    _retrained(url, "int8", "int8", "office", [0.833, 0.788, 0.803])
    _retrained(url, "kd-digits", "kd", "digits", [0.50, 0.55, 0.52])  # no baseline there
    rows = {r.study: r for r in study_rows(open_storage(url))}
    assert rows["int8"].vs_baseline is not None
    assert rows["int8"].vs_baseline.text() == "-7.6 ± 1.7"  # docs/BENCHMARKS.md's office16 int8 row
    assert rows["baseline"].reference and rows["kd-digits"].vs_baseline is None
    summary, _ = write_report(open_storage(url), tmp_path / "out")
    text = summary.read_text()
    # 0.833, 0.788, 0.803: std 0.0229, SE 0.0229 / sqrt(3) = 0.0132
    assert "| #0: 0.8080 ± 0.0132 (SE of seeds; std 0.0229, 3 seeds) | -7.6 ± 1.7 |" in text
    assert "| reference |" in text and text.count("3 seeds) | - |") == 1  # kd-digits
    assert "- warning: int8: its retrained model is 7.6 ± 1.7 points below the baseline" in text
    assert "fix: the baseline CNN as its teacher (asc-auto search --technique int8 " \
        "--distil-from baseline" in text  # it had no teacher
    png = tmp_path / "out" / "against-baseline.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and "(against-baseline.png)" in text
    listed = runner.invoke(app, ["studies", "--storage", url], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    flat = " ".join(listed.output.split())
    assert "-7.6 ± 1.7" in flat and "reference" in flat
    as_json = runner.invoke(app, ["studies", "--storage", url, "--json"])
    by_name = {s["study"]: s for s in json.loads(as_json.output)}
    assert by_name["int8"]["vs_baseline"] == {"baseline_study": "baseline", "points": -7.6,
                                              "se": 1.66, "se_includes_clips": False}
    assert by_name["baseline"]["reference"] and by_name["kd-digits"]["vs_baseline"] is None
    assert by_name["int8"]["data"] == {"sha256": "office", "name": "office",
                                       "path": "/recordings/office"}
    reported = runner.invoke(app, ["report", "--storage", url, "--out", str(tmp_path / "o2")],
                             env={"COLUMNS": "250"})
    assert reported.exit_code == 0, reported.output
    assert " ".join(reported.output.split()).count("warning: int8: its retrained model is 7.6") == 1
    assert "--technique int8 --distil-from baseline" in " ".join(reported.output.split())
    shown_json = json.loads(runner.invoke(app, ["show", "--study", "int8", "--storage", url,
                                                "--json"]).output)
    assert shown_json["vs_baseline"] == by_name["int8"]["vs_baseline"]
    shown = runner.invoke(app, ["show", "--study", "int8", "--storage", url],
                          env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert ("against the baseline CNN retrained on the same data (study 'baseline'): -7.6 ± 1.7 "
            "points") in " ".join(shown.output.split())


def test_without_a_baseline_on_the_data_the_report_draws_no_comparison(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    _retrained(url, "int8", "int8", "office", [0.833, 0.788, 0.803])
    summary, rows = write_report(open_storage(url), tmp_path / "out")
    assert rows[0].vs_baseline is None and not rows[0].reference
    assert not (tmp_path / "out" / "against-baseline.png").exists()
    assert "against-baseline.png" not in summary.read_text()


def test_after_a_search_the_next_steps_include_the_baseline_only_where_none_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from asc_auto.cli import _where
    from asc_auto.overview import next_steps, studies_data

    url = f"sqlite:///{tmp_path / 'r.db'}"
    _retrained(url, "int8", "int8", "office", [0.833, 0.788, 0.803])
    store = open_storage(url)
    int8 = optuna.load_study(study_name="int8", storage=store)
    said = next_steps(int8, studies_data(store), " --home H")
    assert said.startswith("next: asc-auto retrain --study int8 --seeds 3 --home H, then "
                           "asc-auto export --study int8 --out <folder> --home H")
    assert said.endswith("to compare it with the DCASE baseline CNN on the same data: asc-auto "
                         "search --technique baseline --data /recordings/office --home H, then "
                         "retrain that study with --seeds 3")
    # a baseline study searched on that data but not retrained: retrain it
    searched = optuna.create_study(storage=url, study_name="bl-searched", direction="maximize")
    StudyRecord(technique="baseline", data_sha256="office").write(searched)
    assert next_steps(int8, studies_data(store), "").endswith(
        "on the same data: asc-auto retrain --study bl-searched --seeds 3")
    _retrained(url, "baseline", "baseline", "office", [0.894, 0.894, 0.864])
    assert "baseline" not in next_steps(int8, studies_data(store), "")  # it has one now
    # the options a suggested command repeats: none the environment sets, no password shown
    monkeypatch.delenv("ASC_AUTO_STORAGE", raising=False)
    monkeypatch.delenv("ASC_AUTO_HOME", raising=False)
    assert _where("postgresql://bob:s3cret@db:5432/asc", Path("studies")) == (
        " --storage postgresql://bob:***@db:5432/asc")
    assert _where(None, tmp_path) == f" --home {tmp_path}"
    monkeypatch.setenv("ASC_AUTO_HOME", str(tmp_path))
    assert _where(None, tmp_path) == ""


def test_interrupted_trials_and_unrecorded_fp32_scores_are_told_apart(tmp_path: Path) -> None:
    """A killed worker's trial failed, not its configuration: `show` says how many of the
    failed were interrupted; a resumed trial whose old folds kept no FP32 score shows "-"."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = _fake_study(url)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # killed: no reason
    raised = study.ask()
    raised.set_user_attr("fail_reason", "RuntimeError: out of memory")
    study.tell(raised, state=optuna.trial.TrialState.FAIL)
    assert summary_line(study).startswith("4 complete, 1 pruned, 1 infeasible, 2 failed "
                                          "(1 interrupted)")
    shown = runner.invoke(app, ["show", "--study", "kd"],
                          env={"ASC_AUTO_STORAGE": url, "COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    row = next(x for x in shown.output.splitlines() if x.startswith("│ 0 paper"))
    assert [c.strip() for c in row.strip("│ ").split("│")][2] == "-"
    assert "nan" not in shown.output


def test_a_retrain_s_seeds_are_said_with_the_mean_s_se_and_their_spread() -> None:
    """What `retrain` prints under its table: the mean ± its SE, then the std and the range one
    model may land in (office16's kd pick: 68-94 % around 81 %)."""
    from asc_auto.stats import seeds_text

    said = seeds_text([0.8636, 0.8485, 0.7879])
    # mean 0.8333; std 0.0401 (n - 1); SE 0.0401 / sqrt(3) = 0.0231
    assert said == ("0.8333 ± 0.0231 over 3 seeds (SE of the mean; std 0.0401, seeds "
                    "0.7879-0.8636)")
    assert seeds_text([0.75]) == "0.7500 on 1 seed (no spread to say)"


def test_studies_and_report_show_one_retrained_cell_for_one_retrain() -> None:
    """`studies` (through the overview's JSON) and `report` write the same SE: both from the
    kept seeds, not one of them from the std rounded to 4 decimals (0.0682 against 0.0681)."""
    from asc_auto.overview import retrain_data
    from asc_auto.report import retrained_text
    from asc_auto.schema import StudyRecord

    record = {"trial": 2, "seeds": 2, "mean": 0.2652, "std": 0.0964, "folder": "x",
              "per_seed": [{"seed": 0, "accuracy": 0.3333, "log_loss": 2.3},
                           {"seed": 1, "accuracy": 0.197, "log_loss": 2.3}]}
    shown = retrain_data(StudyRecord(retrain=record), 2)
    assert shown is not None and [s["accuracy"] for s in shown["per_seed"]] == [0.3333, 0.197]
    assert retrained_text(shown, 2) == retrained_text(record, 2) == \
        "#2: 0.2652 ± 0.0681 (SE of seeds; std 0.0964, 2 seeds)"
    without = {k: v for k, v in record.items() if k != "per_seed"}  # a record from before
    assert retrained_text(retrain_data(StudyRecord(retrain=without), 2), 2) == \
        "#2: 0.2652 ± 0.0682 (SE of seeds; std 0.0964, 2 seeds)"


def test_the_picked_configuration_s_title_is_one_line() -> None:
    """A two-column table is narrower than 'confirmed pick: trial 0 (what retrain takes)':
    rich wrapped the title mid-phrase until the table was made as wide as it."""
    from rich.console import Console

    from asc_auto.report import config_table

    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(
        value=0.5, user_attrs={"config": {"lr": 0.001, "precision": "fp32"}}))
    title = "confirmed pick: trial 0 (what retrain takes)"
    console = Console(width=200, record=True)
    console.print(config_table(study.trials[0], title))
    lines = console.export_text().splitlines()
    assert lines[0].strip() == title
    assert any("lr" in line and "0.001" in line for line in lines)
