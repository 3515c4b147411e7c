"""What would stopping hopeless trials between folds have saved on a finished study?

Prints numbers, asserts nothing, trains nothing. For a cross-validated study whose trials ran
every fold (one searched before the stop existed, or with `--pruner none`), walks its complete
trials in the order they started and asks `pruning.hopeless` after each fold, as the search does
today, against the trials that had finished before it started (exact for one worker; for
several, a trial may have seen more finished ones, so the saving is a lower bound). A trial that
would have stopped never ranked among the best `--top`, so leaving it out changes no later
decision: the replay of the whole study is exact, and the top few (the confirmation's
candidates, the pick) are the same, which the last line checks.

    .venv/bin/python benchmarks/fold_stop_replay.py --home /tmp/e2e/homeR --study r16 --top 3

Cost is each trial's wall time (start to end), a fold's share of it 1/K (folds differ by a clip).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.table import Table

from asc_auto import pruning
from asc_auto.console import run_script
from asc_auto.data.splits import grouped_folds
from asc_auto.data.tau import load_dataset
from asc_auto.records import feasible_trials
from asc_auto.schema import StudyRecord, TrialRecord
from asc_auto.storage import default_storage


def _seconds(t: FrozenTrial) -> float:
    return t.duration.total_seconds() if t.duration else 0.0


def fold_sizes(study: optuna.Study) -> list[int]:
    """Validation clips per fold: the study's grouped folds of its dataset, made again from its
    recorded folder, fold count and split seed (as the search made them)."""
    record = StudyRecord.from_study(study)
    k = int(record.cv_folds or 0)
    if k < 2 or not record.data:
        raise SystemExit(f"study {study.study_name!r} is not cross-validated (cv_folds {k})")
    clips = load_dataset(Path(record.data)).train
    return [len(val) for _, val in grouped_folds(clips, k, int(record.split_seed or 0))]


def replay(study: optuna.Study, n_val: list[int], top: int) -> list[dict[str, object]]:
    """One row per complete trial: where the stop would have ended it and what that saved."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if TrialRecord.from_trial(t).cv_accuracies and t.datetime_start]
    rows = []
    for t in sorted(done, key=lambda t: t.datetime_start):
        record = TrialRecord.from_trial(t)
        before = [float(o.value) for o in done
                  if o.value is not None and o.datetime_complete is not None
                  and o.datetime_complete <= t.datetime_start
                  and TrialRecord.from_trial(o).feasible]
        accs = list(record.cv_accuracies or [])
        stop, why = None, None
        if not record.is_paper:
            for fold in range(1, len(accs)):
                why = pruning.hopeless(accs[:fold], n_val, before, top)
                if why is not None:
                    stop = fold
                    break
        k = len(accs)
        rows.append({"trial": t.number, "value": t.value, "paper": record.is_paper,
                     "folds": accs, "stop": stop, "why": why, "seconds": _seconds(t),
                     "saved": _seconds(t) * (k - stop) / k if stop else 0.0})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--top", type=int, default=3,
                        help="the confirmation's few (search --confirm-top; 1 without one)")
    args = parser.parse_args()
    study = optuna.load_study(study_name=args.study, storage=default_storage(args.home))
    n_val = fold_sizes(study)
    rows = replay(study, n_val, args.top)
    table = Table(title=f"{args.study}: stopping hopeless trials between folds (top {args.top})")
    for col in ("trial", "value", "fold accuracies", "stops after", "trial s", "saved s"):
        table.add_column(col, justify="left" if col == "fold accuracies" else "right")
    for r in rows:
        folds = ", ".join(f"{a:.3f}" for a in r["folds"])  # type: ignore[attr-defined]
        table.add_row(f"{r['trial']}{' paper' if r['paper'] else ''}", f"{r['value']:.4f}",
                      folds, f"fold {r['stop']}" if r["stop"] else "-",
                      f"{r['seconds']:.0f}", f"{r['saved']:.0f}")
    console = Console()
    console.print(table)
    everything = sum(_seconds(t) for t in study.get_trials(deepcopy=False)
                     if t.state in (TrialState.COMPLETE, TrialState.PRUNED))
    stopped = [r for r in rows if r["stop"]]
    saved = sum(float(r["saved"]) for r in rows)  # type: ignore[arg-type]
    folds_saved = sum(len(r["folds"]) - int(r["stop"]) for r in stopped)  # type: ignore[arg-type]
    folds_all = sum(len(r["folds"]) for r in rows)  # type: ignore[arg-type]
    console.print(f"{len(stopped)} of {len(rows)} complete trials would have stopped early, "
                  f"{folds_saved} of the {folds_all} fold trainings not run: {saved:.0f} s of "
                  f"the {everything:.0f} s its trained trials took "
                  f"({100 * saved / everything if everything else 0:.1f} %)")
    kept = {r["trial"] for r in rows if not r["stop"]}
    ranked = [t.number for t in feasible_trials(study)]
    same = ranked[:args.top] == [n for n in ranked if n in kept][:args.top]
    console.print(f"top {args.top} by value with and without them: "
                  f"{'the same' if same else 'DIFFERENT'} ({ranked[:args.top]})")


if __name__ == "__main__":
    run_script(main)
