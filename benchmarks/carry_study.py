"""Carry a live study storage to another machine: a consistent copy of its SQLite file, with the
trials still running failed in the copy as a killed worker's would be. Prints what it did.

    .venv/bin/python benchmarks/carry_study.py HOME/asc.db docs/results/in-progress/NAME.db

Why: a default-budget search on a 2-core CPU runs longer than one working session, and a
session's machine (its /tmp) is not the next one's. The copy goes where the next session finds
it; there, copied into a fresh `--home` as `asc.db`, the same `real_data.py` command resumes the
study: the failed trials carry no `fail_reason`, so a resumed search enqueues their points again
(the paper trial, portfolio entries, design rows: records.tried), and only the trials still
missing are run. A copy of a storage that a worker on another host still writes to would fork
the study; carry one whose workers are about to stop.
"""

from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import optuna
from optuna.trial import TrialState


def carry(source: Path, target: Path) -> dict[str, list[int]]:
    """Copy `source` to `target` (SQLite's online backup: safe while workers write), fail the
    copy's RUNNING trials; return the failed trial numbers per study."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    with sqlite3.connect(source) as src, sqlite3.connect(partial) as dst:
        src.backup(dst)
    storage = optuna.storages.RDBStorage(f"sqlite:///{partial}")
    failed: dict[str, list[int]] = {}
    for summary in optuna.get_all_study_summaries(storage):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
            failed.setdefault(summary.study_name, []).append(trial.number)
    storage.remove_session()
    storage.engine.dispose()
    with sqlite3.connect(partial) as db:
        db.execute("VACUUM")
    partial.replace(target)  # whole or not at all
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="the live storage file (HOME/asc.db)")
    parser.add_argument("target", type=Path, help="where the copy goes")
    args = parser.parse_args()
    if not args.source.is_file():
        raise SystemExit(f"{args.source}: no such storage file; fix: give HOME/asc.db")
    failed = carry(args.source, args.target)
    for name, numbers in failed.items():
        print(f"{name}: running trials {numbers} failed in the copy (enqueued again on resume)")
    print(f"copied to {args.target} ({args.target.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
