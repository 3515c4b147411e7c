"""`search --jobs N --trials T`: the workers draw from one budget of T (shared_budget.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import optuna
from optuna.trial import TrialState

from asc_auto.shared_budget import SharedBudget, run_trials
from asc_auto.storage import storage_file

# One worker: a study.optimize whose trials take `seconds` each, gated like a --jobs worker's.
_WORKER = """
import sys, time
import optuna
from asc_auto.shared_budget import SharedBudget
url, run, name = sys.argv[1], sys.argv[2], sys.argv[5]
trials, seconds = int(sys.argv[3]), float(sys.argv[4])
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.load_study(study_name="s", storage=url)
gate = SharedBudget(url, run, trials)
def objective(trial):
    gate.started(trial)
    trial.set_user_attr("by", name)
    time.sleep(seconds)
    return 1.0
with gate.first(study) as may_start:
    if may_start:
        study.optimize(objective, callbacks=[gate])
"""


def _workers(url: str, run: str, trials: int, seconds: list[float]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, url, run, str(trials), str(s),
                               f"w{i}"], env=env, stderr=subprocess.PIPE, text=True)
             for i, s in enumerate(seconds)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]


def test_a_fast_worker_takes_the_trials_a_slow_one_leaves(tmp_path: Path) -> None:
    """Split up front each would run 6 of 12; drawn from one budget the worker whose trials end
    at once runs most of them while the slow one is inside its first, and no more than 12 run."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="s", storage=url)
    _workers(url, "run1", 12, [0.0, 4.0])
    study = optuna.load_study(study_name="s", storage=url)
    by = Counter(t.user_attrs["by"] for t in study.trials)
    assert len(study.trials) == 12 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert by["w0"] >= 9 and by["w1"] <= 3, by
    assert run_trials(study.trials, "run1") == (12, 0)


def test_workers_finishing_together_never_overshoot_the_budget(tmp_path: Path) -> None:
    """Four workers whose trials take no time all reach the last trials together: the count
    and the next trial's start share the storage's lock, so exactly the budget runs."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    study.add_trial(optuna.trial.create_trial(value=0.5))  # an earlier run's: not this one's
    _workers(url, "run2", 20, [0.0] * 4)
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert len(trials) == 21
    assert run_trials(trials, "run2") == (20, 0)
    assert storage_file(url) is not None


def test_the_count_is_the_runs_own_and_the_lock_is_held_until_the_trial_starts(
        tmp_path: Path) -> None:
    """Another run's trials and proposals over the size limit do not take this run's places;
    running ones do. Between a claim and the trial's start the lock is held (another process
    waiting on it would count the new trial), and released when no trial may start."""
    from filelock import FileLock, Timeout

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=url)
    for run, state, feasible in [("r", TrialState.COMPLETE, True),
                                 ("r", TrialState.PRUNED, False),  # over the limit: free
                                 ("r", TrialState.FAIL, True),
                                 ("other", TrialState.COMPLETE, True)]:
        study.add_trial(optuna.trial.create_trial(
            state=state, value=0.5 if state == TrialState.COMPLETE else None,
            user_attrs={"run": run, "feasible": feasible}))
    running = study.ask()
    running.set_user_attr("run", "r")
    assert run_trials(study.get_trials(), "r") == (2, 1)

    def lock_is_free() -> bool:
        try:
            with FileLock(f"{storage_file(url)}.asc-setup.lock", timeout=0):
                return True
        except Timeout:
            return False

    gate = SharedBudget(url, "r", trials=4)
    assert gate.claim(study) and gate.finished == 2
    assert not lock_is_free()  # held for the trial about to start
    trial = study.ask()
    gate.started(trial)
    assert lock_is_free()
    assert study.get_trials()[-1].user_attrs["run"] == "r"
    assert not gate.claim(study)  # 2 finished + 2 running = 4
    assert lock_is_free()
    study.tell(running, state=TrialState.PRUNED)
    study.tell(trial, state=TrialState.COMPLETE, values=[0.9])
    assert not gate.claim(study)  # 4 finished
    assert lock_is_free()
