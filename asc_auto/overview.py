"""What a study holds, as plain data: `asc-auto studies` (a table, or `--json`) and
`asc-auto show --json`, for people at a glance and for scripts.

One dict per study: technique, rule and budget, trials by state, the best feasible trial with
its standard error, the pick retrain and export take (the confirmed winner, or the best), the
retrain recorded in the study (which trial it retrained, and whether that is still the pick),
and in `studies` its gap to the `baseline` study retrained on the same data (`against_baseline`).
NaN never reaches the JSON (it is not JSON): an unknown number is null.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from rich.table import Table

from asc_auto.against_baseline import (
    BASELINE,
    Gap,
    Retrained,
    compare,
    gap_cell,
    teacher_hint,
    warning_line,
)
from asc_auto.confirm import confirmations, confirmed_best
from asc_auto.records import feasible_trials, pick_trial
from asc_auto.report import (
    choice_counts,
    confirming_runs,
    pareto_front,
    reference_line,
    retrained_text,
    running_trials,
    state_counts,
)
from asc_auto.schema import StudyRecord, TrialRecord
from asc_auto.stats import binomial_se, evaluate_se
from asc_auto.teacher_summary import teacher_se


def _num(value: Any) -> Any:
    """A finite number as is; NaN/inf as None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def trial_data(t: FrozenTrial, val_clips: int | None) -> dict[str, Any]:
    """One trial: number, value ± its standard error, size, precision, configuration."""
    r = TrialRecord.from_trial(t)
    se = r.value_se if r.value_se is not None else (
        binomial_se(t.value, val_clips) if t.value is not None and val_clips else None)
    return {"trial": t.number, "state": t.state.name, "paper": r.is_paper, "source": r.source,
            "value": _num(t.value), "value_se": _num(se),
            "se_from": "cross-validation" if r.value_se is not None else (
                "binomial" if se is not None else None),
            "accuracy_fp32": _num(r.accuracy_fp32), "feasible": r.feasible,
            "size_kb": _num(r.size_kb), "params": r.params, "precision": r.precision,
            "macs": r.macs, "stop_reason": r.stop_reason, "config": r.config or {}}


def retrain_data(record: StudyRecord, pick: int | None) -> dict[str, Any] | None:
    """The recorded retrain: which trial, evaluate accuracy mean ± std over its seeds, each
    seed's accuracy (the mean's SE from them, as `report` computes it, not from the rounded
    std) and, where kept, its per-clip results ('1'/'0' per evaluate clip, for paired
    comparisons across studies), the mean's SE in its parts (`stats.EvaluateSE`: seeds, the
    fold's clips, total), and whether it retrained today's pick (a later search or
    confirmation may have moved it)."""
    done = record.retrain_of(pick)
    if not done:
        return None
    trial = int(done["trial"]) if done.get("trial") is not None else None
    per_seed = done.get("per_seed") or []
    accs = [float(s["accuracy"]) for s in per_seed if s.get("accuracy") is not None]
    se = evaluate_se(accs, done.get("eval_clips"),
                     [str(s.get("correct") or "") for s in per_seed]) if accs else None
    return {"trial": trial, "seeds": done.get("seeds"), "mean": _num(done.get("mean")),
            "std": _num(done.get("std")), "folder": done.get("folder"),
            "eval_clips": done.get("eval_clips"), "eval_files": done.get("eval_files"),
            "se": None if se is None else {"seeds": _num(se.seeds), "clips": _num(se.clips),
                                           "total": _num(se.total)},
            "per_seed": [{"seed": s.get("seed"), "accuracy": _num(s.get("accuracy")),
                          **({"correct": s["correct"]} if s.get("correct") else {})}
                         for s in per_seed],
            "is_pick": trial is not None and trial == pick}


def study_data(study: optuna.Study) -> dict[str, Any]:
    """A study at a glance (one entry of `asc-auto studies --json`)."""
    record = StudyRecord.from_study(study)
    n_val = record.val_clip_count
    ranked = feasible_trials(study)
    best = ranked[0] if ranked else None
    pick = pick_trial(study) if ranked else None
    confirmed = confirmed_best(study)
    return {
        "study": study.study_name, "technique": record.technique, "rule": record.rule,
        "budget_kb": _num(record.budget_kb), "max_mmacs": _num(record.max_mmacs),
        "val_clips": n_val, "cv_folds": record.cv_folds, "trials": state_counts(study),
        "best": trial_data(best, n_val) if best else None,
        "pick": None if pick is None else {
            "trial": pick.number, "how": "confirmed" if confirmed == pick.number else "best"},
        "retrain": retrain_data(record, pick.number if pick else None),
        "data": {"sha256": record.data_key,
                 "name": Path(record.data).name if record.data else None,
                 "path": record.data},
        "demo": bool(record.demo),
    }


def studies_data(storage: optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    """`study_data` of every study in a storage, each with `vs_baseline`: its retrained mean
    minus the `baseline` study's on the same data, points ± SE (None where there is none to
    compare with), and `reference` (whether it is that baseline study)."""
    rows, retrained = [], []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        record = StudyRecord.from_study(study)
        rows.append(study_data(study))
        pick = rows[-1]["pick"]
        retrained.append(Retrained(study.study_name, str(record.technique or "?"),
                                   record.data_key,
                                   record.retrain_of(pick["trial"] if pick else None)))
    gaps, refs = compare(retrained)
    for row in rows:
        gap = gaps.get(row["study"])
        row["vs_baseline"] = None if gap is None else {
            "baseline_study": gap.baseline_study, "points": round(gap.points, 2),
            "se": None if gap.se is None else round(gap.se, 2),
            "se_includes_clips": gap.se_includes_clips}
        row["reference"] = row["study"] in refs
    return rows


def show_data(study: optuna.Study, top: int = 5) -> dict[str, Any]:
    """Everything `asc-auto show` prints, as data (`show --json`)."""
    n_val = StudyRecord.from_study(study).val_clip_count
    ranked = feasible_trials(study)
    data = study_data(study)
    pick = data["pick"]
    data.update({
        "feasible": [trial_data(t, n_val) for t in ranked[:top]],
        "pareto": [trial_data(t, n_val) for t in pareto_front(ranked)],
        "confirmation": [{"trial": c.trial, "fresh_mean": _num(c.mean),
                          "fresh_se": _num(c.standard_error), "fresh": list(c.fresh),
                          "search_value": c.search_value, "size_kb": c.size_kb}
                         for c in confirmations(study)],
        "pick_config": next((TrialRecord.from_trial(t).config for t in ranked
                             if pick and t.number == pick["trial"]), None),
        "teacher": None if study.user_attrs.get("teacher_val_accuracy") is None else {
            "val_accuracy": study.user_attrs["teacher_val_accuracy"],
            "val_se": _num(teacher_se(study.user_attrs)),
            "params": study.user_attrs.get("teacher_params"),
            "members": study.user_attrs.get("teacher_members") or []},
        "gcc_ablation": study.user_attrs.get("gcc_ablation"),
        "choices": [{"param": c.param, "choice": c.choice, "trials": c.tried,
                     "finished": c.finished, "stopped_early": c.stopped,
                     "over_limit": c.over_limit,
                     "best_trial": None if c.best is None else c.best.number,
                     "best_value": None if c.best is None else _num(c.best.value)}
                    for c in choice_counts(study)],
        "initial_design": StudyRecord.from_study(study).initial_design,
        "running": [{"trial": r.trial.number, "seconds": _num(r.seconds), "folds": r.folds,
                     "fold_accuracies": list(r.fold_accuracies), "epochs": r.epochs,
                     "last_accuracy": r.last_accuracy,
                     "resumed_from": TrialRecord.from_trial(r.trial).resumed_from}
                    for r in running_trials(study)],
        "confirming": [{"trial": trial, "seed": seed, "fold_accuracies": accs}
                       for trial, seed, accs in confirming_runs(study)],
        "reference_note": reference_line(study),
    })
    return data


def _value(d: dict[str, Any] | None) -> str:
    if not d or d["value"] is None:
        return "-"
    se = f" ± {d['value_se']:.3f}" if d["value_se"] is not None else ""
    return f"{d['value']:.4f}{se}"


def reference_hint(row: dict[str, Any], others: Sequence[dict[str, Any]], where: str,
                   ) -> str | None:
    """The command that gives a study (a `studies_data` row) its baseline reference: retrain a
    `baseline` study searched on the same data, else search one (None where there is one, or
    for the baseline technique itself). `where`: the --home/--storage options to repeat."""
    key = (row.get("data") or {}).get("sha256")
    if row["technique"] == BASELINE or not key:
        return None
    same = [s for s in others if s["technique"] == BASELINE and s["data"]["sha256"] == key]
    if any(s["reference"] for s in same):
        return None
    if same:
        return f"asc-auto retrain --study {same[0]['study']} --seeds 3{where}"
    path = (row.get("data") or {}).get("path")
    data = "" if row.get("demo") or not path else f" --data {path}"
    return (f"asc-auto search --technique baseline{data}{where}, then retrain that study "
            "with --seeds 3")


def baseline_line(storage: optuna.storages.BaseStorage, study: str, where: str = "") -> str | None:
    """After a retrain: how the study stands against the baseline CNN retrained on the same data,
    or how to get that comparison (None for the baseline study itself)."""
    others = studies_data(storage)
    row = next(r for r in others if r["study"] == study)
    gap = row["vs_baseline"]
    if gap is not None:
        sources = optuna.load_study(study_name=study, storage=storage).user_attrs.get("sources")
        below = warning_line(study, Gap(**gap), teacher_hint(str(row["technique"]), sources))
        return (f"against the baseline CNN retrained on the same data (study "
                f"{gap['baseline_study']!r}): {Gap(**gap).text()} points"
                + (f"\n{below}" if below else ""))
    hint = reference_hint(row, others, where)
    return None if hint is None else (
        "no `baseline` study retrained on this data to compare with; to see whether this model "
        f"beats the DCASE baseline CNN: {hint}")


def next_steps(study: optuna.Study, others: Sequence[dict[str, Any]], where: str) -> str:
    """What to run after a search: retrain and export its pick, and the command that gives it
    its baseline reference where its data has none among `others` (`studies_data` of its
    storage, `reference_hint`). `where`: the --home/--storage options the user gave."""
    name = study.study_name
    said = (f"next: asc-auto retrain --study {name} --seeds 3{where}, then asc-auto export "
            f"--study {name} --out <folder>{where}")
    row = next((s for s in others if s["study"] == name), None) or study_data(study)
    hint = reference_hint(row, others, where)
    if hint:
        said += f"; to compare it with the DCASE baseline CNN on the same data: {hint}"
    return said


def studies_overview_table(studies: Sequence[dict[str, Any]]) -> Table:
    """`asc-auto studies`: one row per study."""
    table = Table(title="studies (trials: complete/pruned/infeasible/failed/running/waiting)",
                  title_justify="left")
    for col, just in (("study", "left"), ("technique", "left"), ("trials", "right"),
                      ("best", "right"), ("val ± SE", "right"), ("pick", "left"),
                      ("retrained: evaluate ± SE", "left"), ("vs baseline, pts", "right")):
        table.add_column(col, justify=just)
    for s in studies:
        c = s["trials"]
        best, pick = s["best"], s["pick"]
        table.add_row(
            s["study"], str(s["technique"] or "?"),
            f"{c['complete']}/{c['pruned']}/{c['infeasible']}/{c['failed']}/{c['running']}"
            f"/{c['waiting']}",
            "-" if not best else f"#{best['trial']}" + (" paper" if best["paper"] else ""),
            _value(best),
            "-" if not pick else f"#{pick['trial']} ({pick['how']})",
            retrained_text(s["retrain"], pick["trial"] if pick else None) if s["retrain"]
            else "not retrained",
            gap_cell(Gap(**s["vs_baseline"]) if s.get("vs_baseline") else None,
                     s.get("reference", False)))
    return table
