"""`search --jobs N`: N worker processes on this machine sharing one study.

The parent sets the study up once (storage, features, teacher, paper trial) so that workers find
everything cached, then starts the workers (spawned processes: no forked CUDA or OpenMP state),
shows one progress bar read from the storage, and runs the technique's after-search step once at
the end. Workers draw their trials from one budget (shared_budget.py: a worker whose trials
stopped early takes more), and split the CPU cores, and on CUDA the GPUs (round robin: with
N > GPUs several workers share one, filling the gaps each leaves while its host side runs;
benchmarks/workers.py finds the N with most trials per hour); each prints one line per finished
trial. Ctrl-C, SIGTERM or the parent failing stops every worker (each records its running trial
FAIL), then the parent; a worker that dies outright loses only its running trial, which the next
run (or a live worker on this host) marks FAIL.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing.process import BaseProcess
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from asc_auto import stop
from asc_auto.confirm import Run, Scored, ScoreMany
from asc_auto.errors import AscError, CommandFailed
from asc_auto.procs import cpu_share, take_slot
from asc_auto.progress import progress_bar
from asc_auto.schema import TrialRecord
from asc_auto.search import (
    Objective,
    SearchOptions,
    finish_search,
    rescore,
    run_search,
    setup_study,
)
from asc_auto.shared_budget import run_trials
from asc_auto.train import worker_device

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def per_device(devices: list[str]) -> str:
    """'4 on cuda:0' / '2 on cuda:0, 2 on cuda:1': how the workers share the GPUs."""
    return ", ".join(f"{n} on {d}" for d, n in Counter(devices).items())


_PREFIX = re.compile(r"\[worker \d+\] ")  # what worker_line puts before a worker's message


def worker_line(index: int, message: str) -> str:
    """A `--jobs` worker's line: its message behind `[worker N] `, so interleaved lines of
    several workers say whose they are."""
    return f"[worker {index}] {message}"


def unprefixed(line: str) -> str:
    """What a worker said: `line` without worker_line's prefix (other lines unchanged)."""
    prefix = _PREFIX.match(line)
    return line[prefix.end():] if prefix else line


def _worker_main(opts: SearchOptions, index: int, threads: int) -> None:
    """Entry point of one worker process: its exit code says how it ended (0, 1, 2, 130)."""
    stop.sigterm_as_interrupt()  # stop like Ctrl-C: the running trial is FAIL
    if threads > 0:
        torch.set_num_threads(threads)

    def say(message: str) -> None:
        print(worker_line(index, message), flush=True)

    try:
        run_search(opts, status=say, finish=False)
    except AscError as err:
        say(f"error: {err}")
        raise SystemExit(err.exit_code) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def run_parallel(opts: SearchOptions, jobs: int, status: Callable[[str], None] = print
                 ) -> optuna.Study:
    """Run `jobs` workers of one study on this machine; return the study when all are done."""
    study, setup = setup_study(opts, status)
    cpu = resolve_cpu(opts.device)
    # Cores are split on a GPU too: each worker's host side (Python, kernel launches, INT8
    # calibration and scoring) needs its share, and N thread pools of all cores contend.
    threads = cpu_share(jobs)
    ctx = multiprocessing.get_context("spawn")
    procs: list[BaseProcess] = []
    devices: list[str] = []
    run = uuid.uuid4().hex[:12]  # the workers' one budget of opts.trials (shared_budget.py)
    n = jobs if opts.trials is None else min(jobs, opts.trials)
    for i in range(n):
        wopts = dataclasses.replace(opts, progress=False, run=run, workers=n,
                                    device=worker_device(opts.device, i))
        proc = ctx.Process(target=_worker_main, args=(wopts, i, threads), name=f"worker-{i}")
        proc.start()
        procs.append(proc)
        devices.append(wopts.device)
    status(f"{len(procs)} workers on study '{study.study_name}', {threads} CPU threads each"
           + ("" if cpu else ", " + per_device(devices)))
    try:
        _watch(study, procs, run, opts.trials, opts.progress)
    except BaseException:
        # Ctrl-C, SIGTERM, or this process failing (its stdout closed under it, a storage error):
        # the workers stop too. Left running, they would go on orphaned, or keep this process
        # waiting at exit (multiprocessing joins its children) until they finished every trial.
        stop_workers(procs)
        raise
    codes = [proc.exitcode for proc in procs]
    if codes and all(code == 130 for code in codes):
        raise KeyboardInterrupt
    bad = [(proc.name, code) for proc, code in zip(procs, codes, strict=True) if code != 0]
    finish_search(study, setup, status, score_many=confirm_pool(opts, jobs, status))
    if bad:
        raise CommandFailed(f"{len(bad)} of {len(procs)} workers failed ("
                            + ", ".join(f"{name}: exit code {code}" for name, code in bad)
                            + "); what they finished is recorded; fix: see their lines above")
    return study


def stop_workers(procs: list[BaseProcess]) -> None:
    """SIGTERM each live worker, which records its running trial FAIL and exits; wait for all."""
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.join()


def confirm_pool(opts: SearchOptions, jobs: int, status: Callable[[str], None] = print
                 ) -> ScoreMany:
    """Confirmation runs (confirm.confirm_top) side by side in up to `jobs` spawned processes,
    each set up once like a worker (its share of the cores, its GPU) and then handed runs: the
    top few configurations x seeds are as many trainings as a few trials, and one process would
    leave the other workers' cores or GPUs idle for all of them."""
    def many(runs: list[Run]) -> Iterator[Scored]:
        if not runs:
            return
        n = min(jobs, len(runs))
        threads = cpu_share(n)
        ctx = multiprocessing.get_context("spawn")
        slots = ctx.Value("i", 0)
        status(f"confirming {len(runs)} runs in {n} processes, {threads} CPU threads each")
        pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_confirm_init,
                                   initargs=(opts, threads, slots))
        try:
            futures = {pool.submit(_confirm_run, trial, seed): (trial, seed)
                       for trial, seed in runs}
            for future in as_completed(futures):
                trial, seed = futures[future]
                yield trial, seed, *future.result()
        finally:  # a failed run or Ctrl-C: the others are not started; finished ones are kept
            pool.shutdown(wait=True, cancel_futures=True)
    return many


_CONFIRMING: dict[str, Any] = {}  # in a confirmation process: its Objective, set up once


def _confirm_init(opts: SearchOptions, threads: int, slots: Any) -> None:
    """A confirmation process's start: its threads, its device (slot i: worker i's GPU)."""
    torch.set_num_threads(threads)
    index = take_slot(slots)
    wopts = dataclasses.replace(opts, trials=0, progress=False,
                                device=worker_device(opts.device, index))
    study, setup = setup_study(wopts, status=lambda message: None)  # all cached by the search
    _CONFIRMING["objective"] = Objective(setup)
    _CONFIRMING["study"] = study  # where each run records its folds (search.rescore)


def _confirm_run(trial: optuna.trial.FrozenTrial, seed: int) -> tuple[float, float]:
    """One confirmation run in this process: its value and that value's standard error."""
    score = rescore(_CONFIRMING["objective"], trial, seed, _CONFIRMING["study"])
    return score.mean, score.standard_error


def resolve_cpu(device: str) -> bool:
    """True when the workers train on the CPU (then they share its cores)."""
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def _watch(study: optuna.Study, procs: list[BaseProcess], run: str, trials: int | None,
           enabled: bool) -> None:
    """One bar for all workers, read from the storage every second until they exit."""
    bar = progress_bar(enabled, info=True, elapsed=True, transient=False)
    with bar:
        task = bar.add_task("trials", total=trials, info="")
        while any(proc.is_alive() for proc in procs):
            time.sleep(1.0)
            finished = study.get_trials(deepcopy=False, states=_FINISHED)
            feasible = [t for t in finished if t.state == TrialState.COMPLETE
                        and TrialRecord.from_trial(t).feasible and t.value is not None]
            info = ""
            if feasible:
                best = max(feasible, key=lambda t: float(t.value or 0.0))
                info = f"best #{best.number}: {best.value:.3f}"
            bar.update(task, completed=run_trials(finished, run)[0], info=info)
        for proc in procs:
            proc.join()
