"""How a search counts, stops and reports its trials: the trial budget (what counts, when to
stop, the time left), a line per trial or fold for logs, and the progress bars."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from asc_auto.cost import duration_text
from asc_auto.cv import CvScore
from asc_auto.progress import progress_bar
from asc_auto.records import counts_toward_budget, feasible_trials
from asc_auto.schema import ENQUEUED, StudyRecord, TrialRecord, source_text
from asc_auto.shared_budget import SharedBudget, run_trials
from asc_auto.stats import accuracy_text, trial_accuracy_text

OVER_LIMIT_CAP = 20  # proposals over the limit per trial asked for before the search gives up


class TrialBudget:
    """study.optimize's stop: `trials` trials that count (`counts_toward_budget`), so a TPE
    proposal over the size limit does not take a trained trial's place (the demo's 8-trial
    search proposed 3 of them after its start-up trials). A space whose proposals keep missing
    the limit stops after OVER_LIMIT_CAP of them per trial asked for, with a line saying so."""

    def __init__(self, trials: int | None, status: Callable[[str], None],
                 timeout: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 shared: SharedBudget | None = None, workers: int = 1) -> None:
        self.trials, self.status, self.timeout, self.clock = trials, status, timeout, clock
        self.shared = shared  # a --jobs worker: the run's count, and the run's stop (its gate)
        self.workers = max(1, workers)  # training side by side, drawing from these trials
        self.counted = self.over = 0
        self.started = clock()
        # Seconds the folds resumed trials took over would have cost this run (fold_resume.py):
        # a trial resumed with 3 of 4 folds done ends in a quarter of a trial's time, and a pace
        # read from it said 13.9 min left where about an hour was (fsdd int8, 2026-12-04).
        self.reused_seconds = 0.0

    def progress_text(self) -> str:
        """Where a search without a progress bar stands (a log, another worker): `3 of 24
        trials, about 4.1 h left at this run's pace` (capped by --timeout); empty before the
        first counted trial or with --timeout alone. The pace is this run's wall time per
        counted trial, proposals over the limit and pruned trials included, so it is what the
        remaining trials will cost if they run like the first ones. Until as many trials have
        ended as there are workers, the others are still on their first: the time so far is
        one trial's, for each worker (fsdd int8, 2 workers, 6 trials: the first trial's line
        said 8.1 h left, where the two workers had about 4 h of trials left)."""
        if self.trials is None or self.counted == 0:
            return ""
        text = f"{self.counted} of {self.trials} trials"
        left = self.trials - self.counted
        if left <= 0:
            return text
        elapsed = self.clock() - self.started
        paced = elapsed + self.reused_seconds  # as if every counted trial trained every fold
        if self.counted >= self.workers:
            eta = paced / self.counted * left
        else:  # every worker is on its first trial, about `elapsed` long
            eta = paced * math.ceil(left / self.workers)
        if self.timeout is not None and self.timeout - elapsed < eta:
            if self.timeout <= elapsed:
                return f"{text}, --timeout has passed: no further trial starts"
            return f"{text}, --timeout stops it in about {duration_text(self.timeout - elapsed)}"
        return f"{text}, about {duration_text(eta)} left at this run's pace"

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if counts_toward_budget(trial):
            self.counted += 1
            record = TrialRecord.from_trial(trial)
            reused, folds = record.folds_reused or 0, len(record.cv_accuracies or ())
            if reused and folds > reused and trial.duration is not None:
                self.reused_seconds += trial.duration.total_seconds() * reused / (folds - reused)
        else:
            self.over += 1
        if self.trials is None:
            return  # --timeout alone
        if self.shared is not None:  # every worker's trials: the gate stops this one
            self.counted = run_trials(study.get_trials(deepcopy=False), self.shared.run)[0]
        elif self.counted >= self.trials:
            study.stop()
            return
        if self.over >= OVER_LIMIT_CAP * max(1, self.trials):
            self.status(f"stopped after {self.over} proposals over the limit and {self.counted} "
                        f"of {self.trials} trials: the space's ranges mostly exceed the budget; "
                        "fix: narrow them in the space file, or raise --budget-kb")
            study.stop()


def trial_line(status: Callable[[str], None], budget: TrialBudget
                ) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Without a progress display (a log, another worker): one line per finished trial, with
    how many of this run's trials are done and the time left (`budget`, called before it)."""

    def on_trial_end(study: optuna.Study, trial: FrozenTrial) -> None:
        n_val = StudyRecord.from_study(study).val_clip_count  # the value's SE, as the tables
        record = TrialRecord.from_trial(trial)
        stopped = record.stop_reason if trial.state == TrialState.PRUNED else None
        # A stopped trial's value is Optuna's last intermediate one (fold 0's last epoch after a
        # stop between folds): its reason says what it scored instead.
        said = trial.value is not None and not stopped
        value = f" val acc {trial_accuracy_text(trial, n_val)}" if said else ""
        size = record.size_kb
        size_text = f" at {size} KB" if size is not None else ""
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        reason = record.fail_reason
        why = f": {reason}" if reason and trial.state == TrialState.FAIL else ""
        if stopped:
            why = f": {stopped}"
        why = ": over the limit, not trained" if record.feasible is False else why
        tag = f" ({source_text(record)})" if record.source in ENQUEUED else ""
        done = budget.progress_text()
        status(f"trial {trial.number}{tag} {trial.state.name}{value}{size_text} "
               f"({seconds:.1f} s){why}" + (f"; {done}" if done else ""))

    return on_trial_end


def trial_label(trial: optuna.Trial | FrozenTrial) -> str:
    """`trial 3` or `trial 3 (design)`: a trial as its lines name it."""
    record = TrialRecord.from_trial(trial)
    tag = f" ({source_text(record)})" if record.source in ENQUEUED else ""
    return f"trial {trial.number}{tag}"


def fold_text(label: str, fold: int, folds: int, score: CvScore, elapsed: float,
              reused: int = 0, unit: str = "trial") -> str:
    """`trial N: fold k/K val acc a ± se, mean m ± se so far; T in, about T' left in this
    trial`: fold `fold` (from 0) of `folds` has ended `elapsed` seconds into the trial (or a
    confirmation run: `unit`), whose first `reused` folds an interrupted run finished
    (fold_resume.py); the rest at the pace of those trained here."""
    done = fold + 1
    left = elapsed / max(1, done - reused) * (folds - done)
    acc = accuracy_text(score.accuracies[-1], score.n_val[-1])
    mean = (f", mean {score.text} so far"
            if done > 1 else "")
    return (f"{label}: fold {done}/{folds} val acc {acc}{mean}; "
            f"{duration_text(elapsed)} in, about {duration_text(left)} left in this {unit}")


def run_end_text(label: str, score: CvScore, search_value: float | None,
                 elapsed: float) -> str:
    """`confirming trial 1 with seed 1: val acc 0.7532 ± 0.040 over 3 folds (its search
    value 0.7468; 25.1 min)`: a confirmation run's score with its uncertainty (the run's
    number alone would hide that one run on 66 clips moves by 5 points)."""
    folds = len(score.accuracies)
    over = f" over {folds} folds" if folds > 1 else ""
    value = "" if search_value is None else f"its search value {search_value:.4f}; "
    return (f"{label}: val acc {score.text}{over} "
            f"({value}{duration_text(elapsed)})")


class SearchProgress:
    """Two rich bars: trials of the search (or runs of its confirmation: `unit`), steps of the
    current trial's (run's) training."""

    def __init__(self, n_trials: int | None, enabled: bool = True, unit: str = "trials") -> None:
        self.bar = progress_bar(enabled, info=True, elapsed=True, remaining=True,
                                transient=False)  # remaining: of the search, of the trial
        # the confirmation's bar shows from its first run: none to run, no empty bar
        self.trials = self.bar.add_task(unit, total=n_trials, info="", visible=unit == "trials")
        self.steps = self.bar.add_task("training", total=None, info="", visible=False)
        self.best: str = ""
        self.over = 0  # proposals over the limit: shown, not advanced

    def __enter__(self) -> SearchProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def start_trial(self, number: int, record: TrialRecord, size_kb: float, fits: bool) -> None:
        tag = f" ({source_text(record)})" if record.source in ENQUEUED else ""
        fit = "" if fits else " over budget: not trained"
        self.bar.update(self.steps, description=f"trial {number}{tag}", completed=0, total=None,
                        visible=fits, info=f"{size_kb:.1f} KB{fit}")

    def start_run(self, label: str) -> None:
        """A confirmation run starts: its training's steps under its own label."""
        self.bar.update(self.trials, visible=True)
        self.bar.update(self.steps, description=label, completed=0, total=None, visible=True,
                        info="")

    def end_run(self, text: str) -> None:
        """A confirmation run ended: counted, its score shown beside the count."""
        self.bar.update(self.trials, advance=1, info=text)
        self.bar.update(self.steps, visible=False)

    def step(self, done: int, total: int) -> None:
        self.bar.update(self.steps, completed=done, total=total)

    def fold(self, fold: int, folds: int, mean: float) -> None:
        """A cross-validation fold finished: the trial's running mean over its folds."""
        self.bar.update(self.steps, info=f"fold {fold}/{folds} done, mean val acc {mean:.3f}")

    def epoch(self, epoch: int, epochs: int, acc: float) -> None:
        # After the last epoch the model is deployed (INT8 quantization, FP16, pruning), which
        # can take a while with no steps to count: say so instead of a frozen bar.
        last = "; deploying at its precision" if epoch == epochs else ""
        self.bar.update(self.steps, info=f"epoch {epoch}/{epochs} val acc {acc:.3f}{last}")

    def on_trial_end(self, study: optuna.Study, trial: FrozenTrial) -> None:
        ranked = feasible_trials(study)  # best first; a tie goes to the smaller model
        if ranked:
            best = ranked[0]
            size = TrialRecord.from_trial(best).size_kb
            self.best = f"best #{best.number}: {best.value:.3f} at {size} KB"
        counted = counts_toward_budget(trial)
        self.over += not counted
        over = f"; {self.over} over the limit, not counted" if self.over else ""
        self.bar.update(self.trials, advance=int(counted), info=self.best + over)
        self.bar.update(self.steps, visible=False)
