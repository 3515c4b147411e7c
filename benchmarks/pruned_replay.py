"""What did the pruner cost? Train the trials a search stopped early to the end, and compare.

Prints numbers, asserts nothing. For a finished (or stopped) study, takes the pruned trials
that were trained (not the ones over the size limit), highest last accuracy first, and trains
their configurations for the whole schedule in a new study `<study>-replay` in the same
storage, with `--pruner none` and otherwise the study's own settings (data, space, epochs,
teacher, split). The study itself is not touched; the paper trial is copied, not retrained.

    .venv/bin/python benchmarks/pruned_replay.py --home /tmp/e2e/homeE \
        --study bench-fsdd-kd-19f49b0d --top 6 --jobs 2

A replayed trial starts from other initial weights than the one that was stopped (its trial
number differs and seeds it), so the table measures the configuration, seed noise included,
not the stopped run continued: the same noise the rung decided on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table

from asc_auto.console import run_script
from asc_auto.records import counts_toward_budget
from asc_auto.schema import StudyRecord, TrialRecord
from asc_auto.search import SearchOptions, run_search
from asc_auto.storage import default_storage


def _stopped(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Pruned trials that trained (have an accuracy), best last accuracy first."""
    pruned = [t for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
              if t.intermediate_values and counts_toward_budget(t)]
    return sorted(pruned, key=lambda t: -t.intermediate_values[max(t.intermediate_values)])


def _replay_study(study: optuna.Study, storage: str, name: str,
                  chosen: list[optuna.trial.FrozenTrial]) -> None:
    """`<study>-replay`: the paper trial copied once, each chosen configuration queued once (a
    rerun with a larger --top queues only the new ones; queued ones left by a stopped run wait)."""
    replay = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                 load_if_exists=True)
    have = replay.get_trials(deepcopy=False)
    if not have:
        for t in study.get_trials(deepcopy=False):
            if TrialRecord.from_trial(t).is_paper and t.state == TrialState.COMPLETE:
                replay.add_trial(t)
                break
    queued = {t.user_attrs.get("replay_of") for t in have}
    for t in chosen:
        if t.number not in queued:
            replay.enqueue_trial(t.params, user_attrs={"replay_of": t.number})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--top", type=int, default=6, help="replay this many stopped trials")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--print-only", action="store_true",
                        help="print what has been replayed so far, train nothing")
    args = parser.parse_args()
    storage = default_storage(args.home)
    study = optuna.load_study(study_name=args.study, storage=storage)
    record = StudyRecord.from_study(study)
    chosen = _stopped(study)[:args.top]
    name = f"{study.study_name}-replay"
    if args.print_only:  # writes nothing
        if name not in {s.study_name for s in optuna.get_all_study_summaries(storage)}:
            raise SystemExit(f"nothing replayed yet: no study {name!r} in {storage}")
    else:
        _replay_study(study, storage, name, chosen)
    waiting = len(optuna.load_study(study_name=name, storage=storage).get_trials(
        deepcopy=False, states=(TrialState.WAITING,)))
    opts = SearchOptions(
        technique=str(record.technique), data=Path(str(record.data)), trials=waiting,
        rule=str(record.rule), budget_kb=record.budget_kb, max_mmacs=record.max_mmacs,
        study=name, space=Path(str(record.space_file)), seed=int(record.split_seed or 0),
        epochs=record.epochs, home=args.home, overrides=dict(record.overrides or {}),
        cv=record.cv_folds or 0, val_fraction=float(record.val_fraction or 0.2),
        confirm_seeds=0, initial_design="none", pruner="none", progress=False)
    if waiting and not args.print_only:
        if args.jobs > 1:
            from asc_auto.workers import run_parallel

            run_parallel(opts, args.jobs)
        else:
            run_search(opts)
    replay = optuna.load_study(study_name=name, storage=storage)
    done = {t.user_attrs.get("replay_of"): t for t in replay.get_trials(deepcopy=False)}
    best = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    table = Table(title=f"{args.study}: stopped trials trained to the end ({record.epochs} "
                        f"epochs, pruner none; validation accuracy)")
    for col in ("trial", "params", "stopped at", "its accuracy there", "replayed: same epoch",
                "replayed: final"):
        table.add_column(col)
    for t in chosen:
        step = max(t.intermediate_values)
        r = done.get(t.number)
        same = r.intermediate_values.get(step) if r is not None else None
        table.add_row(str(t.number), _brief(t.params), f"epoch {step}",
                      f"{t.intermediate_values[step]:.3f}",
                      "-" if same is None else f"{same:.3f}",
                      "-" if r is None or r.value is None else f"{r.value:.3f}")
    console = Console(width=200)
    console.print(table)
    ranked = sorted(best, key=lambda t: -(t.value or 0))
    console.print("completed in the study: " + ", ".join(
        f"#{t.number} {t.value:.3f}" for t in ranked if t.value is not None))


def _brief(params: dict[str, object]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in sorted(params.items()))


if __name__ == "__main__":
    run_script(main)
