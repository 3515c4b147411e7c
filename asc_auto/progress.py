"""The one way the tool draws a progress bar (rich), so every long step looks alike.

Columns: the task's description, the bar, then what the caller asks for: done/total, a unit
word, a free `info` field (a task's `info=` value: best trial, epoch accuracy), elapsed and
remaining time. `enabled=False` draws nothing (logs, workers, tests).
"""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def progress_bar(enabled: bool, *, count: bool = True, unit: str = "", info: bool = False,
                 elapsed: bool = False, remaining: bool = False,
                 transient: bool = True) -> Progress:
    """A rich Progress with the house's columns; `transient` bars vanish when done."""
    columns: list[ProgressColumn] = [TextColumn("{task.description}"), BarColumn()]
    if count:
        columns.append(MofNCompleteColumn())
    if unit:
        columns.append(TextColumn(unit))
    if info:
        columns.append(TextColumn("{task.fields[info]}"))
    if elapsed:
        columns.append(TimeElapsedColumn())
    if remaining:
        columns.append(TimeRemainingColumn())
    return Progress(*columns, transient=transient, disable=not enabled)
