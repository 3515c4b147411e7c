"""Digests of what results depend on: cached work and resumed studies are keyed by these, so a
result made under other data or settings is never reused or mixed in."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from asc_auto.errors import UsageError

_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def digest(value: Any) -> str:
    """sha256 of a JSON-able value in canonical form (sorted keys; tuples as lists)."""
    blob = json.dumps(value, sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot key {type(value).__name__}")


def check_study_name(name: str) -> str:
    """A study name becomes a folder name under --home: letters, digits, '_', '.', '-' only."""
    if not _STUDY_NAME.match(name) or ".." in name:
        raise UsageError(f"study name {name!r} is not allowed; fix: use 1-100 letters, digits, "
                         "'_', '.' or '-', starting with a letter or digit (no '..', no '/')")
    return name


def study_folder(home: Path, name: str) -> Path:
    """<home>/<name> for a plain name; a safe slug plus a digest for a name made elsewhere (an
    Optuna study created by another tool may have any name), so it never leaves `home`."""
    if _STUDY_NAME.match(name) and ".." not in name:
        return Path(home) / name
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip("._")[:60] or "study"
    return Path(home) / f"{slug}-{digest(name)[:8]}"
