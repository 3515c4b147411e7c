"""What would Hyperband's rung have stopped on a finished study, and did it stop good trials?

Prints numbers, asserts nothing, trains nothing. For a study whose trials all trained to the
end (searched with `--pruner none`), replays its complete trials in the order they started
through two pruners, as the search asks them after every epoch: plain Hyperband (what the
search ran before 2026-12-02) and the search's pruner today (`pruning.make_pruner`:
Hyperband whose stop stands only where the trial is clearly behind). Each replayed trial
reports the per-epoch validation accuracies it recorded (fold 0's under cross-validation) and,
when not stopped, finishes with its recorded value. A stopped trial's final value is what it
would have given up: a stopped trial among the study's best few is a pick lost to noise.

    .venv/bin/python benchmarks/rung_replay.py --home /tmp/e2e/homeR --study r16n --top 3

The replay is exact for one worker with the same trials; a search with another pruner would
have sampled other trials after the first stop (TPE learns from what finished), which no
replay can show. Epochs saved count every fold's epochs (a trial stopped at the rung of fold 0
skips the rest of fold 0 and every later fold).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.table import Table
from scipy.stats import spearmanr

from asc_auto import pruning
from asc_auto.console import run_script
from asc_auto.data.splits import grouped_folds
from asc_auto.data.tau import load_dataset
from asc_auto.schema import StudyRecord, TrialRecord
from asc_auto.storage import default_storage


def rung_clips(study: optuna.Study) -> int:
    """Validation clips behind each epoch's accuracy: fold 0's under cross-validation, made
    again from the study's recorded folder, fold count and split seed; else the recorded
    validation split's size."""
    record = StudyRecord.from_study(study)
    k = int(record.cv_folds or 0)
    if k >= 2 and record.data:
        clips = load_dataset(Path(record.data)).train
        return len(grouped_folds(clips, k, int(record.split_seed or 0))[0][1])
    raise SystemExit(f"study {study.study_name!r} is not cross-validated: pass --n-val")


def trained(study: optuna.Study, epochs: int) -> list[FrozenTrial]:
    """The complete trials with an accuracy at every epoch of their first training (of
    `epochs`; an lt trial reports its later trainings after them), in the order they started."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.datetime_start is not None
            and all(e in t.intermediate_values for e in range(1, epochs + 1))]
    return sorted(done, key=lambda t: t.datetime_start)  # type: ignore[arg-type, return-value]


def replay(trials: list[FrozenTrial], pruner: optuna.pruners.BasePruner,
           name: str, epochs: int) -> dict[int, tuple[int, str] | None]:
    """Trial number -> the epoch the pruner would have stopped it at and why (None: trained
    out). As in the search, it is asked at the first training's `epochs` only."""
    study = optuna.create_study(study_name=name, direction="maximize", pruner=pruner)
    stopped: dict[int, tuple[int, str] | None] = {}
    for t in trials:
        trial = study.ask()
        stopped[t.number] = None
        for epoch, value in sorted(t.intermediate_values.items()):
            trial.report(value, epoch)
            if (epoch <= epochs and not TrialRecord.from_trial(t).is_paper
                    and trial.should_prune()):
                why = (pruner.reason(trial.number, epoch, value)
                       if isinstance(pruner, pruning.NoiseTolerant) else "")
                stopped[t.number] = (epoch, why)
                break
        if stopped[t.number] is None:
            study.tell(trial, float(t.value))  # type: ignore[arg-type]
        else:
            study.tell(trial, state=TrialState.PRUNED)
    return stopped


def _at(stop: tuple[int, str] | None) -> str:
    return f"stop {stop[0]}" if stop else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--top", type=int, default=3, help="the study's best few (the pick's)")
    parser.add_argument("--n-val", type=int, default=None,
                        help="validation clips per epoch accuracy (read from a CV study)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=args.study, storage=default_storage(args.home))
    record = StudyRecord.from_study(study)
    epochs = int(record.epochs or 0)  # of one training
    trials = trained(study, epochs)
    n_val = args.n_val or rung_clips(study)
    folds = int(record.cv_folds or 0) or 1
    rung = pruning.first_rung("hyperband", epochs)
    plain = replay(trials, optuna.pruners.HyperbandPruner(
        min_resource=rung, max_resource=epochs, reduction_factor=pruning.REDUCTION),
        args.study, epochs)
    today = replay(trials, pruning.make_pruner("hyperband", epochs, n_val), args.study, epochs)
    best = {t.number for t in sorted(trials, key=lambda t: -float(t.value))[:args.top]}
    bar = sorted((float(t.value) for t in trials), reverse=True)[args.top - 1]

    table = Table(title=f"{args.study}: Hyperband's rung at epoch {rung} of {epochs} "
                        f"({n_val} clips), {len(trials)} trials trained to the end")
    for col in ("trial", f"acc at {rung}", "final value", f"top {args.top}",
                "Hyperband", "today"):
        table.add_column(col, justify="right")
    for t in trials:
        table.add_row(str(t.number), f"{t.intermediate_values[rung]:.3f}", f"{t.value:.4f}",
                      "yes" if t.number in best else "",
                      _at(plain[t.number]), _at(today[t.number]))
    console = Console()
    console.print(table)
    rho = spearmanr([t.intermediate_values[rung] for t in trials],
                    [float(t.value) for t in trials]).statistic
    console.print(f"Spearman correlation of the accuracy at the rung with the final value: "
                  f"{rho:.2f} ({len(trials)} trials)")
    cost = {t.number: max(t.intermediate_values) * folds for t in trials}  # all trainings
    total = sum(cost.values())
    for name, stops in (("plain Hyperband", plain), ("today's pruner", today)):
        hit = [n for n, e in stops.items() if e]
        saved = sum(cost[n] - e[0] for n, e in stops.items() if e)
        lost = sorted(n for n in hit if n in best)
        console.print(f"{name}: stops {len(hit)} of {len(trials)} trials, saving {saved} of "
                      f"{total} epochs ({100 * saved / total:.0f} %); stops {len(lost)} of the "
                      f"top {args.top} (value >= {bar:.4f}){': trials ' if lost else ''}"
                      f"{', '.join(map(str, lost))}")
    for n, stop in today.items():
        if stop:
            console.print(f"  trial {n}: {stop[1]}")


if __name__ == "__main__":
    run_script(main)
