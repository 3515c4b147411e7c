"""`search --jobs N --trials T`: one budget of T trials that the N workers draw from.

Split up front (T/N each), a worker whose trials Hyperband stopped early sat idle while another
still had most of its share to train (seen on office16, 2026-12-02: worker 0 finished its 12 at
14:47, worker 1 then had 8 of its 12 left, one core idle for over an hour). Here a worker starts
another trial while the run's trials, finished and running, are fewer than T, so every worker
keeps training until the budget is spent, and the run never holds more than T.

Exact across processes: a worker counts and starts its next trial under the storage's lock
(`storage.storage_lock`), held from the count until the new trial carries the run's id
(`TrialRecord.run`), so two workers finishing at once cannot both take the last trial. Only
this run's trials count: another machine's search on the same study keeps its own budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import optuna
from optuna.trial import FrozenTrial, TrialState

from asc_auto.records import counts_toward_budget
from asc_auto.schema import TrialRecord
from asc_auto.storage import storage_lock

_ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def run_trials(trials: list[FrozenTrial], run: str) -> tuple[int, int]:
    """(finished, running) trials of run `run` that count toward its budget: finished ones as
    `--trials` counts them (`counts_toward_budget`), running ones all (most will count; one that
    turns out over the limit frees its place when it ends)."""
    mine = [t for t in trials if TrialRecord.from_trial(t).run == run]
    finished = sum(counts_toward_budget(t) for t in mine if t.state in _ENDED)
    running = sum(t.state == TrialState.RUNNING for t in mine)
    return finished, running


class SharedBudget:
    """The gate before each trial of a `--jobs` worker: `claim` (count; hold the lock when a
    trial may start) and `started` (the trial is the run's: release)."""

    def __init__(self, url: str, run: str, trials: int) -> None:
        self.url, self.run, self.trials = url, run, trials
        self._held = contextlib.ExitStack()
        self.finished = 0  # the run's finished trials at the last claim (progress lines)

    def claim(self, study: optuna.Study) -> bool:
        """Whether another trial may start: on True the lock stays held until `started`
        (or `release`), so the trial Optuna asks for next is counted by every other worker."""
        self.release()
        self._held.enter_context(storage_lock(self.url))
        try:
            self.finished, running = run_trials(study.get_trials(deepcopy=False), self.run)
        except BaseException:
            self.release()
            raise
        if self.finished + running >= self.trials:
            self.release()
            return False
        return True

    def started(self, trial: optuna.Trial) -> None:
        """The first step of a trial: mark it the run's, then let the other workers count."""
        try:
            TrialRecord(run=self.run).write(trial)
        finally:
            self.release()

    def release(self) -> None:
        """Let go of the lock if held (a claim whose trial never started: timeout, Ctrl-C)."""
        self._held.close()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """study.optimize's callback (the last): stop the worker when the budget is spent."""
        if not self.claim(study):
            study.stop()

    @contextlib.contextmanager
    def first(self, study: optuna.Study) -> Iterator[bool]:
        """The claim for a worker's first trial; released whatever the worker then does."""
        try:
            yield self.claim(study)
        finally:
            self.release()
