"""How good a kd study's teacher is, beside its students: the lines `show`, `search` and
`report` print from the study's attributes (no torch needed).

A teacher that is not better than the best student cannot teach it anything (issue 10 measured a
VGG teacher at 82 % below an untaught baseline at 91 %), so that case is a warning with the ways
to a stronger teacher.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from asc_auto.schema import StudyRecord
from asc_auto.stats import accuracy_text, binomial_se, mean_se, trial_accuracy_text

# The ways to a stronger teacher, named by the search's and retrain's warnings alike.
STRONGER_TEACHER = ("a stronger teacher (a larger [teacher] budget or min_clips_seen, [teacher] "
                    "members = 3, --teacher from `asc-auto pretrain --technique kd`, or "
                    "--teacher-logits of a stronger model)")
# int8 and lt: stored outputs are their only teacher.
STRONGER_STORED = ("--teacher-logits of a stronger model (`asc-auto teacher-logits` writes a "
                   "study's, with out-of-fold outputs that measure it; `asc-auto predict --logits "
                   "FILE` an exported model's)")
# Stored outputs that classify every validation clip right most likely came from a model that
# trained on them (`predict --logits` on the training clips; the office16 baseline CNN's read
# 1.000 with 3 folds): said, since that accuracy then measures nothing.
SEEN_NOTE = ("note: the stored teacher outputs classify every validation clip right: if the "
             "model that wrote them trained on these clips, that accuracy measures nothing "
             "and their targets are near one-hot; `asc-auto teacher-logits` adds out-of-fold "
             "outputs that measure it honestly")


def _clips(attrs: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Clips the teacher's accuracy is measured on: all of them (each validated once over the
    folds) and one fold's (about that many: grouped folds differ by a few), or the split's."""
    record = StudyRecord.from_attrs(attrs)
    n_val = record.val_clip_count
    folds = int(record.cv_folds or 0)
    if folds > 1 and n_val and record.train_clips:
        total = int(record.train_clips) + n_val
        return total, round(total / folds)
    return n_val, n_val


def _acc(value: float | None, n: int | None, se: float | None = None) -> str:
    if value is None:
        return "validation accuracy unknown"
    return f"validation accuracy {accuracy_text(value, n, se)}"


def _member(row: Mapping[str, Any], n: int | None) -> str:
    where = f" {Path(row['file']).name}" if row.get("file") else ""
    params = f", {row['params']:,} params" if row.get("params") else ""
    return f"{row.get('source', '?')}{where} ({_acc(row.get('val_accuracy'), n)}{params})"


def teacher_se(attrs: Mapping[str, Any]) -> float | None:
    """The teacher's validation accuracy's standard error: binomial on the clips it was scored
    on, or, cross-validated (a teacher per fold, their mean recorded), as a trial's: the larger
    of the binomial over all clips and the folds' spread."""
    acc = attrs.get("teacher_val_accuracy")
    total, _ = _clips(attrs)
    if acc is None or not total:
        return None
    se = binomial_se(float(acc), total)
    per_fold = [float(a) for a in attrs.get("teacher_val_accuracy_per_fold") or []
                if a is not None]
    return max(se, mean_se(per_fold)) if len(per_fold) > 1 else se


def teacher_lines(attrs: Mapping[str, Any], best: FrozenTrial | None,
                  fix: str = STRONGER_TEACHER) -> list[str]:
    """The teacher's line (members of an ensemble listed), each accuracy with its standard
    error, and, when it is not better than `best` (the best feasible trial), a warning line
    ending in `fix`. Empty for a study without a teacher."""
    if "teacher_params" not in attrs and "teacher_members" not in attrs:
        return []
    acc = attrs.get("teacher_val_accuracy")
    members = attrs.get("teacher_members") or []
    total, per_member = _clips(attrs)
    what = "KD teacher"
    if len(members) > 1:
        what += f" (ensemble of {len(members)}, logits averaged)"
    elif members and members[0].get("source") in ("checkpoint", "logits"):
        what += f" ({_member(members[0], per_member).split(' (')[0]})"
    params = attrs.get("teacher_params") or 0
    said = _acc(acc, total, teacher_se(attrs))
    line = f"{what}: {params:,} params, {said}" if params else f"{what}: {said}"
    best_student = best.value if best is not None else None
    if best is not None and best_student is not None:
        n_val = StudyRecord.from_attrs(attrs).val_clip_count  # as the trials table says it
        line += f"; best student {trial_accuracy_text(best, n_val)}"
    lines = [line]
    if len(members) > 1:
        lines += [f"  member {i + 1}: {_member(m, per_member)}" for i, m in enumerate(members)]
    stored = any(m.get("source") == "logits" for m in members)
    if stored and acc is not None and acc >= 1.0 and (total or 0) >= 20:
        lines.append(SEEN_NOTE)
    if acc is not None and best_student is not None and acc <= best_student:
        lines.append(
            f"warning: the KD teacher ({acc:.4f}) is not better than the best student "
            f"({best_student:.4f}), so distilling from it cannot help; fix: {fix}")
    return lines


def retrain_teacher_lines(teacher: float | None, clips: int, students: list[float]) -> list[str]:
    """`retrain`'s kd teacher beside its students, both on the evaluate fold (`clips` clips),
    and a warning when it is not better than their mean; empty without a teacher.

    Why: a search shows its fold teachers' validation; what the retrained students distilled
    from is another teacher, on all of fold1_train, and a gap like fsdd's at 10 epochs (teacher
    82.4 %, students 29.8 %) says the students, not the teacher, are what to fix.
    """
    if teacher is None or not students:
        return []
    mean = sum(students) / len(students)
    them = (f"students {mean:.4f} ± {mean_se(students):.3f} (mean ± SE over {len(students)} "
            "seeds)" if len(students) > 1 else f"student {mean:.4f} (1 seed)")
    lines = [f"KD teacher (trained on all of fold1_train): evaluate accuracy "
             f"{accuracy_text(teacher, clips)}; its {them}"]
    if teacher <= mean:
        lines.append(
            f"warning: the KD teacher ({teacher:.4f}) is not better than its students "
            f"({mean:.4f}) on the evaluate fold, so distilling from it cannot help; fix: search "
            f"again with {STRONGER_TEACHER}")
    return lines
