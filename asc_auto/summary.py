"""`asc-auto report`: PNG plots per study and a Markdown summary that links them."""

from __future__ import annotations

import re
from pathlib import Path

import optuna

from asc_auto.against_baseline import seed_accuracies, teacher_hint, warning_line
from asc_auto.clean import report_files
from asc_auto.errors import UsageError
from asc_auto.io import write_text_atomic
from asc_auto.plots import Panel, plot_accuracy_bars, plot_history, plot_pareto
from asc_auto.report import (
    PAPER_COLUMNS,
    STATES,
    StudyRow,
    paper_rows,
    retrained_se,
    study_cells,
    study_rows,
)
from asc_auto.teacher_summary import teacher_lines


def _row(*cells: str) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(cells) + " |"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


BASELINE_PNG = "against-baseline.png"


BASELINE_PLOT_TITLE = "mean ± SE of seeds and evaluate clips; dots: seeds"
PICK = "retrained pick"


def _se_percent(retrain: dict) -> float:
    total = retrained_se(retrain).total
    return 0.0 if total is None else 100 * total


def baseline_panels(rows: list[StudyRow]) -> list[Panel]:
    """One panel per dataset with a retrained `baseline` study: every other study retrained on
    it (its seeds, percent) against that baseline's seeds, each mean's whisker (the baseline's
    band) its standard error over seeds and evaluate clips, as the tables' ± (`retrained_se`):
    a seeds-only whisker read as certainty where seeds agree on a fold of 66 clips."""
    panels = []
    for key in dict.fromkeys(r.data_key for r in rows if r.reference):
        ref = next(r for r in rows if r.reference and r.data_key == key)
        others = [r for r in rows if r.data_key == key and r.vs_baseline and r.retrain]
        if others and ref.retrain:
            panels.append(Panel(
                title=ref.data_name or "data", reference=[100 * a for a in seed_accuracies(
                    ref.retrain)], xlabels_rotation=25,
                groups=[(r.study, [(PICK, [100 * a for a in seed_accuracies(
                    r.retrain or {})])]) for r in others],
                errors={(r.study, PICK): _se_percent(r.retrain or {}) for r in others},
                reference_error=_se_percent(ref.retrain)))
    return panels


def refuse_to_overwrite(out: Path, names: list[str]) -> None:
    """Stop before writing any of `names` over a file in `out` that an earlier report did not
    write: `report --out ~/notes` must not replace the user's own summary.md or PNG."""
    ours = report_files(out)
    for name in names:
        path = out / name
        if path.exists() and path not in ours:
            raise UsageError(f"{path}: exists and was not written by `asc-auto report`; fix: "
                             "pass another --out (a new or empty folder), or move that file")


def write_report(storage: optuna.storages.BaseStorage, out: Path) -> tuple[Path, list[StudyRow]]:
    """Write <out>/<study>-pareto.png, <out>/<study>-history.png, against-baseline.png (when a
    retrained study has a `baseline` study retrained on its data) and <out>/summary.md."""
    out = Path(out)
    rows = study_rows(storage)
    refuse_to_overwrite(out, [f"{_slug(r.study)}-{kind}.png" for r in rows
                              for kind in ("pareto", "history")] + [BASELINE_PNG, "summary.md"])
    lines = ["# asc-auto report", "", "## Studies", "",
             "| study | technique | complete | pruned | infeasible | failed | best trial "
             "| best val acc ± SE | size KB | params | precision "
             "| retrained trial: evaluate acc ± SE | vs baseline, points ± SE |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    plots: list[str] = []
    teachers: list[str] = []
    for r in rows:
        study = optuna.load_study(study_name=r.study, storage=storage)
        said = teacher_lines(study.user_attrs, r.best)
        teachers += [f"- {r.study}: {line.strip()}" for line in said]
        slug = _slug(r.study)
        plot_pareto(study, out / f"{slug}-pareto.png")
        plot_history(study, out / f"{slug}-history.png")
        plots += [f"### {r.study}", "", f"![{r.study} Pareto front]({slug}-pareto.png)",
                  f"![{r.study} history]({slug}-history.png)", ""]
        c = study_cells(r, not_retrained="not retrained")
        lines.append(_row(c["study"], c["technique"], *(c[s] for s in STATES),
                          c["best_trial"], c["best"], c["size"], c["params"], c["precision"],
                          c["retrained"], c["vs_baseline"]))
    panels = baseline_panels(rows)
    below = [line for r in rows if r.vs_baseline
             for line in [warning_line(r.study, r.vs_baseline,
                                       teacher_hint(r.technique, r.sources))] if line]
    if panels:
        plot_accuracy_bars(panels, out / BASELINE_PNG, title=BASELINE_PLOT_TITLE)
    lines += ["", "Validation accuracy is on the split carved from fold1_train (grouped by "
              "recording location); the evaluate fold is only used by retrain. \"vs baseline\": "
              "the retrained mean minus that of the `baseline` study (the DCASE2020 Task 1b CNN) "
              "retrained on the same data, ± the standard error of the difference over seeds "
              "and, where both retrains kept which evaluate clips each seed got right, over "
              "those clips too (paired clip by clip). A retrained accuracy's ± counts the seeds "
              "and the evaluate clips alike (\"SE of seeds\": retrained before its clips were "
              "kept).",
              "",
              *([f"![retrained studies against the baseline CNN]({BASELINE_PNG})", ""]
                if panels else []),
              *[f"- {line}" for line in below],
              *([""] if below else []),
              *(["## KD teachers", "", *teachers, ""] if teachers else []),
              "## Seed paper (DCASE2020 Task 1b, evaluate fold of TAU 2020 3Class)", "",
              _row(*(name for name, _ in PAPER_COLUMNS)),
              "|" + "|".join("---:" if j == "right" else "---" for _, j in PAPER_COLUMNS) + "|"]
    lines += [_row(*cells) for cells in paper_rows()]
    lines += ["", "## Plots", "", *plots]
    summary = out / "summary.md"
    write_text_atomic(summary, "\n".join(lines) + "\n")
    return summary, rows
