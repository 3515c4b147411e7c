"""A series of trainings of one configuration: retrain's seeds, teacher-logits' fold models.
`series_progress`: one bar counts the runs, another the running one's training steps, each with
its time remaining, and the first run's timed epoch says once what the series will cost
(cost.py). `runs_in_processes`: the runs side by side in spawned processes (`--jobs N`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from rich.progress import Progress, TaskID

from asc_auto.cost import EpochClock, SearchPlan, duration_text
from asc_auto.procs import cpu_share
from asc_auto.progress import progress_bar
from asc_auto.techniques.base import Candidate, EpochHook, StepHook, Technique


@dataclass
class RunHooks:
    """What `run_seed` takes to report one run's progress."""

    on_epoch: EpochHook
    on_step: StepHook
    on_built: Callable[[Candidate], None]


class Series:
    """The bars and the cost clock of a series (`series_progress`)."""

    def __init__(self, bar: Progress, cost: EpochClock, runs: TaskID, steps: TaskID,
                 epochs: int, scored: str, log: Callable[[str], None] | None = None,
                 what: str = "runs", total: int = 0, todo: int = 0) -> None:
        self.bar, self.cost, self.runs, self.steps = bar, cost, runs, steps
        self.epochs, self.scored = epochs, scored
        # Without a bar (a log): a line per finished run, since a default-budget retrain seed
        # on a CPU is an hour (office16 kd: 325 epochs) and a log would say nothing meanwhile.
        self.log, self.what, self.total, self.todo = log, what, total, todo
        self.done = 0
        self.took: list[float] = []  # seconds of each run trained here
        self.t0: float | None = None  # when the running one started

    def start(self, label: str, number: int, technique: Technique, config: dict[str, Any]
              ) -> RunHooks:
        """Run `number` (`label` on its bar) begins training: its hooks."""
        self.bar.update(self.steps, description=label, completed=0, total=None, visible=True,
                        info="")
        self.t0 = time.perf_counter()
        all_epochs = [self.epochs]  # of the run's fit (lt: how often depends on the model)

        def on_built(cand: Candidate) -> None:
            trainings = technique.trainings(config, cand)
            all_epochs[0] = self.epochs * trainings
            self.cost.start(number, trainings, technique.fine_tune_epochs(config))

        def on_step(done: int, total: int) -> None:
            self.bar.update(self.steps, completed=done, total=total)
            self.cost.step(done, total)

        def on_epoch(epoch: int, acc: float) -> None:  # over all the fit's trainings
            self.cost.epoch(epoch)
            last = epoch + 1 == all_epochs[0]
            self.bar.update(self.steps, info=f"epoch {epoch + 1}/{all_epochs[0]} {self.scored} "
                            f"acc {acc:.3f}" + ("; deploying (quantizing, pruning as the "
                                                "trial did)" if last else ""))

        return RunHooks(on_epoch, on_step, on_built)

    def finished(self, info: str) -> None:
        """A run is done (trained now, after `start`, or found on disk). In a log: `seed 1:
        evaluate accuracy 0.8333 ± 0.046 (2.7 min); 2 of 3 seeds, about 2.7 min left at this
        pace` (the runs still to train at the mean time of those trained here)."""
        self.bar.update(self.steps, visible=False)
        self.bar.update(self.runs, advance=1, info=info)
        self.done += 1
        trained, self.t0 = self.t0, None
        if trained is not None:
            self.took.append(time.perf_counter() - trained)
        if self.log is None:
            return
        left = self.todo - len(self.took)
        eta = (f", about {duration_text(left * sum(self.took) / len(self.took))} left at this "
               "pace" if left > 0 and self.took else "")
        how = "on disk" if trained is None else duration_text(self.took[-1])
        self.log(f"{info} ({how}); {self.done} of {self.total} {self.what}{eta}")


@contextmanager
def series_progress(enabled: bool, what: str, total: int, todo: int, epochs: int, unit: str,
                    shorten: str, scored: str, status: Callable[[str], None]) -> Iterator[Series]:
    """Bars for `total` runs called `what` ("seeds"), `todo` of them to train for `epochs`
    each; `unit` names one in the cost line ("seed"), `scored` the clips its accuracy is on."""
    cost = EpochClock(SearchPlan(epochs=epochs, folds=1, trials=todo, unit=unit,
                                 shorten=shorten), status)
    with progress_bar(enabled, info=True, elapsed=True, remaining=True) as bar:
        runs = bar.add_task(what, total=total, info="")
        steps = bar.add_task("training", total=None, info="", visible=False)
        yield Series(bar, cost, runs, steps, epochs, scored, None if enabled else status,
                     what, total, todo)


class Timed(Protocol):
    """A run's result: how long it trained."""

    @property
    def seconds(self) -> float: ...


R = TypeVar("R", bound=Timed)


def runs_in_processes(job: object, items: list[int], jobs: int,
                      init: Callable[[Any, int, Any], None], run: Callable[[int], R],
                      intro: str, done_line: Callable[[int, R], str],
                      status: Callable[[str], None] = print) -> dict[int, R]:
    """`run(item)` for each of `items` (seeds, fold numbers) in up to `jobs` spawned processes
    (no forked CUDA or OpenMP state), each set up once by `init(job, threads, slots)` with its
    share of the cores (and, by its slot, its GPU); results by item. Each run saves its own
    work atomically, so Ctrl-C or a failed run keeps those already done; a line per finished
    run (`done_line(item, result)`) says how long the rest will take, after a first line
    (`intro`, e.g. "retraining trial 3 with seeds 0, 1") saying how they are split. A result
    has `seconds`."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    n = min(jobs, len(items))
    threads = cpu_share(n)
    status(f"{intro} in {n} processes, {threads} CPU thread{'s' if threads > 1 else ''} each")
    mp = multiprocessing.get_context("spawn")
    slots = mp.Value("i", 0)
    results: dict[int, R] = {}
    pool = ProcessPoolExecutor(max_workers=n, mp_context=mp, initializer=init,
                               initargs=(job, threads, slots))
    try:
        futures = {pool.submit(run, item): item for item in items}
        for done, future in enumerate(as_completed(futures), 1):
            item = futures[future]
            results[item] = result = future.result()
            left = len(items) - done
            waves = -(-left // n)  # the runs still going or to start, n at a time
            took = [r.seconds for r in results.values()]
            eta = (f"; about {duration_text(waves * sum(took) / len(took))} left" if left
                   else "")
            status(f"{done_line(item, result)} ({duration_text(result.seconds)} of training); "
                   f"{done} of {len(items)}{eta}")
    finally:  # Ctrl-C or a failed run: no new one starts; finished ones are on disk
        pool.shutdown(wait=True, cancel_futures=True)
    return results
