"""benchmarks/real_data.py's figure: what it draws is the rows' numbers, per dataset."""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import optuna
import pytest
from matplotlib.patches import Rectangle

from asc_auto.plots import save_png


def _retrain(trial: int, accs: list[float]) -> dict[str, Any]:
    return {"trial": trial, "mean": statistics.fmean(accs),
            "per_seed": [{"seed": i, "accuracy": a} for i, a in enumerate(accs)]}


ROWS = [
    {"dataset": "office16", "technique": "baseline", "paper": _retrain(0, [0.894, 0.894, 0.864]),
     "best": _retrain(0, [0.894, 0.894, 0.864])},
    {"dataset": "office16", "technique": "int8", "paper": _retrain(0, [0.621, 0.606, 0.636]),
     "best": _retrain(5, [0.833, 0.788, 0.803])},
    {"dataset": "office16", "technique": "lt", "paper": _retrain(0, [0.606, 0.712, 0.712]),
     "best": _retrain(5, [0.742, 0.742, 0.833])},
    {"dataset": "fsdd", "technique": "int8", "paper": _retrain(0, [0.222]),  # one seed, no base
     "best": _retrain(2, [0.506, 0.537, 0.512])},
]


def test_the_figure_draws_each_dataset_s_paper_pick_and_baseline(
        load_benchmark: Callable[[str], ModuleType], tmp_path: Path) -> None:
    real_data = load_benchmark("real_data")
    fig = real_data.results_figure(ROWS)
    office, fsdd = fig.axes
    assert (office.get_title(), fsdd.get_title()) == ("office16", "fsdd")
    assert [t.get_text() for t in office.get_xticklabels()] == ["int8", "lt"]  # not baseline

    def heights(ax: Any) -> list[float]:
        return [round(p.get_height(), 3) for p in ax.patches
                if isinstance(p, Rectangle) and p.get_width() < 1]

    # paper then pick for each technique: the seed means, in percent
    assert heights(office) == pytest.approx([62.1, 80.8, 67.667, 77.233], abs=1e-3)
    assert heights(fsdd) == pytest.approx([22.2, 51.833], abs=1e-3)
    # the seeds themselves as dots beside each bar
    dots = [line for line in office.get_lines() if line.get_marker() == "."]
    assert sorted(y for line in dots for y in line.get_ydata()) == pytest.approx(sorted(
        100 * s["accuracy"] for r in ROWS[1:3] for k in ("paper", "best")
        for s in r[k]["per_seed"]))
    # the baseline CNN as a line at its seed mean on office16; none on fsdd, which has no row
    flat = [line for line in office.get_lines() if line.get_marker() != "."
            and len(set(line.get_ydata())) == 1 and line.get_label() == "baseline CNN"]
    assert [line.get_ydata()[0] for line in flat] == pytest.approx([88.4])
    assert not [line for line in fsdd.get_lines() if line.get_label() == "baseline CNN"]
    # one legend for the figure, each entry once
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == [
        "baseline CNN", "paper configuration", "search pick"]
    out = save_png(fig, tmp_path / "rows.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["rows.png"]  # no temp file left behind


def test_replot_shows_earlier_runs_together_and_names_a_bad_file(
        load_benchmark: Callable[[str], ModuleType], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`--replot` trains nothing: a later file's row replaces an earlier one's of the same dataset
    and technique (a rerun of lt beside the first run's int8), and the figure lands beside the
    last file; a file that is not a result file is named with the fix."""
    real_data = load_benchmark("real_data")
    timing = {"trials": 6, "cv_folds": 3, "epochs": 40, "search_seconds": 1.0,
              "retrain_seconds": 2.0}
    first, rerun = tmp_path / "first.json", tmp_path / "rerun.json"
    first.write_text(json.dumps([{**r, **timing} for r in ROWS[:3]]))
    newer_lt = {**ROWS[2], **timing, "best": _retrain(3, [0.80, 0.81, 0.82])}
    kd = {**ROWS[1], **timing, "technique": "kd", "teacher_val_accuracy": 0.89,
          "teacher_val_se": 0.025, "teacher_eval_accuracy": 0.824}
    rerun.write_text(json.dumps([newer_lt, kd]))
    rows = real_data.replotted_rows([first, rerun])
    assert [(r["technique"], r["best"]["trial"]) for r in rows] == [
        ("baseline", 0), ("int8", 5), ("lt", 3), ("kd", 5)]
    monkeypatch.setattr(sys, "argv", ["real_data.py", "--replot", str(first), str(rerun)])
    real_data.main()
    out = " ".join(capsys.readouterr().out.split())
    assert "81.0 ± 1.0 (#3)" in out and "-7.4 ± 1.2" in out  # the rerun's lt against the baseline
    assert "89.0 ± 2.5" in out  # the teacher's validation accuracy with its standard error
    assert "89.0 ± 2.5 │ 82.4 │" in out  # and its retrained twin's on the evaluate fold
    assert f"plot: {tmp_path / 'rerun.png'}" in out
    assert (tmp_path / "rerun.png").read_bytes()[:4] == b"\x89PNG"
    assert real_data.results_figure(rows).axes[0].get_title() == "office16, 40 epochs"
    bad = tmp_path / "notes.json"
    bad.write_text('{"not": "rows"}')
    with pytest.raises(SystemExit, match=r"notes\.json: not a real_data\.py result file .*fix: "):
        real_data.replotted_rows([first, bad])


def test_the_row_retrains_as_many_seeds_side_by_side_as_its_search_had_workers(
        load_benchmark: Callable[[str], ModuleType]) -> None:
    real_data = load_benchmark("real_data")

    def jobs(*argv: str) -> int:
        return real_data.retrain_jobs(SimpleNamespace(retrain_jobs=None, search_args=[])
                                      if not argv else _args(*argv))

    def _args(*argv: str) -> SimpleNamespace:
        retrain = next((int(a.split("=")[1]) for a in argv if a.startswith("--retrain-jobs=")),
                       None)
        return SimpleNamespace(retrain_jobs=retrain,
                               search_args=[a for a in argv if not a.startswith("--retrain")])

    assert jobs() == 1
    assert jobs("--confirm-top", "2", "--jobs", "2") == 2
    assert jobs("--jobs=3") == 3
    assert jobs("--jobs", "2", "--retrain-jobs=1") == 1  # told: as told
    # not in the row's budget: a seed does not depend on what trained beside it
    ns = SimpleNamespace(trials=6, timeout=None, seeds=3, space_dir=None,
                         search_args=["--jobs", "2"], retrain_jobs=4)
    same = SimpleNamespace(**{**vars(ns), "retrain_jobs": None})
    assert real_data.budget_of(ns) == real_data.budget_of(same)


def test_more_seeds_retrain_the_row_s_study_and_a_study_named_with_its_seeds_is_found(
        load_benchmark: Callable[[str], ModuleType], tmp_path: Path) -> None:
    real_data = load_benchmark("real_data")
    data = Path("/data/office16")
    three = SimpleNamespace(trials=6, timeout=None, seeds=3, space_dir=None,
                            search_args=["--epochs", "40", "--cv", "3"])
    six = SimpleNamespace(**{**vars(three), "seeds": 6})
    twelve = SimpleNamespace(**{**vars(three), "trials": 12})
    name = real_data.study_name(data, "int8", three)
    assert name.startswith("bench-office16-int8-")
    assert real_data.study_name(data, "int8", six) == name  # seeds: retrain's, not the search's
    assert real_data.study_name(data, "int8", twelve) != name
    assert real_data.study_name(data, "lt", three) != name
    assert real_data.budget_of(six)["seeds"] == 6  # the row still records them
    home = tmp_path / "home"
    home.mkdir()
    assert real_data.study_name(data, "int8", six, home) == name  # no database yet
    # a study made before: its name hashed the seeds it was retrained with (3)
    tag = hashlib.sha256(json.dumps(real_data.budget_of(three), sort_keys=True).encode())
    old = f"bench-office16-int8-{tag.hexdigest()[:8]}"
    optuna.create_study(study_name=old, storage=real_data.default_storage(home))
    assert real_data.study_name(data, "int8", six, home) == old  # its trials, three more seeds
    assert real_data.study_name(data, "int8", three, home) == old
    assert real_data.study_name(data, "int8", twelve, home) != old  # another search budget
    assert real_data.study_name(data, "lt", six, home) != old
    # once a study of the new name exists, it is the one
    optuna.create_study(study_name=name, storage=real_data.default_storage(home))
    assert real_data.study_name(data, "int8", six, home) == name


def test_distil_from_runs_the_teacher_row_first_and_teaches_only_int8_and_lt(
        load_benchmark: Callable[[str], ModuleType], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`--distil-from baseline`: the baseline row first, its out-of-fold outputs made once per
    dataset, given to the int8 and lt searches (not kd's, which has its own teacher), and a
    budget of its own (another study than the same rows without a teacher)."""
    real_data = load_benchmark("real_data")
    calls: list[tuple[str, str, Any]] = []
    made: list[str] = []

    def run_one(data: Path, technique: str, args: Any, home: Path, teacher: Any = None) -> Any:
        calls.append((data.name, technique, teacher and teacher["file"]))
        return {"dataset": data.name, "technique": technique, "budget": real_data.budget_of(args),
                "trials": 1, "cv_folds": 0, "paper": _retrain(0, [0.5, 0.5, 0.5]),
                "best": _retrain(0, [0.5, 0.5, 0.5]), "best_config": {},
                "search_seconds": 1.0, "retrain_seconds": 1.0}

    def oof_teacher(data: Path, args: Any, home: Path) -> dict[str, Any]:
        made.append(data.name)
        return {"file": f"{data.name}-oof.npz"}

    monkeypatch.setattr(real_data, "run_one", run_one)
    monkeypatch.setattr(real_data, "oof_teacher", oof_teacher)
    monkeypatch.setattr(real_data, "report", lambda *a, **k: None)
    a, b = tmp_path / "a", tmp_path / "b"
    argv = ["real_data.py", "--data", str(a), str(b), "--techniques", "int8", "kd", "baseline",
            "lt", "--home", str(tmp_path / "home"), "--out", str(tmp_path / "r.json")]
    monkeypatch.setattr(sys, "argv", [*argv, "--distil-from", "baseline"])
    real_data.main()
    assert calls == [("a", "baseline", None), ("a", "int8", "a-oof.npz"), ("a", "kd", None),
                     ("a", "lt", "a-oof.npz"), ("b", "baseline", None),
                     ("b", "int8", "b-oof.npz"), ("b", "kd", None), ("b", "lt", "b-oof.npz")]
    assert made == ["a", "b"]  # once per dataset
    args = SimpleNamespace(trials=12, timeout=None, seeds=3, space_dir=None, search_args=[])
    taught = SimpleNamespace(**vars(args), distil_from="baseline", distil_folds=5)
    assert real_data.study_name(a, "int8", args) != real_data.study_name(a, "int8", taught)
    monkeypatch.setattr(sys, "argv", [*argv[:5], "int8", "--distil-from", "baseline"])
    with pytest.raises(SystemExit):  # its row is the teacher: it must be among the rows
        real_data.main()


def test_a_resumed_row_s_wall_time_says_it_is_a_part(load_benchmark) -> None:
    """A row whose study an earlier, stopped run began times only the rest: the table says so
    rather than show a part as the whole."""
    real_data = load_benchmark("real_data")
    row = {"search_seconds": 1308.7, "retrain_seconds": 687.5}
    assert real_data.wall_text(row) == "1996"
    assert real_data.wall_text({**row, "resumed_after_trials": 0}) == "1996"
    assert real_data.wall_text({**row, "resumed_after_trials": 6}) == (
        "1996 (resumed after 6 trials)")


def test_the_log_passes_each_run_s_progress_and_score(
        load_benchmark: Callable[[str], ModuleType]) -> None:
    """A row that takes hours says where it stands: each confirmation run (sequential or side
    by side) and each retrained seed, with its score; not the tables."""
    real_data = load_benchmark("real_data")
    for line in ("confirming trial 1 with seed 1: fold 1/3 val acc 0.6667 ± 0.066; 5.8 min in, "
                 "about 11.6 min left in this run",
                 "confirmed trial 3 with seed 1: 0.7532 ± 0.040 (run 1 of 3; its search value "
                 "0.7403)",
                 "seed 1: evaluate accuracy 0.8333 ± 0.046 (2.7 min); 2 of 3 seeds",
                 "retrained trial 3 seed 1: evaluate accuracy 0.8333 (2.7 min of training)",
                 "[worker 1] trial 4 COMPLETE val acc 0.7000 ± 0.040"):
        assert real_data.said(line), line
    for line in ("│    0 │   0.3333 │", "kd: trial 0 retrained, evaluate fold", ""):
        assert not real_data.said(line), line


def test_a_gap_says_the_clips_part_where_both_retrains_kept_their_clips(
        load_benchmark: Callable[[str], ModuleType]) -> None:
    """The targets' columns are about this evaluate fold (seeds' SE); where both retrains kept
    each seed's per-clip results, the SE that also counts which clips the fold holds follows."""
    real_data = load_benchmark("real_data")

    def kept(accs: list[float], correct: list[str], files: str = "fold") -> dict[str, Any]:
        return {**_retrain(1, accs), "eval_files": files,
                "per_seed": [{"seed": i, "accuracy": a, "correct": c}
                             for i, (a, c) in enumerate(zip(accs, correct, strict=True))]}

    pick = kept([0.75, 0.5], ["1110", "1100"])  # shares 1 1 .5 0
    base = kept([0.5, 0.5], ["1100", "0011"])  # shares .5 .5 .5 .5
    # seeds: pick var 0.03125 / 2, base 0: SE 12.5 points; clips: differences .5 .5 0 -.5,
    # population sd sqrt(0.171875) over sqrt(4): 20.7 points; together 24.2
    assert real_data._gap(pick, base) == "+12.5 ± 12.5 (with clips ± 24.2)"
    assert real_data._gap(pick, {**base, "eval_files": "another fold"}) == "+12.5 ± 12.5"
    assert real_data._gap(_retrain(1, [0.75, 0.5]), base) == "+12.5 ± 12.5"  # kept before
