"""Fault corpus: many workers on one study (issue 11).

Workers started together on a fresh storage (SQLite, Optuna's journal file, PostgreSQL) once
died on the schema and study creation race, drew the same configurations from one sampler seed
and ran the paper trial twice. Each case here starts real processes at the same moment.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from asc_auto.confirm import confirmations, confirmed_best
from asc_auto.workers import unprefixed, worker_line

pytestmark = pytest.mark.slow
SPACE = Path(__file__).parents[1] / "spaces" / "kd.toml"

_WORKER = """
import sys
from pathlib import Path
from asc_auto.search import SearchOptions, run_search
run_search(SearchOptions(technique="kd", data=Path(sys.argv[1]), space=Path(sys.argv[2]),
                         trials=int(sys.argv[5]), epochs=1, storage=sys.argv[3],
                         home=Path(sys.argv[4]), progress=False, cv=0, confirm_seeds=0),
           status=print)
"""


def _start(n: int, data: Path, url: str, home: Path, trials: int = 3) -> list[subprocess.Popen]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return [subprocess.Popen([sys.executable, "-c", _WORKER, str(data), str(SPACE), url,
                              str(home), str(trials)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env) for _ in range(n)]


def _fresh_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if kind == "journal":
        return f"journal:///{tmp_path / 'study.log'}"
    import psycopg

    server = request.getfixturevalue("postgres_url")
    name = f"t{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return server.rsplit("/", 1)[0] + f"/{name}"


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_four_workers_started_together_on_a_fresh_storage(kind: str, tiny_dataset: Path,
                                                          tmp_path: Path,
                                                          request: pytest.FixtureRequest) -> None:
    url = _fresh_url(kind, tmp_path, request)
    procs = _start(4, tiny_dataset, url, tmp_path / "home")
    outs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
    from asc_auto.storage import open_storage

    study = optuna.load_study(study_name="kd", storage=open_storage(url))
    trials = study.get_trials()
    assert len(trials) == 12
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert sum(t.user_attrs.get("source") == "paper" for t in trials) == 1
    configs = {tuple(sorted(t.params.items())) for t in trials}
    assert len(configs) == 12  # distinct sampler streams
    teachers = list((tmp_path / "home" / "cache" / "teachers").iterdir())
    assert len([t for t in teachers if not t.name.startswith(".")]) == 1  # trained once


def test_a_killed_worker_loses_only_its_running_trial(tiny_dataset: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    home = tmp_path / "home"
    first = _start(1, tiny_dataset, url, home, trials=1)[0]  # builds caches, the paper trial
    assert first.wait(timeout=600) == 0, first.stderr.read() if first.stderr else ""
    victim, survivor = _start(2, tiny_dataset, url, home, trials=6)
    storage_study = None
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until the victim is inside a trial
        storage_study = optuna.load_study(study_name="kd", storage=url)
        running = [t for t in storage_study.get_trials(states=(TrialState.RUNNING,))
                   if t.user_attrs.get("worker", {}).get("pid") == victim.pid]
        if running:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the victim never started a trial")
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    _, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0 and "Traceback" not in err, err[-3000:]
    study = optuna.load_study(study_name="kd", storage=url)
    killed = study.trials[running[0].number]
    assert killed.state == TrialState.FAIL  # failed by the surviving worker, not left RUNNING
    assert not study.get_trials(states=(TrialState.RUNNING,))
    survivor_trials = [t for t in study.trials
                       if t.user_attrs.get("worker", {}).get("pid") == survivor.pid]
    assert len(survivor_trials) == 6  # the others go on


def test_a_worker_line_is_unprefixed_to_what_the_worker_said() -> None:
    assert worker_line(12, "trial 3 COMPLETE") == "[worker 12] trial 3 COMPLETE"
    assert unprefixed(worker_line(12, "trial 3 COMPLETE")) == "trial 3 COMPLETE"
    assert unprefixed("trial 3 [worker 1] x") == "trial 3 [worker 1] x"  # only a leading one
    assert unprefixed("[worker x] trial") == "[worker x] trial"


def test_search_jobs_runs_workers_and_finishes_once(tiny_dataset: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    run = subprocess.run([sys.executable, "-m", "asc_auto.cli", "search", "--technique", "kd",
                          "--data", str(tiny_dataset), "--space", str(SPACE), "--trials", "4",
                          "--epochs", "1", "--jobs", "2", "--home", str(home),
                          "--cv", "0", "--confirm-top", "2", "--confirm-seeds", "1"],
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 workers on study 'kd'" in run.stdout
    assert run.stdout.count("[worker 0] trial") + run.stdout.count("[worker 1] trial") == 4
    # what each worker said, without its prefix (how benchmarks/real_data.py reads the lines)
    said = [unprefixed(line) for line in run.stdout.splitlines() if line.startswith("[worker ")]
    assert sum(line.startswith("trial ") for line in said) == 4
    study = optuna.load_study(study_name="kd", storage=f"sqlite:///{home / 'asc.db'}")
    assert len(study.trials) == 4
    assert len({t.user_attrs["run"] for t in study.trials}) == 1  # one budget, drawn by both
    # each worker's line counts the run's trials, not its own share
    assert any(line.endswith("; 4 of 4 trials") for line in said), said
    assert len({t.user_attrs["worker"]["pid"] for t in study.trials}) == 2
    from asc_auto.procs import cpu_share  # each worker's share of the cores, recorded per trial
    assert {t.user_attrs["worker"]["threads"] for t in study.trials} == {cpu_share(2)}
    assert {t.user_attrs["worker"]["cpu"] for t in study.trials} == {
        torch.backends.cpu.get_cpu_capability()}
    # the confirmation, once, after the workers: its runs side by side in 2 processes; one
    # seed has no standard error, so the best two then get a second (up to twice the seeds),
    # side by side too
    record = study.user_attrs["confirmation"]["trials"]
    runs = len(record)  # top 2 (+ the paper's), 1 seed
    flat = " ".join(run.stdout.split())
    assert f"confirming {runs} runs in 2 processes" in flat, run.stdout
    assert "confirming 2 runs in 2 processes" in flat and "the best two are close" in flat
    fresh = sum(len(accs) - 1 for accs in record.values())
    assert run.stdout.count("confirmed trial") == fresh >= runs + 2
    # each side-by-side run's value with its standard error, as a sequential run's
    lines = re.findall(r"confirmed trial (\d+) with seed (\d+): (\d\.\d{4}) ± 0\.\d{3} \(run ",
                       flat)
    assert len(lines) == fresh, run.stdout
    for trial, seed, acc in lines:
        assert record[trial][int(seed)] == pytest.approx(float(acc), abs=1e-4)
    assert confirmed_best(study) is not None  # every run recorded: a verdict
    assert all(len(record[str(c.trial)]) == 3 for c in confirmations(study)[:2])

    # finishing with `--trials 0 --jobs 2` (a second fresh seed asked, no more): no trial
    # added, the missing runs side by side in 2 processes too, not one after another in the
    # command's process
    more = subprocess.run([sys.executable, "-m", "asc_auto.cli", "search", "--technique", "kd",
                           "--data", str(tiny_dataset), "--space", str(SPACE), "--trials", "0",
                           "--epochs", "1", "--jobs", "2", "--home", str(home), "--cv", "0",
                           "--confirm-top", "2", "--confirm-seeds", "2",
                           "--confirm-max-seeds", "2"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert more.returncode == 0, more.stderr[-3000:]
    study = optuna.load_study(study_name="kd", storage=f"sqlite:///{home / 'asc.db'}")
    assert len(study.trials) == 4
    if missing := 2 * runs - fresh:  # those outside the best two get their second seed
        assert f"confirming {missing} runs in 2 processes" in " ".join(more.stdout.split())
    assert "the best two are close" not in more.stdout
    assert all(len(accs) == 3 for accs in study.user_attrs["confirmation"]["trials"].values())


def test_workers_spread_over_all_gpus(monkeypatch) -> None:
    import torch

    from asc_auto.workers import worker_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [worker_device("cuda", i) for i in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert worker_device("auto", 3) == "cuda:1"
    assert worker_device("cuda:1", 0) == "cuda:1"  # one named GPU: all workers share it
    assert worker_device("cpu", 5) == "cpu"


# The dead worker's trial is made with study.ask (no worker process to kill here), which Optuna
# warns about on a storage with heartbeats; asc-auto's own trials run under Study.optimize.
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
def test_retry_failed_enqueues_a_dead_workers_trial_again(tmp_path: Path) -> None:
    """--retry-failed N: a trial failed because its worker died runs again (Optuna's
    RetryFailedTrialCallback), with the same parameters, up to N times."""
    from asc_auto.procs import this_worker
    from asc_auto.storage import WORKER_ATTR, fail_dead_trials, open_storage

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    worker = {**this_worker(), "pid": dead.pid, "start": None}
    url = f"sqlite:///{tmp_path / 'r.db'}"
    study = optuna.create_study(storage=open_storage(url, create=True, retry_failed=1),
                                study_name="kd")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr(WORKER_ATTR, worker)
    assert fail_dead_trials(study) == [trial.number]
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    assert study.trials[1].params == study.trials[0].params

    plain = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 'p.db'}",
                                                     create=True), study_name="kd")
    other = plain.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    other.set_user_attr(WORKER_ATTR, worker)
    assert fail_dead_trials(plain) == [other.number]
    assert [t.state for t in plain.get_trials()] == [TrialState.FAIL]  # no retry unless asked


def test_two_workers_popping_one_waiting_trial_on_sqlite_get_it_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CI failure of stop 31: two workers both took the paper trial (WAITING -> RUNNING) and
    the second failed on `tell` ("Cannot tell a COMPLETE trial"). pysqlite runs a SELECT outside
    any transaction, so Optuna's read-check-write ran unlocked; the read is slowed here so the
    two always overlap, as they did by chance on a busy CI machine."""
    import threading

    from optuna.storages._rdb import models

    from asc_auto.storage import open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="kd", storage=open_storage(url, create=True))
    study.enqueue_trial({"x": 1.0})
    trial_id = study.get_trials()[0]._trial_id
    workers = [open_storage(url), open_storage(url)]  # two processes' engines
    find = models.TrialModel.find_or_raise_by_id

    def slow_find(trial_id: int, session: object, for_update: bool = False) -> object:
        found = find(trial_id, session, for_update=for_update)  # type: ignore[arg-type]
        time.sleep(0.5)  # both read WAITING before either writes RUNNING
        return found

    monkeypatch.setattr(models.TrialModel, "find_or_raise_by_id", staticmethod(slow_find))
    start = threading.Barrier(2)
    popped: list[bool] = []

    def pop(storage: optuna.storages.BaseStorage) -> None:
        start.wait()
        popped.append(storage.set_trial_state_values(trial_id, TrialState.RUNNING))

    threads = [threading.Thread(target=pop, args=(s,)) for s in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(popped) == [False, True]
    assert workers[0].get_trial(trial_id).state == TrialState.RUNNING


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_in_memory_sqlite_storage_is_left_as_optuna_makes_it() -> None:
    """One process, nothing to serialise; and re-pooling its connection would drop the DB.
    No heartbeat thread either: its own connection would see another, empty database."""
    from asc_auto.storage import open_storage

    study = optuna.create_study(storage=open_storage("sqlite:///:memory:", create=True))
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


def test_a_failing_parent_stops_its_workers(tiny_dataset: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent dying of something other than Ctrl-C (benchmarks/real_data.py killed closes its
    stdout; a storage error while it reads progress) stops the workers, each recording its running
    trial FAIL. Before, they went on orphaned, or held the parent at exit until every trial ran."""
    from asc_auto import workers
    from asc_auto.search import SearchOptions

    url = f"sqlite:///{tmp_path / 'study.db'}"

    def failing_watch(study: optuna.Study, procs: list, *args: object) -> None:
        deadline = time.time() + 300
        while not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            assert time.time() < deadline, "no worker started a trial"
            time.sleep(0.1)
        raise BrokenPipeError("stdout closed")

    monkeypatch.setattr(workers, "_watch", failing_watch)
    # 300 epochs: a trial lasts seconds, so the stop lands inside one (at 1 epoch a fast CPU ran
    # a trial in 0.1 s, and the stop could land between trials, where nothing is FAIL)
    opts = SearchOptions(technique="kd", data=tiny_dataset, space=SPACE, trials=40, epochs=300,
                         cv=0, confirm_seeds=0, storage=url, home=tmp_path / "home",
                         progress=False)
    started = time.time()
    with pytest.raises(BrokenPipeError):
        workers.run_parallel(opts, jobs=2, status=lambda m: None)
    assert time.time() - started < 240  # not 40 trials' worth
    assert not multiprocessing.active_children()  # stopped and joined
    study = optuna.load_study(study_name="kd", storage=url)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert study.get_trials(states=(TrialState.FAIL,))  # the running trials, recorded FAIL
    assert len(study.trials) < 40
