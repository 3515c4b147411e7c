"""What a search will cost on this machine, said once the first trained trial's epochs are timed.

The training plan (search.training_plan) says how many epochs and folds a trial trains; only
the machine says how long that is. A default search on a 154-clip dataset trains 5 folds x 414
epochs per trial: on a 2-core laptop that is about half an hour a trial and a day for 50, which a
user should learn from one line a few seconds in, not from a bar that has not moved (and a log,
which has no bar, shows nothing until the first trial ends).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from asc_auto import epoch_state

#: Time at least this long before extrapolating: a first epoch of a fraction of a second is
#: mostly start-up (staging the data, the first allocations).
MIN_SECONDS = 5.0


def duration_text(seconds: float) -> str:
    """A duration the way a person says it: 40 s, 3.5 min, 2.1 h, 1.6 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def count_text(n: int, noun: str) -> str:
    """`1 epoch`, `27 epochs`: a count with its noun, for every line that says one."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass(frozen=True)
class SearchPlan:
    """The parts of a search (or of a retrain: `unit` "seed"; a KD teacher: "teacher") known
    before it starts."""

    epochs: int  # per training
    folds: int  # trainings per trial: the cross-validation folds, else 1
    trials: int | None  # --trials; None: --timeout alone
    timeout: float | None = None  # seconds after which no trial starts
    confirmations: int = 0  # at most: configurations confirmed x fresh seeds, each a trial's cost
    rung: int | None = None  # the epoch a pruner may first stop a trial at; None: never
    unit: str = "trial"  # what one run is called: "trial" (search), "seed" (retrain), "teacher"
    shorten: str = "--trials, --timeout or --epochs"  # the options that make it shorter
    workers: int = 1  # --jobs workers drawing the trials from one budget, side by side

    def line(self, number: int | None, epoch_seconds: float, trainings: int = 1,
             startup: float = 0.0, extra: int = 0) -> str:
        """One status line: the trial's cost from its measured epochs, then the search's.
        `number` None: the run has no number (the one teacher of a search); `trainings`: how
        many times the measured run trains `epochs` (a lottery ticket: once per round, then
        the ticket); `extra`: fine-tuning epochs after them (int8's QAT), counted at the
        measured pace; `startup`: seconds a training spends before its epochs run at their
        pace, once per fold."""
        epochs = self.epochs * trainings + extra
        trial = (epoch_seconds * epochs + startup) * self.folds
        folds = f" x {self.folds} folds" if self.folds > 1 else ""
        times = f"{trainings} trainings of " if trainings > 1 else ""
        tuned = f" + {count_text(extra, 'fine-tuning epoch')}" if extra else ""
        per = f"{epoch_seconds:.2f} s" if epoch_seconds < 10 else duration_text(epoch_seconds)
        who = f"the {self.unit}" if number is None else f"{self.unit} {number}"
        text = (f"cost here: {who} ran {per} per epoch, so a {self.unit} "
                f"({times}{count_text(self.epochs, 'epoch')}{tuned}{folds}) takes about "
                f"{duration_text(trial)}")
        if self.trials:
            total = trial * -(-self.trials // self.workers)  # workers train side by side
            by = f" over {self.workers} workers" if self.workers > 1 else ""
            capped = self.timeout is not None and self.timeout < total
            # Seeds and teachers train one configuration; trials train others, faster or
            # slower (kd's first layer spans 8 to 64 channels), so a trial count's cost is said at
            # this trial's pace, not as a bound.
            cost = (f"about {duration_text(total)} at this trial's pace" if self.unit == "trial"
                    else f"at most {duration_text(total)}")
            text += (f"; {count_text(self.trials, self.unit)}{by} {cost}"
                     if not capped else f"; --timeout stops starting trials after "
                     f"{duration_text(float(self.timeout))}")
        elif self.timeout is not None:
            text += (f"; --timeout {duration_text(self.timeout)} leaves room for about "
                     f"{count_text(max(1, round(self.timeout / trial)), self.unit)}")
        if self.rung is not None and self.rung < self.epochs:
            text += f" (less where the pruner stops a trial at epoch {self.rung})"
        if self.confirmations:
            text += (f", then confirming the pick: up to {self.confirmations} more runs of a "
                     f"trial's cost, about {duration_text(trial * self.confirmations)}")
        verb = "shorten" if " or " in self.shorten else "shortens"
        return f"{text}; {self.shorten} {verb} it"


class EpochClock:
    """Times the first trained run (trial, seed) of this process and says the plan's cost once.

    The rate is measured after the first epoch: that one holds the run's start-up (building,
    staging, the first allocations), counted once per fold instead. From the first epoch alone
    an lt trial on office16 (10 epochs, 3 folds; 4.3 s for its first epoch, 1.2-1.3 s for each
    after) was said to take 2.6 min and took 84 s; timed after it, 86 s were said of 89 s.

    A run may train more than once (`lt`: the dense network once per pruning round, then the
    ticket, each `plan.epochs` long) and report epochs only for its last training; its steps
    (`step`, counted over all its trainings) let the clock speak during the first one, and
    the cost counts every training. Without this an lt trial's first reported epoch came after
    a whole dense training: office16, 40 epochs, 3 folds, said "60 s per epoch ... a trial
    takes about 2.0 h" of a trial that took 330 s.

    Fine-tuning epochs after the trainings (int8's QAT of the NNCF-quantized network, on the
    CPU) are counted at the training's measured pace, which understates them: office16, the
    paper AclNet, 2-core EPYC, epochs timed interleaved in one process (3 repeats, 2026-12-03):
    a QAT epoch took 1.4-1.9x a FP32 epoch (1.3-1.45 s) on the idle machine, 1.2-2.4x beside
    another training process. Uncounted, a 3-QAT-epoch trial was said as its 40 training epochs,
    and its bar sat full through QAT.
    """

    def __init__(self, plan: SearchPlan, say: Callable[[str], None],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.plan, self.say, self.clock = plan, say, clock
        self.started: float | None = None
        self.number: int | None = 0
        self.trainings, self.extra = 1, 0
        self.first: tuple[float, int] | None = None  # (time, epochs) at the first epoch's end
        self.restored = 0  # epochs a resumed run took from a stopped one (epoch_state.py)
        self.said = False

    def start(self, number: int | None = None, trainings: int = 1, extra: int = 0) -> None:
        """Run `number`'s training begins (the clock runs for the first one only); it trains
        `trainings` times `plan.epochs`, then `extra` fine-tuning epochs."""
        if not self.said:
            self.started, self.number = self.clock(), number
            self.trainings, self.extra = max(1, trainings), max(0, extra)
            self.first, self.restored = None, 0

    def _boundary(self, epochs_done: int, last: bool) -> None:
        """`epochs_done` epochs of the run (all its trainings) have ended; `last`: its final."""
        if self.said or self.started is None or epochs_done < 1:
            return
        if epoch_state.replaying():  # restored from a stopped run, not trained: not timed
            self.restored = max(self.restored, epochs_done)
            return
        now = self.clock()
        if self.first is None:
            self.first = (now, epochs_done)
        at, before = self.first
        if epochs_done > before and now - at >= MIN_SECONDS:
            per_epoch = (now - at) / (epochs_done - before)
            startup = max(0.0, at - self.started - before * per_epoch)
        elif last:  # a short schedule: all of it (that trained here), said at its end
            per_epoch, startup = (now - self.started) / max(1, epochs_done - self.restored), 0.0
        else:
            return
        self.said = True
        self.say(self.plan.line(self.number, per_epoch, self.trainings, startup, self.extra))

    def step(self, done: int, total: int) -> None:
        """Step `done` of `total` of the started run's first fold (all its trainings on one
        scale); the step after an epoch's validation marks that epoch's end."""
        if self.said or self.started is None:
            return
        per_epoch = max(1, total // (self.plan.epochs * self.trainings + self.extra))
        self._boundary((done - 1) // per_epoch, last=False)

    def epoch(self, epoch: int) -> None:
        """Epoch `epoch` (0-based, over all the run's trainings on one scale, as
        `Technique.fit` reports them) ended on its first fold."""
        self._boundary(epoch + 1, last=epoch + 1 >= self.trainings * self.plan.epochs)
