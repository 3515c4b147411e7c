"""Reading results out of a study: best feasible trials, accuracy/size Pareto front, tables."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.table import Table

from asc_auto.against_baseline import Gap, Retrained, compare, gap_cell
from asc_auto.confirm import Confirmed, confirmations, reference_note, separation_note
from asc_auto.cost import duration_text
from asc_auto.fold_resume import interrupted
from asc_auto.records import feasible_trials, pick_trial
from asc_auto.schema import ENQUEUED, StudyRecord, TrialRecord, confirm_folds, source_text
from asc_auto.stats import EvaluateSE, evaluate_se, mean_se, trial_accuracy_text


def pareto_front(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Trials no other trial beats on both accuracy (higher) and size (smaller), by size."""
    front: list[FrozenTrial] = []
    for t in sorted(trials, key=lambda t: (TrialRecord.from_trial(t).size_kb, -t.value)):
        if not front or t.value > front[-1].value:
            front.append(t)
    return front


def state_counts(study: optuna.Study) -> dict[str, int]:
    """complete / pruned / infeasible / failed / running / waiting counts of a study.
    Infeasible: sized over a limit and never trained (PRUNED without a value; COMPLETE at 0.0
    in older studies). Waiting: enqueued (the paper's trial, design rows), not started yet: one
    worker's study shows "1 running, 1 waiting", not two running as if a second worker were."""
    counts = {"complete": 0, "pruned": 0, "infeasible": 0, "failed": 0, "running": 0,
              "waiting": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            counts["complete" if TrialRecord.from_trial(t).feasible else "infeasible"] += 1
        elif t.state == TrialState.PRUNED:
            counts["infeasible" if TrialRecord.from_trial(t).feasible is False else "pruned"] += 1
        elif t.state == TrialState.FAIL:
            counts["failed"] += 1
        elif t.state == TrialState.RUNNING:
            counts["running"] += 1
        elif t.state == TrialState.WAITING:
            counts["waiting"] += 1
    return counts


def _row(t: FrozenTrial, n_val: int | None = None) -> list[str]:
    r = TrialRecord.from_trial(t)
    return [
        f"{t.number}" + (f" {source_text(r)}" if r.source in ENQUEUED else ""),
        trial_accuracy_text(t, n_val),
        # "-": not recorded (a trial resumed from folds of a version that kept no FP32 score)
        "-" if r.accuracy_fp32 is None else f"{r.accuracy_fp32:.4f}",
        f"{r.size_kb or 0:.2f}",
        f"{r.params or 0:,}",
        str(r.precision or ""),
        f"{(r.macs or 0) / 1e6:.1f}",
    ]


def _fmt(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def se_basis(record: StudyRecord) -> str | None:
    """What a study's `val acc ± SE` is computed over, for a table's title: a cross-validated
    study's values are means over every clip of fold1_train, not the single split's few."""
    if record.cv_folds and int(record.cv_folds) >= 2:
        clips = (record.train_clips or 0) + (record.val_clips or 0)
        return (f"val acc: the mean over {int(record.cv_folds)}-fold cross-validation of "
                f"{clips} clips, ± its standard error")
    n_val = record.val_clip_count
    return f"val acc ± its standard error on {n_val} validation clips" if n_val else None


def _table(title: str, trials: Sequence[FrozenTrial], record: StudyRecord) -> Table:
    n_val = record.val_clip_count
    basis = se_basis(record)
    if basis:
        title += f"; {basis}"
    table = Table(title=title, title_justify="left")
    for col, just in (("trial", "left"), ("val acc", "right"), ("fp32 acc", "right"),
                      ("size KB", "right"), ("params", "right"), ("precision", "left"),
                      ("MMACs", "right")):
        table.add_column(col, justify=just)
    for t in trials:
        table.add_row(*_row(t, n_val))
    return table


def _n_val(study: optuna.Study) -> int | None:
    return StudyRecord.from_study(study).val_clip_count


def best_table(study: optuna.Study, n: int = 5) -> Table:
    """The n best feasible trials of a study, plus the paper's trial wherever it ranks."""
    record = StudyRecord.from_study(study)
    budget = "?" if record.budget_kb is None else record.budget_kb
    ranked = feasible_trials(study)
    rows = ranked[:n]
    rows += [t for t in ranked[n:] if TrialRecord.from_trial(t).is_paper]
    mmacs = record.max_mmacs
    macs = f", at most {mmacs:g} MMACs" if mmacs is not None else ""
    return _table(f"{study.study_name}: best feasible trials (budget {budget} KB{macs}, "
                  f"rule {record.rule or '?'})", rows, record)


def pareto_table(study: optuna.Study) -> Table:
    """The accuracy/size Pareto front of a study's feasible trials."""
    return _table(f"{study.study_name}: Pareto front (validation accuracy vs size)",
                  pareto_front(feasible_trials(study)), StudyRecord.from_study(study))


@dataclass(frozen=True)
class Running:
    """A trial in progress, as the storage has it: what it scored so far."""

    trial: FrozenTrial
    seconds: float | None  # since it started
    folds: int  # cross-validation folds of the study; 0: one split
    fold_accuracies: tuple[float, ...]  # its folds that have ended
    epochs: int  # epochs its first training has reported (fold 1's, where folds)
    last_accuracy: float | None  # the last of them


def running_trials(study: optuna.Study, now: datetime | None = None) -> list[Running]:
    """Trials running now (this worker's, another's, or one whose worker died unseen), with
    the fold accuracies and epochs they have recorded: a default-budget trial on a CPU runs for
    hours, and `show` from another shell is how its progress is read."""
    now = now or datetime.now()  # Optuna stores local, naive start times
    folds = int(StudyRecord.from_study(study).cv_folds or 0)
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        r = TrialRecord.from_trial(t)
        history = r.val_history or []
        out.append(Running(
            t, None if t.datetime_start is None else (now - t.datetime_start).total_seconds(),
            folds if folds >= 2 else 0, tuple(r.cv_accuracies or ()), len(history),
            history[-1] if history else None))
    return out


def running_table(study: optuna.Study, now: datetime | None = None) -> Table | None:
    """The running trials (None when there are none)."""
    running = running_trials(study, now)
    if not running:
        return None
    table = Table(title=f"{study.study_name}: running trials, what they have scored so far",
                  title_justify="left")
    for col, just in (("trial", "left"), ("size KB", "right"), ("running for", "right"),
                      ("folds done: val acc", "left"),
                      ("first training: epochs, last val acc (before compression)", "left")):
        table.add_column(col, justify=just)
    for run in running:
        r = TrialRecord.from_trial(run.trial)
        folds = (f"{len(run.fold_accuracies)}/{run.folds}"
                 + (": " + ", ".join(f"{a:.3f}" for a in run.fold_accuracies)
                    if run.fold_accuracies else "") if run.folds else "-")
        epochs = ("-" if run.last_accuracy is None
                  else f"{run.epochs}, {run.last_accuracy:.3f}")
        table.add_row(
            f"{run.trial.number}" + (f" {source_text(r)}" if r.source in ENQUEUED else "")
            + ("" if r.resumed_from is None else f" (resumes {r.resumed_from})"),
            "-" if r.size_kb is None else f"{r.size_kb:.2f}",
            "?" if run.seconds is None else duration_text(max(0.0, run.seconds)),
            folds, epochs)
    return table


def confirming_runs(study: optuna.Study) -> list[tuple[int, int, list[float]]]:
    """(trial, seed, fold accuracies) of the confirmation runs under way: started, not stored."""
    stored = (StudyRecord.from_study(study).confirmation or {}).get("trials", {})
    folds = int(StudyRecord.from_study(study).cv_folds or 0)
    return [(trial, seed, accs)
            for (trial, seed), accs in sorted(confirm_folds(study.user_attrs).items())
            if len(stored.get(str(trial), [])) <= seed and len(accs) < folds]


def confirming_line(study: optuna.Study) -> str | None:
    """The confirmation runs under way and the folds each has finished (None when none is):
    a cross-validated run of a default-budget configuration is an hour or more on a CPU."""
    folds = int(StudyRecord.from_study(study).cv_folds or 0)
    runs = [f"trial {trial} seed {seed}, folds {len(accs)}/{folds} done ("
            + ", ".join(f"{a:.3f}" for a in accs) + ")"
            for trial, seed, accs in confirming_runs(study)]
    return "confirmation runs under way: " + "; ".join(runs) if runs else None


def unfinished_line(study: optuna.Study) -> str | None:
    """A confirmation stopped while adding seeds to its close best two (confirm.undecided):
    what it still wants, and the command that finishes it (None when nothing is missing)."""
    record = StudyRecord.from_study(study).confirmation or {}
    if not record.get("trials") or "max_seeds" not in record or confirming_runs(study):
        return None  # none, one from before the extension, or one under way (confirming_line)
    note = separation_note(confirmations(study), int(record["max_seeds"]))
    return (None if note is None else f"confirmation unfinished: {note}; `asc-auto search "
            "--trials 0` with the same --confirm-* options runs them")


def reference_line(study: optuna.Study) -> str | None:
    """Why the confirmation left the paper configuration out, when it did (confirm.py)."""
    record = StudyRecord.from_study(study).confirmation or {}
    if not record.get("trials"):
        return None
    ranked = feasible_trials(study)
    paper = next((t for t in ranked if TrialRecord.from_trial(t).is_paper), None)
    if paper is None or str(paper.number) in record["trials"]:
        return None
    return reference_note(ranked, int(record.get("top") or 0), paper)


def _fresh_mean(c: Confirmed, run_folds: list[float] | None) -> str:
    """A confirmed mean ± its SE: over the fresh seeds, or with one seed over the folds of its
    cross-validated run (the speakers' or recordings' spread, not the seeds')."""
    if len(c.fresh) > 1:
        return f"{c.mean:.4f} ± {c.standard_error:.3f}"
    if run_folds and len(run_folds) > 1:
        return f"{c.mean:.4f} ± {mean_se(run_folds):.3f} over its {len(run_folds)} folds (1 seed)"
    return f"{c.mean:.4f} (1 seed: no SE)"


def confirmation_table(study: optuna.Study) -> Table | None:
    """The top configurations scored again with fresh seeds (None before a confirmation)."""
    confirmed = confirmations(study)
    if not confirmed:
        return None
    table = Table(title="confirmation: the top configurations and the paper's with fresh seeds "
                  "(ranked by their mean; the search value was selected for being high)",
                  title_justify="left")
    for col in ("trial", "fresh-seed mean ± SE", "fresh seeds", "search value", "size KB"):
        table.add_column(col, justify="right")
    papers = {t.number for t in study.get_trials(deepcopy=False)
              if TrialRecord.from_trial(t).is_paper}
    folds = confirm_folds(study.user_attrs)
    for i, c in enumerate(confirmed):
        table.add_row(f"{c.trial}" + (" paper" if c.trial in papers else "")
                      + (" pick" if i == 0 else ""), _fresh_mean(c, folds.get((c.trial, 1))),
                      ", ".join(f"{a:.4f}" for a in c.fresh), f"{c.search_value:.4f}",
                      f"{c.size_kb:.2f}")
    return table


@dataclass(frozen=True)
class ChoiceCount:
    """How a study tried one value of a categorical parameter: a value that no trial, or one
    trial, trained to the end has not been compared, whatever its best number says."""

    param: str
    choice: object
    tried: int  # trials that sampled it, finished or not
    finished: int  # trained to the end inside the limit
    stopped: int  # stopped early by Hyperband
    over_limit: int  # over the size limit: not trained
    best: FrozenTrial | None  # the best finished one


def choice_counts(study: optuna.Study) -> list[ChoiceCount]:
    """Every value of every categorical parameter of the study's trials (values no trial sampled
    too), with how many trials tried, finished, stopped or could not train it."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    spaces: dict[str, tuple[object, ...]] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                spaces.setdefault(name, tuple(dist.choices))
    feasible = {t.number for t in feasible_trials(study)}
    out = []
    for name, choices in spaces.items():
        for choice in choices:
            mine = [t for t in trials if name in t.params and t.params[name] == choice]
            done = [t for t in mine if t.number in feasible]
            over = [t for t in mine if TrialRecord.from_trial(t).feasible is False]
            best = max(done, key=lambda t: t.value or 0.0) if done else None
            out.append(ChoiceCount(name, choice, len(mine), len(done),
                                   len(mine) - len(done) - len(over), len(over), best))
    return out


def choices_table(study: optuna.Study) -> Table | None:
    """`choice_counts` as a table (None when the study has no categorical parameter)."""
    counts = choice_counts(study)
    if not counts:
        return None
    n_val = _n_val(study)
    table = Table(title=f"{study.study_name}: how often each choice was tried (one finished "
                  "trial is no comparison)", title_justify="left")
    for col in ("parameter", "choice", "trials", "finished", "stopped early", "over the limit",
                "best val acc"):
        table.add_column(col, justify="left" if col in ("parameter", "choice") else "right")
    for c in counts:
        best = "-" if c.best is None else f"{trial_accuracy_text(c.best, n_val)} (#{c.best.number})"
        table.add_row(c.param, _fmt(c.choice), str(c.tried), str(c.finished), str(c.stopped),
                      str(c.over_limit), best)
    return table


def untested_choices(study: optuna.Study) -> str | None:
    """One line naming the choices fewer than two trials finished, with the fix; None if none."""
    thin = [f"{c.param}={_fmt(c.choice)} ({c.finished})" for c in choice_counts(study)
            if c.finished < 2]
    if not thin:
        return None
    return (f"finished by fewer than 2 trials: {', '.join(thin)}; the search has barely "
            "compared these, so add trials (the same search command with --trials N adds N)")


def design_line(study: optuna.Study) -> str | None:
    """What the study's initial design (design.py) ran; None for a study without one."""
    made = StudyRecord.from_study(study).initial_design
    if not made or made.get("kind") == "none":
        return None
    kind = "every pair of categorical values" if made["kind"] == "pairs" else "every value"
    line = f"initial design: {made['rows']} trials after the paper trial, covering {kind}"
    if made.get("cut"):
        line += f" in part ({made['cut']} rows had no room in --trials)"
    left = made.get("left_out") or []
    if left:
        line += ("; left out (no draw fits the limit): "
                 + "; ".join(", ".join(f"{k}={_fmt(v)}" for k, v in row.items()) for row in left))
    return line


def config_table(trial: FrozenTrial, title: str) -> Table:
    """One trial's sampled configuration, a row per value (simplex weights already normalised);
    at least as wide as its title, which a two-column table would otherwise wrap."""
    table = Table(title=title, title_justify="left", min_width=len(title))
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for key, value in (TrialRecord.from_trial(trial).config or {}).items():
        table.add_row(key, _fmt(value))
    return table


def summary_line(study: optuna.Study) -> str:
    """One line of trial-state counts; failed trials that were interrupted (a killed worker,
    Ctrl-C: not their configuration, and resumed from their folds) are told apart."""
    c = state_counts(study)
    stopped = sum(interrupted(t) for t in study.get_trials(deepcopy=False,
                                                           states=(TrialState.FAIL,)))
    return ", ".join(f"{v} {k}" + (f" ({stopped} interrupted)" if k == "failed" and stopped
                                   else "")
                     for k, v in c.items() if v or k not in ("running", "waiting"))


@dataclass(frozen=True)
class PaperResult:
    """One of the seed paper's four DCASE2020 Task 1b submissions (its Table 2)."""

    technique: str
    model: str
    accuracy: float  # evaluate fold of TAU 2020 3Class
    params: int
    size_kb: float
    precision: str


PAPER_RESULTS: tuple[PaperResult, ...] = (
    PaperResult("int8", "AclNet0.5 INT8", 0.9094, 317_038, 309.60, "int8"),
    PaperResult("lt", "AclNet0.5 LT", 0.9147, 255_740, 499.49, "fp16"),
    # Table 2 prints 252,712; the paper's text and its student rebuilt here (models/cnn.py,
    # tests/test_models.py) have 252,713, and both give 493.58 KB at FP16.
    PaperResult("kd", "Student CNN", 0.9035, 252_713, 493.58, "fp16"),
    PaperResult("gcc", "GCC-grams CNN", 0.9123, 252_491, 493.15, "fp16"),
)


@dataclass(frozen=True)
class StudyRow:
    """One study summarised for the cross-study report."""

    study: str
    technique: str
    counts: dict[str, int]
    best: FrozenTrial | None
    retrain: dict | None  # recorded by retrain: {"trial": n, "mean": ..., "std": ..., ...}
    val_clips: int | None = None  # validation split size: the best value's standard error
    pick: int | None = None  # the trial retrain and export take (confirmed winner, or best)
    data_key: str | None = None  # the dataset's content hash: what studies are compared on
    data_name: str | None = None  # its folder's name, for people
    vs_baseline: Gap | None = None  # retrained mean - the baseline study's on the same data
    reference: bool = False  # this is the baseline study the others on its data are against
    sources: dict | None = None  # its starting points (transfer.Sources.attrs): teacher files


def study_rows(storage: optuna.storages.BaseStorage) -> list[StudyRow]:
    """Every study in a storage, summarised, each retrained one against the `baseline` study
    retrained on the same data (`against_baseline`)."""
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        ranked = feasible_trials(study)
        record = StudyRecord.from_study(study)
        pick = pick_trial(study).number if ranked else None
        rows.append(StudyRow(summary.study_name, str(record.technique or "?"),
                             state_counts(study), ranked[0] if ranked else None,
                             record.retrain_of(pick), record.val_clip_count, pick,
                             record.data_key,
                             Path(record.data).name if record.data else None,
                             sources=study.user_attrs.get("sources")))
    gaps, refs = compare([Retrained(r.study, r.technique, r.data_key, r.retrain) for r in rows])
    return [replace(r, vs_baseline=gaps.get(r.study), reference=r.study in refs) for r in rows]


def studies_table(rows: Sequence[StudyRow]) -> Table:
    """The cross-study table: trial states, best feasible trial, retrained accuracy."""
    table = Table(title="studies (trials: complete/pruned/infeasible/failed)",
                  title_justify="left")
    for col in ("study", "technique", "trials", "best", "val ± SE", "KB", "params", "prec",
                "retrained: evaluate ± SE", "vs baseline, pts"):
        table.add_column(col, justify="left" if col in ("study", "technique", "prec",
                                                        "retrained: evaluate ± SE")
                         else "right")
    for r in rows:
        c = study_cells(r)
        table.add_row(c["study"], c["technique"], "/".join(c[s] for s in STATES),
                      c["best_trial"], c["best"], c["size"], c["params"], c["precision"],
                      c["retrained"], c["vs_baseline"])
    return table


STATES = ("complete", "pruned", "infeasible", "failed")  # the studies table's trial counts


def study_cells(r: StudyRow, not_retrained: str = "-") -> dict[str, str]:
    """One study's cells, written once for the studies table and summary.md: its name and
    technique, trial counts per state, the best trial's number, value ± SE, size KB, params and
    precision, the retrained evaluate accuracy with the trial it retrained (which is not
    always the best: a confirmed pick, `--trial N`, or a pick that moved since), and its gap to
    the baseline CNN retrained on the same data ("reference" on the baseline study itself)."""
    b = r.best
    size, params, precision = _best_cells(b) if b else ("-", "-", "-")
    return {"study": r.study, "technique": r.technique,
            **{s: str(r.counts[s]) for s in STATES},
            "best_trial": "-" if b is None else f"#{b.number}" + (
                " paper" if TrialRecord.from_trial(b).is_paper else ""),
            "best": trial_accuracy_text(b, r.val_clips) if b else "-",
            "size": size, "params": params, "precision": precision,
            "retrained": retrained_text(r.retrain, r.pick) if r.retrain else not_retrained,
            "vs_baseline": gap_cell(r.vs_baseline, r.reference)}


def retrained_text(retrain: dict, pick: int | None) -> str:
    """'#2: 0.8100 ± 0.0497 (SE of seeds and 66 clips; std 0.0200, 3 seeds)': the mean's
    standard error from the seeds and from which clips the evaluate fold holds
    (`stats.evaluate_se`), then the seeds' spread; a retrain recorded before the fold's size was
    kept shows the seeds' part alone ('SE of seeds'). ', not the pick' when retrain and export
    would now take another trial (a later search or confirmation moved the pick)."""
    trial = retrain.get("trial")
    stale = ", not the pick" if trial is not None and pick is not None and trial != pick else ""
    seeds = _seed_count(retrain)
    n_clips = retrain.get("eval_clips")
    both = retrained_se(retrain)
    if not isinstance(seeds, int) or seeds < 2:
        if both.clips is None:
            return f"#{trial}: {retrain['mean']:.4f} ({seeds or '?'} seed{stale})"
        return (f"#{trial}: {retrain['mean']:.4f} ± {both.clips:.4f} "
                f"(1 seed; SE of {n_clips} clips{stale})")
    std = _seed_std(retrain)
    which = "seeds" if both.clips is None else f"seeds and {n_clips} clips"
    return (f"#{trial}: {retrain['mean']:.4f} ± {both.total:.4f} "
            f"(SE of {which}; std {std:.4f}, {seeds} seeds{stale})")


def _seed_count(retrain: dict) -> int | None:
    return len(retrain.get("per_seed") or []) or retrain.get("seeds")


def _seed_std(retrain: dict) -> float:
    """The seeds' sample std: from their own values where kept, else the recorded one."""
    accs = [float(x["accuracy"]) for x in retrain.get("per_seed") or []]
    return statistics.stdev(accs) if len(accs) > 1 else float(retrain.get("std") or 0.0)


def retrained_se(retrain: dict) -> EvaluateSE:
    """A recorded retrain's `EvaluateSE`: the seeds' part from their std (recorded std where
    the seeds' values are not kept; None with one seed) and the evaluate clips' part
    (`stats.evaluate_se`); what every retrained ± in tables and plots is."""
    per_seed = retrain.get("per_seed") or []
    accs = [float(x["accuracy"]) for x in per_seed]
    n_clips = retrain.get("eval_clips")
    se = evaluate_se(accs or [float(retrain["mean"])], n_clips,
                     [str(x.get("correct") or "") for x in per_seed])
    seeds = _seed_count(retrain)
    if not isinstance(seeds, int) or seeds < 2:
        return EvaluateSE(None, se.clips, n_clips)
    return EvaluateSE(_seed_std(retrain) / math.sqrt(seeds), se.clips, n_clips)


def _best_cells(t: FrozenTrial) -> tuple[str, str, str]:
    r = TrialRecord.from_trial(t)
    return f"{r.size_kb:.2f}", f"{r.params:,}", str(r.precision or "")


# The seed paper's table, written once for the CLI and summary.md: (column, alignment).
PAPER_COLUMNS = (("technique", "left"), ("model", "left"), ("accuracy", "right"),
                 ("params", "right"), ("size KB", "right"), ("precision", "left"))


def paper_rows() -> list[tuple[str, ...]]:
    """PAPER_RESULTS as the cells of PAPER_COLUMNS."""
    return [(p.technique, p.model, f"{p.accuracy:.4f}", f"{p.params:,}", f"{p.size_kb:.2f}",
             p.precision) for p in PAPER_RESULTS]


def paper_table() -> Table:
    """The seed paper's Table 2 (evaluate fold of the real TAU 2020 3Class data)."""
    table = Table(title="seed paper (DCASE2020 Task 1b, evaluate fold)", title_justify="left")
    for col, justify in PAPER_COLUMNS:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in paper_rows():
        table.add_row(*row)
    return table
