"""Reading results out of a study: best feasible trials, accuracy/size Pareto front, tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.table import Table

from asc_auto.records import feasible_trials


def pareto_front(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Trials no other trial beats on both accuracy (higher) and size (smaller), by size."""
    front: list[FrozenTrial] = []
    for t in sorted(trials, key=lambda t: (t.user_attrs["size_kb"], -t.value)):
        if not front or t.value > front[-1].value:
            front.append(t)
    return front


def state_counts(study: optuna.Study) -> dict[str, int]:
    """complete / pruned / infeasible / failed / running counts of a study."""
    counts = {"complete": 0, "pruned": 0, "infeasible": 0, "failed": 0, "running": 0}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            counts["complete" if t.user_attrs.get("feasible") else "infeasible"] += 1
        elif t.state == TrialState.PRUNED:
            counts["pruned"] += 1
        elif t.state == TrialState.FAIL:
            counts["failed"] += 1
        elif t.state in (TrialState.RUNNING, TrialState.WAITING):
            counts["running"] += 1
    return counts


def standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on `n` clips: on a 60-clip validation
    split one clip is 1.7 points and the SE of 60 % is 6.3 points, which a bare 0.6232 hides."""
    return math.sqrt(max(accuracy * (1.0 - accuracy), 0.0) / n) if n > 0 else float("nan")


def accuracy_text(accuracy: float | None, n: int | None) -> str:
    """0.6232 ± 0.058 when the number of clips is known, else the bare value."""
    if accuracy is None:
        return "-"
    if not n:
        return f"{accuracy:.4f}"
    return f"{accuracy:.4f} ± {standard_error(accuracy, n):.3f}"


def _row(t: FrozenTrial, n_val: int | None = None) -> list[str]:
    a = t.user_attrs
    return [
        f"{t.number}" + (" paper" if a.get("source") == "paper" else ""),
        accuracy_text(t.value, n_val),
        f"{a.get('accuracy_fp32', float('nan')):.4f}",
        f"{a.get('size_kb', 0):.2f}",
        f"{a.get('params', 0):,}",
        str(a.get("precision", "")),
        f"{a.get('macs', 0) / 1e6:.1f}",
    ]


def _fmt(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _table(title: str, trials: Sequence[FrozenTrial], n_val: int | None = None) -> Table:
    if n_val:
        title += f"; val acc ± its standard error on {n_val} validation clips"
    table = Table(title=title, title_justify="left")
    for col, just in (("trial", "left"), ("val acc", "right"), ("fp32 acc", "right"),
                      ("size KB", "right"), ("params", "right"), ("precision", "left"),
                      ("MMACs", "right")):
        table.add_column(col, justify=just)
    for t in trials:
        table.add_row(*_row(t, n_val))
    return table


def _n_val(study: optuna.Study) -> int | None:
    n = study.user_attrs.get("val_clips")
    return int(n) if n else None


def best_table(study: optuna.Study, n: int = 5) -> Table:
    """The n best feasible trials of a study, plus the paper's trial wherever it ranks."""
    budget = study.user_attrs.get("budget_kb", "?")
    ranked = feasible_trials(study)
    rows = ranked[:n]
    rows += [t for t in ranked[n:] if t.user_attrs.get("source") == "paper"]
    return _table(f"{study.study_name}: best feasible trials (budget {budget} KB, "
                  f"rule {study.user_attrs.get('rule', '?')})", rows, _n_val(study))


def pareto_table(study: optuna.Study) -> Table:
    """The accuracy/size Pareto front of a study's feasible trials."""
    return _table(f"{study.study_name}: Pareto front (validation accuracy vs size)",
                  pareto_front(feasible_trials(study)), _n_val(study))


def config_table(trial: FrozenTrial, title: str) -> Table:
    """One trial's sampled configuration, a row per value (simplex weights already normalised)."""
    table = Table(title=title, title_justify="left")
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for key, value in trial.user_attrs.get("config", {}).items():
        table.add_row(key, _fmt(value))
    return table


def summary_line(study: optuna.Study) -> str:
    """One line of trial-state counts."""
    c = state_counts(study)
    return ", ".join(f"{v} {k}" for k, v in c.items() if v or k != "running")


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
    PaperResult("kd", "Student CNN", 0.9035, 252_712, 493.58, "fp16"),
    PaperResult("gcc", "GCC-grams CNN", 0.9123, 252_491, 493.15, "fp16"),
)


@dataclass(frozen=True)
class StudyRow:
    """One study summarised for the cross-study report."""

    study: str
    technique: str
    counts: dict[str, int]
    best: FrozenTrial | None
    retrain: dict | None  # recorded by retrain: {"mean": ..., "std": ..., "seeds": n}
    val_clips: int | None = None  # validation split size: the best value's standard error


def study_rows(storage: optuna.storages.BaseStorage) -> list[StudyRow]:
    """Every study in a storage, summarised."""
    rows = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        ranked = feasible_trials(study)
        rows.append(StudyRow(summary.study_name, str(study.user_attrs.get("technique", "?")),
                             state_counts(study), ranked[0] if ranked else None,
                             study.user_attrs.get("retrain"), _n_val(study)))
    return rows


def studies_table(rows: Sequence[StudyRow]) -> Table:
    """The cross-study table: trial states, best feasible trial, retrained accuracy."""
    table = Table(title="studies (trials: complete/pruned/infeasible/failed)",
                  title_justify="left")
    for col in ("study", "technique", "trials", "best val ± SE", "KB", "params", "prec",
                "evaluate (retrained) ± std"):
        table.add_column(col, justify="left" if col in ("study", "technique", "prec")
                         else "right")
    for r in rows:
        b = r.best
        c = r.counts
        retrained = (f"{r.retrain['mean']:.4f} ± {r.retrain['std']:.4f}" if r.retrain else "-")
        table.add_row(
            r.study, r.technique,
            f"{c['complete']}/{c['pruned']}/{c['infeasible']}/{c['failed']}",
            accuracy_text(b.value, r.val_clips) if b else "-",
            f"{b.user_attrs['size_kb']:.2f}" if b else "-",
            f"{b.user_attrs['params']:,}" if b else "-",
            str(b.user_attrs.get("precision", "")) if b else "-", retrained)
    return table


def paper_table() -> Table:
    """The seed paper's Table 2 (evaluate fold of the real TAU 2020 3Class data)."""
    table = Table(title="seed paper (DCASE2020 Task 1b, evaluate fold)", title_justify="left")
    for col in ("technique", "model", "accuracy", "params", "size KB", "precision"):
        table.add_column(col, justify="right" if col in ("accuracy", "params", "size KB")
                         else "left")
    for p in PAPER_RESULTS:
        table.add_row(p.technique, p.model, f"{p.accuracy:.4f}", f"{p.params:,}",
                      f"{p.size_kb:.2f}", p.precision)
    return table
