"""Reading results out of a study: best feasible trials, accuracy/size Pareto front, tables."""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.table import Table


def feasible_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials inside the size budget, best first (a tie goes to the smaller model)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ok = [t for t in done if t.user_attrs.get("feasible") and t.value is not None]
    return sorted(ok, key=lambda t: (-t.value, t.user_attrs.get("size_kb", 0.0), t.number))


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


def _row(t: FrozenTrial) -> list[str]:
    a = t.user_attrs
    return [
        f"{t.number}" + (" paper" if a.get("source") == "paper" else ""),
        f"{t.value:.4f}" if t.value is not None else "-",
        f"{a.get('accuracy_fp32', float('nan')):.4f}",
        f"{a.get('size_kb', 0):.2f}",
        f"{a.get('params', 0):,}",
        str(a.get("precision", "")),
        f"{a.get('macs', 0) / 1e6:.1f}",
    ]


def _fmt(v: object) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _table(title: str, trials: Sequence[FrozenTrial]) -> Table:
    table = Table(title=title, title_justify="left")
    for col, just in (("trial", "left"), ("val acc", "right"), ("fp32 acc", "right"),
                      ("size KB", "right"), ("params", "right"), ("precision", "left"),
                      ("MMACs", "right")):
        table.add_column(col, justify=just)
    for t in trials:
        table.add_row(*_row(t))
    return table


def best_table(study: optuna.Study, n: int = 5) -> Table:
    """The n best feasible trials of a study, plus the paper's trial wherever it ranks."""
    budget = study.user_attrs.get("budget_kb", "?")
    ranked = feasible_trials(study)
    rows = ranked[:n]
    rows += [t for t in ranked[n:] if t.user_attrs.get("source") == "paper"]
    return _table(f"{study.study_name}: best feasible trials (budget {budget} KB, "
                  f"rule {study.user_attrs.get('rule', '?')})", rows)


def pareto_table(study: optuna.Study) -> Table:
    """The accuracy/size Pareto front of a study's feasible trials."""
    return _table(f"{study.study_name}: Pareto front (validation accuracy vs size)",
                  pareto_front(feasible_trials(study)))


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
