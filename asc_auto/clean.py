"""`asc-auto clean` (`make clean-studies`): remove what asc-auto wrote under its home folder, and
only that.

What counts as the tool's, each recognised by what the tool leaves on it (never by a folder name
alone, so a user's file in studies/ survives):

- folders `io.atomic_dir` put in place (feature and teacher caches, the demo data, retrained
  seeds, export packages): they carry its manifest and hold nothing the manifest does not list;
- the default study database `asc.db` and SQLite's and the set-up lock's files beside it;
- a report: `summary.md` that starts with report's heading, and the PNGs it links;
- a pretrain checkpoint whose JSON card names it and whose sha256 matches the card;
- a stopped training's saved epochs (`epoch_state.py`: a folder with its `epoch-state.json`);
- the remembered file hashes of datasets (`cache/file-sha256.json`, data/filehash.py);
- temp files of dead processes (`io.remove_stale_temps`) and `build_lock`'s (or a stopped
  training's, `epoch_state.resumable`) `.<name>.lock` beside something removed;
- folders left empty by the removals above (a folder that was already empty is the user's).

Everything else is kept and listed (e.g. predict's output CSV, whose name the user chose).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from asc_auto.data.filehash import is_hash_memory
from asc_auto.epoch_state import MARKER as EPOCH_STATE_MARKER
from asc_auto.io import file_sha256, is_stale_temp, written_by_tool

STORAGE_FILES = ("asc.db", "asc.db-journal", "asc.db-wal", "asc.db-shm",
                 "asc.db.asc-setup.lock")
REPORT_HEADING = "# asc-auto report"  # summary.write_report's first line


@dataclass
class CleanPlan:
    """What `clean` removes (files and whole folders) and what it keeps under the home."""

    remove: list[Path] = field(default_factory=list)
    keep: list[Path] = field(default_factory=list)


def report_files(folder: Path) -> set[Path]:
    """The files an earlier `asc-auto report` wrote in `folder`: its summary.md (known by its
    heading) and the PNGs that summary links; nothing when there is no such summary."""
    summary = folder / "summary.md"
    try:
        text = summary.read_text()
    except (OSError, UnicodeDecodeError):
        return set()
    if not text.startswith(REPORT_HEADING):
        return set()
    linked = {folder / line.split("](", 1)[1].rstrip(")") for line in text.splitlines()
              if line.startswith("![") and line.endswith(".png)")}
    return {summary} | {p for p in linked if p.parent == folder}


def _pretrain_files(folder: Path) -> set[Path]:
    found: set[Path] = set()
    for card in folder.glob("*.json"):
        try:
            doc = json.loads(card.read_text())
            checkpoint = folder / str(doc["checkpoint"])
            if Path(str(doc["checkpoint"])).name == doc["checkpoint"] and checkpoint.is_file() \
                    and file_sha256(checkpoint) == doc["sha256"]:
                found |= {card, checkpoint}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return found


def _epoch_state_files(folder: Path) -> set[Path]:
    """A stopped training's saved epochs (epoch_state.py): its marker and its state files."""
    marker = folder / EPOCH_STATE_MARKER
    try:
        if "key" not in json.loads(marker.read_text()):
            return set()
    except (OSError, ValueError, TypeError):
        return set()
    return {marker} | {p for p in folder.glob("*.pt") if p.name.startswith(("training-", "kept-"))}


def _scan(folder: Path, plan: CleanPlan, top: bool) -> bool:
    """Add the tool's entries of `folder` to the plan; True when all of them are the tool's."""
    entries = sorted(folder.iterdir())
    ours = report_files(folder) | _pretrain_files(folder) | _epoch_state_files(folder) | {
        e for e in entries if is_hash_memory(e)}
    if top:
        ours |= {folder / name for name in STORAGE_FILES}
    removed: list[Path] = []
    kept: list[Path] = []
    mixed = False  # a subfolder holds the user's files beside the tool's
    for entry in entries:
        if entry.is_symlink():
            kept.append(entry)
        elif entry in ours or is_stale_temp(entry):
            removed.append(entry)
        elif entry.is_dir():
            if written_by_tool(entry):
                removed.append(entry)
            else:
                sub = CleanPlan()
                if _scan(entry, sub, top=False) and sub.remove:
                    removed.append(entry)  # everything in it is the tool's: the folder goes
                else:
                    plan.remove += sub.remove
                    plan.keep += sub.keep
                    mixed = True
                    if not sub.remove and not sub.keep:
                        kept.append(entry)  # an empty folder: not the tool's to remove
        else:
            kept.append(entry)
    names = {p.name for p in removed}
    for lock in [p for p in kept if p.name.startswith(".") and p.name.endswith(".lock")]:
        target = lock.name[1:-len(".lock")]  # build_lock's `.<name>.lock`
        if target in names or not (folder / target).exists():
            kept.remove(lock)
            removed.append(lock)
    plan.remove += removed
    plan.keep += kept
    return not kept and not mixed


def plan_clean(home: Path) -> CleanPlan:
    """What `clean(home)` would remove and keep; touches nothing."""
    plan = CleanPlan()
    if Path(home).is_dir():
        _scan(Path(home), plan, top=True)
    return plan


def clean(home: Path) -> CleanPlan:
    """Remove the tool's files and folders under `home` (never `home` itself); return the plan."""
    plan = plan_clean(home)
    for path in plan.remove:
        with contextlib.suppress(FileNotFoundError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    return plan
