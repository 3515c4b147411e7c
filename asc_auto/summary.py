"""`asc-auto report`: PNG plots per study and a Markdown summary that links them."""

from __future__ import annotations

import re
from pathlib import Path

import optuna

from asc_auto.io import write_text_atomic
from asc_auto.plots import plot_history, plot_pareto
from asc_auto.report import PAPER_RESULTS, StudyRow, study_rows, trial_accuracy_text
from asc_auto.teacher_summary import teacher_lines


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def write_report(storage: optuna.storages.BaseStorage, out: Path) -> tuple[Path, list[StudyRow]]:
    """Write <out>/<study>-pareto.png, <out>/<study>-history.png and <out>/summary.md."""
    out = Path(out)
    rows = study_rows(storage)
    lines = ["# asc-auto report", "", "## Studies", "",
             "| study | technique | complete | pruned | infeasible | failed | best val acc ± SE "
             "| size KB | params | precision | evaluate acc (retrained) ± std |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    plots: list[str] = []
    teachers: list[str] = []
    for r in rows:
        study = optuna.load_study(study_name=r.study, storage=storage)
        said = teacher_lines(study.user_attrs, r.best.value if r.best else None)
        teachers += [f"- {r.study}: {line.strip()}" for line in said]
        slug = _slug(r.study)
        plot_pareto(study, out / f"{slug}-pareto.png")
        plot_history(study, out / f"{slug}-history.png")
        plots += [f"### {r.study}", "", f"![{r.study} Pareto front]({slug}-pareto.png)",
                  f"![{r.study} history]({slug}-history.png)", ""]
        b = r.best
        retrained = (f"{r.retrain['mean']:.4f} ± {r.retrain['std']:.4f}" if r.retrain
                     else "not retrained")
        c = r.counts
        lines.append(
            f"| {r.study} | {r.technique} | {c['complete']} | {c['pruned']} | "
            f"{c['infeasible']} | {c['failed']} | "
            + (f"{trial_accuracy_text(b, r.val_clips)} | {b.user_attrs['size_kb']:.2f} | "
               f"{b.user_attrs['params']:,} | "
               f"{b.user_attrs.get('precision', '')}" if b else "- | - | - | -")
            + f" | {retrained} |")
    lines += ["", "Validation accuracy is on the split carved from fold1_train (grouped by "
              "recording location); the evaluate fold is only used by retrain.", "",
              *(["## KD teachers", "", *teachers, ""] if teachers else []),
              "## Seed paper (DCASE2020 Task 1b, evaluate fold of TAU 2020 3Class)", "",
              "| technique | model | accuracy | params | size KB | precision |",
              "|---|---|---:|---:|---:|---|"]
    lines += [f"| {p.technique} | {p.model} | {p.accuracy:.4f} | {p.params:,} | "
              f"{p.size_kb:.2f} | {p.precision} |" for p in PAPER_RESULTS]
    lines += ["", "## Plots", "", *plots]
    summary = out / "summary.md"
    write_text_atomic(summary, "\n".join(lines) + "\n")
    return summary, rows
