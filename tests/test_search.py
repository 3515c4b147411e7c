"""End to end: a few kd trials into a temporary SQLite study, then what it recorded."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from asc_auto.errors import AscError
from asc_auto.records import feasible_trials
from asc_auto.report import pareto_front, state_counts
from asc_auto.search import SearchOptions, run_search
from asc_auto.search_progress import TrialBudget

pytestmark = pytest.mark.slow

SPACES = Path(__file__).parent / "spaces"


BIG = {"c1": 8, "c2": 16, "c3": 64, "kernel_size": 3, "alpha_w": 0.3, "beta_w": 0.3,
       "gamma_w": 0.4, "temperature": 2.0, "lr": 3e-3, "mixup_alpha": 0.1, "precision": "fp32"}
BUDGET_KB = 20.0  # BIG: 16*64*9 conv weights alone at fp32 = 36 KB -> infeasible


@pytest.fixture
def space_file() -> Path:
    return SPACES / "kd.toml"


def _opts(tmp_path: Path, data: Path, space: Path, trials: int, **kw: object) -> SearchOptions:
    kw.setdefault("budget_kb", BUDGET_KB)
    return SearchOptions(
        technique="kd", data=data, trials=trials, space=space,
        storage=f"sqlite:///{tmp_path / 'asc.db'}", home=tmp_path / "home", progress=False,
        **kw,  # type: ignore[arg-type]
    )


def test_kd_search_records_trials_constraint_and_paper_point(
    tmp_path: Path, tiny_dataset: Path, space_file: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'asc.db'}"
    pre = optuna.create_study(storage=storage, study_name="kd", direction="maximize")
    pre.enqueue_trial(BIG)  # runs first: over the budget, must be recorded but never trained

    study = run_search(_opts(tmp_path, tiny_dataset, space_file, trials=3), status=lambda m: None)
    trials = study.get_trials()
    assert len(trials) == 4  # the over-limit trial is recorded but not one of --trials 3
    assert sum(t.user_attrs["feasible"] for t in trials) == 3
    big, paper = trials[0], trials[1]

    assert big.state == TrialState.PRUNED and big.value is None  # no accuracy: not trained
    assert big.user_attrs["feasible"] is False
    assert big.user_attrs["size_kb"] > BUDGET_KB
    over = big.constraints["size_bytes_over_budget"]
    assert over == big.user_attrs["size_bytes"] - BUDGET_KB * 1024 > 0
    assert "val_history" not in big.user_attrs  # never trained

    assert paper.user_attrs["source"] == "paper"
    assert paper.params["c1"] == 4 and paper.params["c3"] == 16
    assert paper.user_attrs["config"]["gamma"] == pytest.approx(0.5)
    assert paper.state == TrialState.COMPLETE  # the paper's point is never pruned
    assert paper.user_attrs["feasible"] is True
    assert paper.constraints["size_bytes_over_budget"] <= 0
    assert paper.user_attrs["size_kb_trained"] <= paper.user_attrs["size_kb"]
    assert study.best_trial.user_attrs["feasible"] is True  # Optuna itself sees the constraint
    assert paper.user_attrs["precision"] == "fp16"
    assert len(paper.user_attrs["val_history"]) == 2
    assert 0.0 <= paper.value <= 1.0
    assert paper.user_attrs["macs"] > 0
    assert paper.user_attrs["params"] > 0
    assert paper.user_attrs["train_seconds"] > 0
    # size at fp16: counted values x 2 bytes, in KB of 1024 bytes
    assert paper.user_attrs["size_bytes"] == 2 * paper.user_attrs["counted_params"]
    assert paper.user_attrs["size_kb"] == pytest.approx(paper.user_attrs["size_bytes"] / 1024,
                                                        abs=0.01)

    assert study.user_attrs["technique"] == "kd"
    assert study.user_attrs["budget_kb"] == BUDGET_KB
    assert 0.0 <= study.user_attrs["teacher_val_accuracy"] <= 1.0
    assert study.user_attrs["train_clips"] > study.user_attrs["val_clips"] > 0

    ok = feasible_trials(study)
    assert big not in ok and ok
    front = pareto_front(ok)
    assert front and all(t.user_attrs["feasible"] for t in front)
    counts = state_counts(study)
    assert counts["infeasible"] == 1
    assert sum(counts.values()) == 4

    # A second run resumes the same study: trials are added, the paper point is not re-enqueued,
    # and the cached features and teacher are reused.
    again = run_search(_opts(tmp_path, tiny_dataset, space_file, trials=2), status=lambda m: None)
    assert len(again.get_trials()) == 6
    assert sum(t.user_attrs.get("source") == "paper" for t in again.get_trials()) == 1
    assert again.user_attrs["teacher_val_accuracy"] == study.user_attrs["teacher_val_accuracy"]

    # Changing the budget of an existing study is refused rather than mixing results.
    with pytest.raises(AscError, match=r"budget \(--budget-kb\): 20.0, this run has 100.0"):
        run_search(_opts(tmp_path, tiny_dataset, space_file, trials=1, budget_kb=100.0),
                   status=lambda m: None)


def test_trials_over_the_limit_do_not_count_and_a_space_that_never_fits_stops(
        tmp_path: Path, tiny_dataset: Path, space_file: Path) -> None:
    # 20 KB: TPE's proposals near the widest students are over it; --trials counts trained ones
    study = run_search(_opts(tmp_path, tiny_dataset, space_file, trials=5, epochs=1),
                       status=lambda m: None)
    trials = study.get_trials()
    assert sum(t.user_attrs["feasible"] for t in trials) == 5
    assert all(t.state != TrialState.WAITING for t in trials)

    # 0.1 KB: nothing fits, not even the paper's student: the search gives up with one line
    lines: list[str] = []
    opts = _opts(tmp_path, tiny_dataset, space_file, trials=1, budget_kb=0.1, study="tiny")
    study = run_search(opts, status=lines.append)
    assert len(study.get_trials()) == 20  # OVER_LIMIT_CAP per trial asked for
    assert not any(t.user_attrs["feasible"] for t in study.get_trials())
    assert any("stopped after 20 proposals over the limit and 0 of 1 trials" in line
               and "raise --budget-kb" in line for line in lines)
    assert any(line.startswith("20 proposals over the limit were sized") for line in lines)


def test_trial_budget_says_how_far_a_run_is_and_the_time_left_at_its_pace() -> None:
    now = [100.0]
    study = optuna.create_study()

    def finish(seconds: float, feasible: bool = True) -> None:
        now[0] += seconds
        trial = optuna.trial.create_trial(
            value=0.5, user_attrs={} if feasible else {"feasible": False, "trained": False})
        budget(study, trial)

    budget = TrialBudget(24, status=print, clock=lambda: now[0])
    assert budget.progress_text() == ""  # nothing to extrapolate from yet
    finish(600)
    assert budget.progress_text() == "1 of 24 trials, about 3.8 h left at this run's pace"
    finish(5, feasible=False)  # sized, not trained: no count, its seconds in the pace
    finish(595)
    assert budget.progress_text() == "2 of 24 trials, about 3.7 h left at this run's pace"
    capped = TrialBudget(24, status=print, timeout=1800.0, clock=lambda: now[0])
    now[0] += 600
    capped(study, optuna.trial.create_trial(value=0.5))
    assert capped.progress_text() == "1 of 24 trials, --timeout stops it in about 20.0 min"
    now[0] += 1300  # a trial that ran past the timeout: Optuna starts no other
    assert capped.progress_text() == "1 of 24 trials, --timeout has passed: no further trial starts"
    # two workers: the first trial to end is one of two run side by side
    budget = TrialBudget(24, status=print, clock=lambda: now[0], workers=2)
    finish(600)
    assert budget.progress_text() == "1 of 24 trials, about 2.0 h left at this run's pace"
    finish(60)  # the other worker's first: from here the run's own pace
    assert budget.progress_text() == "2 of 24 trials, about 2.0 h left at this run's pace"
    # a trial resumed with 3 of its 4 folds done (fold_resume.py) took a quarter of a trial:
    # the pace counts it as the whole trial it stands for
    budget = TrialBudget(4, status=print, clock=lambda: now[0])
    now[0] += 600
    start = datetime(2026, 12, 4, 20, 0)
    budget(study, optuna.trial.create_trial(
        value=0.6, user_attrs={"folds_reused": 3, "cv_accuracies": [0.6, 0.7, 0.5, 0.6]},
        state=optuna.trial.TrialState.COMPLETE))
    assert budget.progress_text() == "1 of 4 trials, about 30.0 min left at this run's pace"
    resumed = optuna.trial.FrozenTrial(
        number=1, state=optuna.trial.TrialState.COMPLETE, value=0.6, values=None,
        datetime_start=start, datetime_complete=start + timedelta(seconds=600), params={},
        distributions={}, user_attrs={"folds_reused": 3, "cv_accuracies": [0.6, 0.7, 0.5, 0.6]},
        system_attrs={}, intermediate_values={}, trial_id=1)
    budget = TrialBudget(4, status=print, clock=lambda: now[0])
    now[0] += 600
    budget(study, resumed)
    assert budget.progress_text() == "1 of 4 trials, about 2.0 h left at this run's pace"
    alone = TrialBudget(None, status=print, timeout=60.0, clock=lambda: now[0])
    alone(study, optuna.trial.create_trial(value=0.5))
    assert alone.progress_text() == ""  # --timeout alone: no count to say
