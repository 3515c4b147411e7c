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


def _member(row: Mapping[str, Any]) -> str:
    acc = row.get("val_accuracy")
    where = f" {Path(row['file']).name}" if row.get("file") else ""
    params = f", {row['params']:,} params" if row.get("params") else ""
    return f"{row.get('source', '?')}{where} ({_acc(acc)}{params})"


def _acc(value: float | None) -> str:
    return "validation accuracy unknown" if value is None else f"validation accuracy {value:.4f}"


def teacher_lines(attrs: Mapping[str, Any], best_student: float | None) -> list[str]:
    """The teacher's line (members of an ensemble listed) and, when it is not better than
    `best_student` (the best feasible trial's validation accuracy), a warning line. Empty for a
    study without a teacher."""
    if "teacher_params" not in attrs and "teacher_members" not in attrs:
        return []
    acc = attrs.get("teacher_val_accuracy")
    members = attrs.get("teacher_members") or []
    what = "KD teacher"
    if len(members) > 1:
        what += f" (ensemble of {len(members)}, logits averaged)"
    elif members and members[0].get("source") in ("checkpoint", "logits"):
        what += f" ({_member(members[0]).split(' (')[0]})"
    params = attrs.get("teacher_params") or 0
    line = f"{what}: {params:,} params, {_acc(acc)}" if params else f"{what}: {_acc(acc)}"
    if best_student is not None:
        line += f"; best student {best_student:.4f}"
    lines = [line]
    if len(members) > 1:
        lines += [f"  member {i + 1}: {_member(m)}" for i, m in enumerate(members)]
    if acc is not None and best_student is not None and acc <= best_student:
        lines.append(
            f"warning: the KD teacher ({acc:.4f}) is not better than the best student "
            f"({best_student:.4f}), so distilling from it cannot help; fix: a stronger teacher "
            "(a larger [teacher] budget or min_clips_seen, [teacher] members = 3, --teacher from "
            "`asc-auto pretrain --technique kd`, or --teacher-logits of a stronger model)")
    return lines
