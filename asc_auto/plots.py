"""PNG plots: a study's accuracy/size Pareto front with the limit drawn and its history, and
retrained accuracies side by side against a reference line (the `baseline` technique's).

matplotlib's object API (a Figure, no pyplot state, no display needed); files are written
atomically. `pareto_figure`/`history_figure` build the figures (tests read their artists),
`plot_pareto`/`plot_history` save them.

Trials over a limit were never trained, so they have no accuracy: they are drawn as red crosses
along the bottom edge (x at their size, y in axes coordinates), where they neither pretend to
score 0 nor stretch the accuracy axis down to it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import FrozenTrial, TrialState

from asc_auto.io import atomic_path
from asc_auto.records import feasible_trials
from asc_auto.report import pareto_front
from asc_auto.schema import StudyRecord, TrialRecord

PRECISION_MARKERS = {"fp32": "o", "fp16": "s", "int8": "^"}  # one marker per deployed precision
EDGE = 0.03  # where over-limit trials sit: this far above the bottom edge, in axes coordinates


def save_png(fig: Figure, out: Path) -> Path:
    """Write a figure as a PNG, atomically (a reader never sees half a file)."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    return out


def _size_kb(t: FrozenTrial) -> float:
    """A sized trial's size (every trial that got past sizing has one)."""
    return float(TrialRecord.from_trial(t).size_kb or 0.0)


def _infeasible(study: optuna.Study) -> list[FrozenTrial]:
    """Trials sized over a limit, never trained: PRUNED now, COMPLETE at 0.0 in older studies."""
    return [t for t in study.get_trials(deepcopy=False,
                                        states=(TrialState.COMPLETE, TrialState.PRUNED))
            if TrialRecord.from_trial(t).feasible is False]


def _mark_infeasible(ax: Axes, xs: list[float], label: str) -> None:
    if xs:
        ax.scatter(xs, [EDGE] * len(xs), marker="x", color="tab:red", zorder=3, label=label,
                   transform=ax.get_xaxis_transform(), clip_on=False)


def _span_x(ax: Axes, xs: list[float]) -> None:
    """Widen the x axis to every point: marks in axes coordinates do not move the limits."""
    if xs:
        lo, hi = min(xs), max(xs)
        pad = 0.05 * (hi - lo or abs(hi) or 1.0)
        ax.set_xlim(lo - pad, hi + pad)


def pareto_figure(study: optuna.Study) -> Figure:
    """Validation accuracy vs size: feasible trials by precision (marker), the front joined and
    its trials numbered, the paper's point starred and labelled (also when over the limit),
    trials over a limit crossed along the bottom, the limit as a line."""
    ok = feasible_trials(study)
    over = _infeasible(study)
    record = StudyRecord.from_study(study)
    fig = Figure(figsize=(7.2, 4.6))
    ax = fig.subplots()
    for precision, marker in PRECISION_MARKERS.items():
        group = [t for t in ok if TrialRecord.from_trial(t).precision == precision]
        if group:
            ax.scatter([_size_kb(t) for t in group], [t.value for t in group], s=26,
                       marker=marker, alpha=0.65, label=f"{precision} trials")
    others = [t for t in ok if TrialRecord.from_trial(t).precision not in PRECISION_MARKERS]
    if others:
        ax.scatter([_size_kb(t) for t in others], [t.value for t in others], s=26, alpha=0.65,
                   label="trials")
    front = pareto_front(ok)
    if front:
        ax.step([_size_kb(t) for t in front], [t.value for t in front], where="post",
                color="tab:blue", linewidth=1, label="Pareto front")
        for t in front:
            precision = TrialRecord.from_trial(t).precision or ""
            ax.annotate(f"#{t.number} {precision}".strip(), (_size_kb(t), t.value),
                        textcoords="offset points", xytext=(4, 4), fontsize=7)
    _mark_infeasible(ax, [_size_kb(t) for t in over if not TrialRecord.from_trial(t).is_paper],
                     "over the limit (not trained)")
    paper = next((t for t in ok + over if TrialRecord.from_trial(t).is_paper), None)
    if paper is not None:
        fits = paper in ok
        ax.scatter([_size_kb(paper)], [paper.value if fits else EDGE], marker="*", s=180,
                   color="tab:orange", edgecolor="black", linewidth=0.5, zorder=4,
                   clip_on=False, label="seed paper's configuration",
                   **({} if fits else {"transform": ax.get_xaxis_transform()}))
        precision = TrialRecord.from_trial(paper).precision or "?"
        text = f"paper #{paper.number} ({precision})" + ("" if fits else
                                                         ": over the limit, not trained")
        ax.annotate(text, (_size_kb(paper), paper.value if fits else EDGE),
                    xycoords="data" if fits else ax.get_xaxis_transform(),
                    textcoords="offset points", xytext=(-8, 10), ha="right", fontsize=8,
                    color="tab:orange" if fits else "tab:red")
    budget = record.budget_kb
    if budget is not None:
        ax.axvline(float(budget), color="tab:red", linestyle="--", label=f"limit {budget} KB")
    _span_x(ax, [_size_kb(t) for t in ok + over] + ([float(budget)] if budget else []))
    ax.set_xlabel(f"model size, KB at its precision (rule {record.rule or '?'})")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{study.study_name}: accuracy vs size")
    ax.grid(alpha=0.3)
    if budget is not None and not ok + over:  # the limit's line alone is no result
        _nothing_yet(ax)
    _legend(ax, fontsize=7)
    return fig


NOTHING_YET = "no finished trial yet"


def _legend(ax: Axes, fontsize: int) -> None:
    """The legend; on a study with nothing drawn yet (no trial, no limit), a note saying so
    instead of an empty legend (matplotlib warns about one)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=fontsize, loc="best", framealpha=0.6)
    else:
        _nothing_yet(ax)


def _nothing_yet(ax: Axes) -> None:
    ax.text(0.5, 0.5, NOTHING_YET, transform=ax.transAxes, ha="center", va="center",
            color="grey")


def plot_pareto(study: optuna.Study, out: Path) -> Path:
    """The Pareto figure as a PNG."""
    return save_png(pareto_figure(study), out)


def history_figure(study: optuna.Study) -> Figure:
    """Objective per trial (pruned trials at their last reported accuracy), the best so far,
    trials over a limit crossed along the bottom; whole trial numbers on the x axis."""
    trials = [t for t in study.get_trials(deepcopy=False)
              if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    done = [t for t in trials
            if t.state == TrialState.COMPLETE and TrialRecord.from_trial(t).feasible]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.intermediate_values]
    if done:
        ax.scatter([t.number for t in done], [t.value for t in done], s=22, label="complete")
    if pruned:
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
    over = [float(t.number) for t in _infeasible(study)]
    _mark_infeasible(ax, over, "over the limit (not trained)")
    _span_x(ax, [float(t.number) for t in done + pruned] + over)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{study.study_name}: optimization history")
    ax.grid(alpha=0.3)
    _legend(ax, fontsize=8)
    return fig


def plot_history(study: optuna.Study, out: Path) -> Path:
    """The history figure as a PNG."""
    return save_png(history_figure(study), out)


@dataclass(frozen=True)
class Panel:
    """One panel of `accuracy_bars_figure`: groups of bars, each group a label and its bars as
    (series, accuracies in percent, one per seed); a reference drawn as a line with its std band
    (the baseline CNN's seeds), or none. `errors` (by group label and series) and
    `reference_error`, in percent, replace the seeds' std as the whiskers and the band: the
    report draws each mean's standard error, seeds and evaluate clips together."""

    title: str
    groups: list[tuple[str, list[tuple[str, list[float]]]]]
    reference: list[float] | None = None
    reference_label: str = "baseline CNN"
    xlabels_rotation: float = 0.0
    errors: Mapping[tuple[str, str], float] = field(default_factory=dict)
    reference_error: float | None = None


SERIES_COLOURS = ("tab:blue", "0.65", "tab:green", "tab:orange", "tab:purple")


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def accuracy_bars_figure(panels: Sequence[Panel], colours: Mapping[str, str] | None = None,
                         title: str = "mean ± std over seeds, dots: seeds") -> Figure:
    """Bars of seed means with their std and the seeds as dots, one panel per dataset, the
    reference as a line: where a number is the mean of three seeds, their spread is in view."""
    series = list(dict.fromkeys(name for p in panels for _, bars in p.groups for name, _ in bars))
    colour = {name: (colours or {}).get(name, SERIES_COLOURS[i % len(SERIES_COLOURS)])
              for i, name in enumerate(series)}
    widest = max((len(p.groups) for p in panels), default=1)  # one bar width in every panel
    fig = Figure(figsize=(max(4.2, 1.1 * widest + 1.5) * max(1, len(panels)), 4.0))
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=False):
        for x, (group, bars) in enumerate(panel.groups):
            width = 0.8 / max(1, len(bars))
            for k, (name, accs) in enumerate(bars):
                if not accs:
                    continue
                at = x + (k - (len(bars) - 1) / 2) * width
                mean, std = _mean_std(accs)
                ax.bar(at, mean, width=width * 0.95, color=colour[name],
                       yerr=panel.errors.get((group, name), std), capsize=3, label=name)
                ax.plot([at] * len(accs), accs, "k.", markersize=4)
        if panel.reference:
            mean, std = _mean_std(panel.reference)
            std = std if panel.reference_error is None else panel.reference_error
            ax.axhline(mean, color="tab:red", linewidth=1.2, label=panel.reference_label)
            ax.axhspan(mean - std, mean + std, color="tab:red", alpha=0.12, linewidth=0)
        ax.set_xticks(range(len(panel.groups)), [label for label, _ in panel.groups],
                      rotation=panel.xlabels_rotation,
                      ha="right" if panel.xlabels_rotation else "center")
        ax.set_xlim(-0.7, max(widest, 1) - 0.3)
        ax.set_ylim(0, 100)
        ax.set_title(panel.title)
        ax.set_ylabel("evaluate accuracy (%)")
        ax.grid(axis="y", alpha=0.3)
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="center left", fontsize=8,
                   bbox_to_anchor=(1.0, 0.5))  # beside the panels: clear of any tick label
    fig.suptitle(title, fontsize=9)
    return fig


def plot_accuracy_bars(panels: Sequence[Panel], out: Path,
                       colours: Mapping[str, str] | None = None,
                       title: str = "mean ± std over seeds, dots: seeds") -> Path:
    """`accuracy_bars_figure` as a PNG."""
    return save_png(accuracy_bars_figure(panels, colours, title), out)
