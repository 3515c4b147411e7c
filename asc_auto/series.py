"""Progress of a series of trainings of one configuration: retrain's seeds, teacher-logits' fold
models. One bar counts the runs, another the running one's training steps, each with its time
remaining, and the first run's timed epoch says once what the series will cost (cost.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.progress import Progress, TaskID

from asc_auto.cost import EpochClock, SearchPlan
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
                 epochs: int, scored: str) -> None:
        self.bar, self.cost, self.runs, self.steps = bar, cost, runs, steps
        self.epochs, self.scored = epochs, scored

    def start(self, label: str, number: int, technique: Technique, config: dict[str, Any]
              ) -> RunHooks:
        """Run `number` (`label` on its bar) begins training: its hooks."""
        self.bar.update(self.steps, description=label, completed=0, total=None, visible=True,
                        info="")
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
        """A run is done (trained now or found on disk)."""
        self.bar.update(self.steps, visible=False)
        self.bar.update(self.runs, advance=1, info=info)


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
        yield Series(bar, cost, runs, steps, epochs, scored)
