"""Real-data benchmark: for each dataset and technique, search -> retrain 3 seeds -> evaluate fold,
the paper configuration and the search's (confirmed) best beside the DCASE2020 Task 1b baseline.
Prints numbers, asserts nothing.

    .venv/bin/python benchmarks/real_data.py --data ../shared/datasets/office16 \
        --techniques baseline kd int8 lt --trials 12 --timeout 1800 --seeds 3

Every search runs with the shipped space (or --space-dir) and default settings, as a new user
would run it, with the stated trial/time budget. `retrain` then trains on the whole of
fold1_train and scores the evaluate fold: `--trial 0` is the paper configuration, no `--trial`
is the search's pick (confirmed over seeds when the search confirmed it). For `baseline`, the
paper configuration is the published baseline system, so its row is the reference line.
Results are written to `--out` (JSON) as they arrive, so a stopped run keeps what it measured;
run it again with the same `--home` and a stopped row resumes: its search adds only the trials
still missing (or just finishes its confirmation), retrain reuses the seeds already trained.
More `--seeds` later (6 after 3) use the same studies and train only the seeds they lack.
The table is printed and drawn (`--plot`, default: `--out` with .png): per dataset the paper
configuration and the pick of each technique, their seeds as dots, the `baseline` row as a line.
`--replot A.json B.json` trains nothing and shows the rows of earlier runs together (a later
file's row replaces an earlier one's of the same dataset and technique).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import optuna
from matplotlib.figure import Figure
from optuna.trial import TrialState
from rich.console import Console
from rich.table import Table

from asc_auto.against_baseline import (
    clip_part,
    difference,
    points_with_clips_text,
    seed_accuracies,
)
from asc_auto.console import run_script
from asc_auto.io import atomic_path
from asc_auto.plots import Panel, accuracy_bars_figure, save_png
from asc_auto.records import counts_toward_budget, pick_trial
from asc_auto.report import choice_counts
from asc_auto.schema import TrialRecord
from asc_auto.storage import default_storage, storage_file
from asc_auto.teacher_summary import teacher_se
from asc_auto.workers import unprefixed

#: Lines of the CLI's output passed through as they come (by how they start): what the run
#: will cost (the teacher's, a trial's, a seed's) and how far it is (each finished trial with
#: the time left, each confirmation run, each retrained seed), so a row that takes hours says
#: so, and where it stands, in the benchmark's own log.
SAID = ("cost here: ", "trial ", "confirming trial ", "confirmed: ", "confirmed trial ",
        "retraining trial ", "retrained trial ", "seed ", "the paper configuration (",
        "teacher-logits: ", "fold model ", "the best two ")


def said(line: str) -> bool:
    """Whether a line of the CLI's output is one of SAID (a `--jobs` worker's too)."""
    return unprefixed(line.strip()).startswith(SAID)


def stream(command: list[str], grace: float = 10.0) -> tuple[int, str]:
    """Run `command`, echo the lines `said` picks, return its exit code and last 40 lines. This
    script stopping (Ctrl-C, `kill`, an error) stops the command too, instead of leaving it to run
    on orphaned for hours: a Ctrl-C reached it as well, so it gets `grace` seconds to stop by
    itself (a second interrupt could cut its clean-up short), then SIGTERM, on which asc-auto
    records its running trials FAIL and exits."""
    env = {**os.environ, "COLUMNS": "1000"}  # a status line stays one line
    tail: deque[str] = deque(maxlen=40)  # what a failure shows
    with subprocess.Popen(command, text=True, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                tail.append(line)
                if said(line):
                    print(f"  {line.strip()}", flush=True)
        except BaseException:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait()
            raise
    return proc.returncode, "".join(tail)


def _cli(*args: str) -> None:
    code, tail = stream([sys.executable, "-m", "asc_auto.cli", *args])
    if code != 0:
        raise SystemExit(f"asc-auto {' '.join(args)} failed ({code}):\n{tail[-4000:]}")


def _retrain(study: str, home: Path, seeds: int, trial: int | None, jobs: int = 1
             ) -> dict[str, Any]:
    pick = ["--trial", str(trial)] if trial is not None else []
    _cli("retrain", "--study", study, "--seeds", str(seeds), "--home", str(home), *pick,
         "--jobs", str(jobs))
    loaded = optuna.load_study(study_name=study, storage=default_storage(home))
    return dict(loaded.user_attrs["retrain"])


def _trials_run(study: str, home: Path) -> int:
    """Trials that finished (complete or pruned, not over the limit: what --trials counts) in
    an earlier, stopped run of this row's study: the rerun adds only the rest (`--trials 0`
    finishes its confirmation), so a row never holds more trials than its budget says."""
    storage = default_storage(home)
    if not _exists(study, home):
        return 0
    ended = (TrialState.COMPLETE, TrialState.PRUNED)  # a failed one is run again
    return sum(map(counts_toward_budget, optuna.load_study(
        study_name=study, storage=storage).get_trials(deepcopy=False, states=ended)))


def _seed_accuracies(r: dict[str, Any]) -> list[float]:
    """A retrain's evaluate accuracies, percent, one per seed (its mean where none are kept)."""
    return [100 * a for a in seed_accuracies(r)]


def _mean_std(r: dict[str, Any]) -> str:
    accs = _seed_accuracies(r)
    if len(accs) < 2:
        return f"{accs[0]:.1f} (1 seed)"
    return f"{statistics.fmean(accs):.1f} ± {statistics.stdev(accs):.1f}"


def budget_of(args: argparse.Namespace) -> dict[str, Any]:
    """Everything a row depends on besides dataset and technique: a row (and its study) measured
    under another budget is never reused for this one."""
    return {"trials": args.trials, "timeout": args.timeout, "seeds": args.seeds,
            "space_dir": str(args.space_dir) if args.space_dir else None,
            "search_args": list(args.search_args),
            **({"distil_from": args.distil_from, "distil_folds": args.distil_folds}
               if getattr(args, "distil_from", None) else {})}


def retrain_jobs(args: argparse.Namespace) -> int:
    """Seeds retrained side by side: --retrain-jobs, else the search's --jobs N, else 1. Not in
    the budget: each process's thread count changes a seed's float sums, not what the row
    measures (each seed records its threads: docs/GUIDE.md "Same seed, other threads")."""
    if args.retrain_jobs is not None:
        return int(args.retrain_jobs)
    extra = list(args.search_args)
    for i, arg in enumerate(extra):
        if arg == "--jobs" and i + 1 < len(extra):
            return int(extra[i + 1])
        if arg.startswith("--jobs="):
            return int(arg.split("=", 1)[1])
    return 1


def _gap(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Difference of two retrains' seed means, points, ± the standard error of the difference
    (independent seeds): the targets of issue 10 read off these columns, which are about this
    evaluate fold. Where both retrains kept each seed's per-clip results, the SE that also
    counts which clips the fold holds follows in brackets (paired clip by clip): how far
    another draw of recordings could move the difference."""
    clips = clip_part(a, b)
    return points_with_clips_text(*difference(_seed_accuracies(a), _seed_accuracies(b)),
                                  None if clips is None else 100 * clips)


COLOURS = {"paper configuration": "0.65", "search pick": "tab:blue"}


def results_panels(rows: list[dict[str, Any]]) -> list[Panel]:
    """One panel per dataset: for each compressed technique the paper configuration and the
    search's pick, the `baseline` row as the reference: the issue-10 targets at a glance."""
    panels = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        mine = [r for r in rows if r["dataset"] == dataset]
        epochs = {r.get("epochs") for r in mine}
        reference = next((_seed_accuracies(r["paper"]) for r in mine
                          if r["technique"] == "baseline"), None)
        panels.append(Panel(
            title=f"{dataset}, {epochs.pop()} epochs" if len(epochs) == 1 and None not in epochs
            else dataset,
            groups=[(r["technique"], [("paper configuration", _seed_accuracies(r["paper"])),
                                      ("search pick", _seed_accuracies(r["best"]))])
                    for r in mine if r["technique"] != "baseline"],
            reference=reference))
    return panels


def results_figure(rows: list[dict[str, Any]]) -> Figure:
    """`results_panels` drawn: bar = seed mean, whisker = std, dots = the seeds."""
    return accuracy_bars_figure(results_panels(rows), COLOURS,
                                "evaluate fold: mean ± std over seeds, dots: seeds")


def search_budget(args: argparse.Namespace) -> dict[str, Any]:
    """What a row's search depends on: its budget without the seeds, which only retrain uses."""
    return {k: v for k, v in budget_of(args).items() if k != "seeds"}


def _tagged(data: Path, technique: str, budget: dict[str, Any]) -> str:
    tag = hashlib.sha256(json.dumps(budget, sort_keys=True).encode()).hexdigest()[:8]
    return f"bench-{data.name}-{technique}-{tag}"


# Studies made before 2026-12-05 hashed the retrain seeds into their name too; they are found
# under that name when they ran with at most this many seeds.
LEGACY_SEEDS = 32


def study_name(data: Path, technique: str, args: argparse.Namespace,
               home: Path | None = None) -> str:
    """A row's study: a new search budget is a new study, not more trials; more seeds (--seeds
    6 after 3) retrain the same study's trials, and retrain trains only the seeds it lacks. With
    `home`, a study of this search budget named the old way (seeds in the name) is that one."""
    name = _tagged(data, technique, search_budget(args))
    present = set() if home is None else _studies(home)
    if name in present:
        return name
    legacy = {_tagged(data, technique, {**budget_of(args), "seeds": n})
              for n in range(1, LEGACY_SEEDS + 1)}
    found = sorted(legacy & present)
    return found[0] if found else name


def _studies(home: Path) -> set[str]:
    """The study names in `home`'s default storage (none when it has no database yet)."""
    storage = default_storage(home)
    file = storage_file(storage)
    if file is None or not file.exists():
        return set()
    return {s.study_name for s in optuna.get_all_study_summaries(storage)}


def _exists(study: str, home: Path) -> bool:
    return study in _studies(home)


def distils(technique: str) -> bool:
    """Whether `technique` learns from stored teacher outputs alone (int8, lt): the rows
    `--distil-from` teaches. kd keeps its own VGG teacher."""
    from asc_auto.techniques.base import get_technique, learns_from_stored_outputs_alone

    get_technique(technique)  # an unknown name: one line listing the known ones
    return learns_from_stored_outputs_alone(technique)


def row_order(techniques: list[str], teacher: str | None) -> list[str]:
    """The rows in the order given, the teacher's row first when the others distil from it."""
    if teacher is None:
        return list(techniques)
    return [teacher, *(t for t in techniques if t != teacher)]


def oof_teacher(data: Path, args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """The --distil-from row's pick as a teacher (`asc-auto teacher-logits`: the all-clips
    model's outputs to learn from, out-of-fold ones to measure it): the file the distilling
    rows' searches are given, and its accuracy out of fold and on the evaluate fold."""
    from asc_auto.crossfit import teacher_logits

    study = study_name(data, args.distil_from, args, home)
    out = home / f"{study}-teacher.npz"
    r = teacher_logits(optuna.load_study(study_name=study, storage=default_storage(home)), out,
                       folds=args.distil_folds, home=home, progress=False,
                       status=lambda line: print(f"  {line}", flush=True) if said(line) else None,
                       jobs=retrain_jobs(args), storage=default_storage(home))
    print(f"  {args.distil_from} out of fold ({args.distil_folds} folds): "
          f"{100 * r.oof_accuracy:.1f} ± {100 * r.oof_se:.1f} % on fold1_train, "
          f"{_percent(r.eval_accuracy)} % evaluate (the all-clips model); {out}", flush=True)
    return {"technique": args.distil_from, "trial": r.trial, "folds": args.distil_folds,
            "file": str(out), "oof_accuracy": round(r.oof_accuracy, 4),
            "oof_se": round(r.oof_se, 4),
            "eval_accuracy": None if r.eval_accuracy is None else round(r.eval_accuracy, 4)}


def _seed_epochs(summary: dict[str, Any]) -> int | None:
    """The epochs a retrain summary's seeds trained (seed 0's result.json), None if unreadable."""
    try:
        return int(json.loads((Path(summary["folder"]) / "seed-0" / "result.json")
                              .read_text())["epochs"])
    except (KeyError, OSError, TypeError, ValueError):
        return None


def run_one(data: Path, technique: str, args: argparse.Namespace, home: Path,
            teacher: dict[str, Any] | None = None) -> dict[str, Any]:
    """Search, then retrain the paper configuration and the pick; the numbers and wall times.
    `teacher`: out-of-fold outputs the search distils from (`--teacher-logits`)."""
    study = study_name(data, technique, args, home)
    taught = ["--teacher-logits", teacher["file"]] if teacher else []
    space = ["--space", str(args.space_dir / f"{technique}.toml")] if args.space_dir else []
    before = _trials_run(study, home)
    left = args.trials - before  # a stopped row resumes, not adds a budget
    limits = ["--trials", str(max(0, left))] + (["--timeout", str(args.timeout)]
                                                if args.timeout else [])
    t0 = time.perf_counter()
    _cli("search", "--technique", technique, "--data", str(data), *space, *limits,
         "--study", study, "--home", str(home), *args.search_args, *taught)
    search_s = time.perf_counter() - t0
    loaded = optuna.load_study(study_name=study, storage=default_storage(home))
    attrs = loaded.user_attrs
    t1 = time.perf_counter()
    jobs = retrain_jobs(args)
    paper = _retrain(study, home, args.seeds, 0, jobs)
    best = _retrain(study, home, args.seeds, None, jobs)
    picked = pick_trial(loaded, best["trial"])  # the retrained trial, as retrain found it
    return {
        "dataset": data.name, "technique": technique, "budget": budget_of(args),
        "trials": len(loaded.trials),
        "over_limit": sum(not counts_toward_budget(t) for t in loaded.trials),
        "cv_folds": attrs.get("cv_folds", 0), "epochs": attrs.get("epochs"),
        # what each search training saw, and the epochs retrain trained to see as many (a
        # study made before clips_seen was recorded: None, and its retrain trained `epochs`)
        "clips_seen": attrs.get("clips_seen"), "retrain_epochs": _seed_epochs(best),
        **({"distilled_from": teacher} if teacher else {}),
        "teacher_val_accuracy": attrs.get("teacher_val_accuracy"),
        "teacher_val_se": teacher_se(attrs),
        # the teacher the pick's seeds distilled from, on the evaluate fold beside them
        "teacher_eval_accuracy": best.get("teacher_accuracy"),
        "paper": paper, "best": best,
        "best_config": dict(TrialRecord.from_trial(picked).config or {}),  # what the search chose
        # the confirmation's scores per trial (its search value, then each fresh seed) and the
        # seeds it asked for: how the pick was made, and how close it was
        "confirmation": attrs.get("confirmation"),
        # how often the search tried each categorical choice (a choice one trial finished has
        # not been compared: `asc-auto show` says the same)
        "choices": [{"param": c.param, "choice": c.choice, "trials": c.tried,
                     "finished": c.finished, "best_value": c.best.value if c.best else None}
                    for c in choice_counts(loaded)],
        "search_seconds": round(search_s, 1),
        "retrain_seconds": round(time.perf_counter() - t1, 1),
        # trials an earlier, stopped run of this row had finished: its wall time is not in the
        # seconds above, which are this run's only
        "resumed_after_trials": before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, nargs="+")
    parser.add_argument("--replot", type=Path, nargs="+", metavar="JSON",
                        help="train nothing: the table and figure of earlier --out files (a "
                             "later file's row replaces an earlier one's)")
    parser.add_argument("--techniques", nargs="+", default=["baseline", "kd", "int8", "lt"])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--timeout", type=float, default=None, help="seconds per search")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--retrain-jobs", type=int, default=None, metavar="N",
                        help="retrain N seeds side by side [default: the search's --jobs]")
    parser.add_argument("--space-dir", type=Path, default=None)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("real_data_results.json"))
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG of this budget's rows [default: --out with .png]")
    parser.add_argument("--distil-from", default=None, metavar="TECHNIQUE",
                        help="int8 and lt rows distil from this row's pick (`asc-auto "
                             "teacher-logits`: learnt from its all-clips model, measured out of "
                             "fold), e.g. baseline; its row runs first")
    parser.add_argument("--distil-folds", type=int, default=5, metavar="K",
                        help="folds measuring --distil-from's teacher [default: 5]")
    parser.add_argument("search_args", nargs="*", help="after --: more `search` options")
    args = parser.parse_args()
    if args.replot:
        report(replotted_rows(args.replot), "Evaluate-fold accuracy, mean ± std over seeds ("
               + ", ".join(str(f) for f in args.replot) + ")",
               args.plot or args.replot[-1].with_suffix(".png"))
        return
    if not args.data:
        parser.error("--data is required (or --replot)")
    home = args.home or Path(tempfile.mkdtemp(prefix="asc-bench-"))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    results: list[dict[str, Any]] = []
    if args.out.exists():
        results = json.loads(args.out.read_text())
    budget = budget_of(args)
    done = {(r["dataset"], r["technique"]) for r in results if r.get("budget") == budget}
    if args.distil_from and args.distil_from not in args.techniques:
        parser.error(f"--distil-from {args.distil_from}: add it to --techniques (its row is "
                     "the teacher)")
    for data in args.data:
        teacher = None
        for technique in row_order(args.techniques, args.distil_from):
            if (data.name, technique) in done:
                continue
            if args.distil_from and distils(technique) and teacher is None:
                teacher = oof_teacher(data, args, home)
            print(f"{data.name} / {technique}: search + retrain ...", flush=True)
            results.append(run_one(data, technique, args, home,
                                   teacher if distils(technique) else None))
            with atomic_path(args.out) as tmp:
                tmp.write_text(json.dumps(results, indent=1))
            r = results[-1]
            print(f"  paper {_mean_std(r['paper'])}  pick (trial {r['best']['trial']}) "
                  f"{_mean_std(r['best'])}  ({r['search_seconds']:.0f} s search, "
                  f"{r['retrain_seconds']:.0f} s retrain)\n  pick: {r['best_config']}", flush=True)
    rows = [r for r in results if r.get("budget") == budget]  # this budget's rows only
    report(rows, f"Evaluate-fold accuracy, mean ± std over {args.seeds} seeds "
                 f"({platform.machine()}, {os.cpu_count()} CPUs)",
           args.plot or args.out.with_suffix(".png"))


def replotted_rows(files: list[Path]) -> list[dict[str, Any]]:
    """The rows of earlier result files, one per dataset and technique: a later file's row
    replaces an earlier one's (e.g. a rerun of one technique beside the first run's others)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for file in files:
        try:
            for r in json.loads(file.read_text()):
                rows[(r["dataset"], r["technique"])] = r
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise SystemExit(f"{file}: not a real_data.py result file ({err}); "
                             "fix: pass the --out files of earlier runs") from err
    return list(rows.values())


def _percent(accuracy: float | None) -> str:
    return "-" if accuracy is None else f"{100 * accuracy:.1f}"


def results_table(rows: list[dict[str, Any]], title: str) -> Table:
    """The rows with the pick's gains over the paper configuration and the `baseline` row."""
    table = Table(title=title, title_justify="left")
    for col in ("dataset", "technique", "epochs", "trials", "CV folds", "paper config",
                "search pick", "pick - paper", "pick - baseline", "teacher val", "teacher eval",
                "wall s"):
        table.add_column(col, justify="right")
    baseline = {r["dataset"]: r["paper"] for r in rows if r["technique"] == "baseline"}
    for r in rows:
        teacher, teacher_err = r.get("teacher_val_accuracy"), r.get("teacher_val_se")
        ref = baseline.get(r["dataset"])
        table.add_row(r["dataset"], r["technique"], str(r.get("epochs") or "-"), str(r["trials"]),
                      str(r["cv_folds"] or "-"),
                      _mean_std(r["paper"]), f"{_mean_std(r['best'])} (#{r['best']['trial']})",
                      _gap(r["best"], r["paper"]) if r["best"]["trial"] != r["paper"]["trial"]
                      else "= paper",
                      _gap(r["best"], ref) if ref and r["technique"] != "baseline" else "-",
                      "-" if not teacher else f"{100 * teacher:.1f}" + (
                          f" ± {100 * teacher_err:.1f}" if teacher_err else ""),
                      _percent(r.get("teacher_eval_accuracy")),
                      wall_text(r))
    return table


def wall_text(row: dict[str, Any]) -> str:
    """This run's search + retrain seconds, said to be a part where an earlier run of the row
    did some of its trials."""
    wall = f"{row['search_seconds'] + row['retrain_seconds']:.0f}"
    before = row.get("resumed_after_trials")
    return f"{wall} (resumed after {before} trials)" if before else wall


def report(rows: list[dict[str, Any]], title: str, plot: Path) -> None:
    """Print the rows' table and write their figure."""
    Console(width=160).print(results_table(rows, title))
    if rows:
        print(f"plot: {save_png(results_figure(rows), plot)}")

if __name__ == "__main__":
    run_script(main)
