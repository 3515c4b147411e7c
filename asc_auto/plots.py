"""PNG plots of a study: the accuracy/size Pareto front with the limit drawn, and its history.

matplotlib's object API (a Figure, no pyplot state, no display needed); files are written
atomically.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

from asc_auto.io import atomic_path
from asc_auto.records import feasible_trials
from asc_auto.report import pareto_front
from asc_auto.schema import StudyRecord, TrialRecord


def _save(fig: Figure, out: Path) -> Path:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return out


def _size_kb(t: FrozenTrial) -> float:
    """A completed trial's size (every completed trial was sized before training)."""
    return float(TrialRecord.from_trial(t).size_kb or 0.0)


def plot_pareto(study: optuna.Study, out: Path) -> Path:
    """Validation accuracy vs size of every feasible trial; front joined; budget as a line."""
    ok = feasible_trials(study)
    infeasible = [t for t in study.get_trials(  # PRUNED now, COMPLETE in older studies
        deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if TrialRecord.from_trial(t).feasible is False]
    record = StudyRecord.from_study(study)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    ax.scatter([_size_kb(t) for t in ok], [t.value for t in ok], s=22,
               color="tab:blue", alpha=0.6, label="feasible trials")
    front = pareto_front(ok)
    if front:
        ax.step([_size_kb(t) for t in front], [t.value for t in front],
                where="post", color="tab:blue", label="Pareto front")
    paper = [t for t in ok if TrialRecord.from_trial(t).is_paper]
    if paper:
        ax.scatter([_size_kb(paper[0])], [paper[0].value], marker="*", s=160,
                   color="tab:orange", zorder=3, label="seed paper's configuration")
    if infeasible:
        ax.scatter([_size_kb(t) for t in infeasible], [0.0] * len(infeasible),
                   marker="x", color="tab:red", label="over budget (not trained)")
    budget = record.budget_kb
    if budget is not None:
        ax.axvline(float(budget), color="tab:red", linestyle="--", label=f"limit {budget} KB")
    ax.set_xlabel(f"model size, KB (rule {record.rule or '?'})")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{study.study_name}: accuracy vs size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.6)
    return _save(fig, out)


def plot_history(study: optuna.Study, out: Path) -> Path:
    """Objective per trial (pruned trials at their last reported accuracy) and best so far."""
    trials = [t for t in study.get_trials(deepcopy=False)
              if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    done = [t for t in trials
            if t.state == TrialState.COMPLETE and TrialRecord.from_trial(t).feasible]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    ax.scatter([t.number for t in done], [t.value for t in done], s=22, label="complete")
    ax.scatter([t.number for t in pruned],
               [t.intermediate_values[max(t.intermediate_values)] for t in pruned],
               s=22, marker="v", color="grey", label="pruned (last epoch)")
    best, xs, ys = float("-inf"), [], []
    for t in sorted(done, key=lambda t: t.number):
        best = max(best, t.value)
        xs.append(t.number)
        ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="tab:green", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{study.study_name}: optimization history")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", framealpha=0.6)
    return _save(fig, out)
