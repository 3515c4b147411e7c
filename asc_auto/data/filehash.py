"""Content sha256 of dataset files, remembered by their stat, so a second look costs one stat.

Why: a dataset is what its files hold, not where or when they were written. A copy staged to a
job's local disk (`cp` without `-p`, a rebuilt volume, re-provisioned data) gets new times and
must keep its studies and caches; an edited file must not. Hashing every time would read the
whole dataset at each start (TAU 2020 1b: about 40 GB), so each file's hash is kept beside its
(size, mtime, inode) in a JSON file under the cache folder (as git's index and DVC's state do):
a file whose stat is unchanged is not read again. The dataset folder itself is never written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from asc_auto.io import file_sha256, write_text_atomic

FORMAT = 1
FILE_NAME = "file-sha256.json"
TOOL = "asc-auto"  # marks the file as the tool's, for `asc-auto clean`
SAY_BYTES = 1_000_000_000  # a first read longer than about a second is announced


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _read(path: Path) -> dict[str, list]:
    """The remembered hashes; a missing, damaged or foreign file is an empty memory (it only
    costs hashing again), never an error."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("tool") != TOOL or doc.get("format") != FORMAT:
        return {}
    files = doc.get("files")
    return files if isinstance(files, dict) else {}


def file_hashes(paths: Iterable[Path], cache_dir: Path | None,
                status: Callable[[str], None] = lambda msg: None) -> dict[Path, str]:
    """{path: sha256 of its bytes}; with `cache_dir`, files whose (size, mtime, inode) match
    what is remembered there are not read, and new hashes are added (written atomically,
    merged with what other workers added meanwhile). Says so in `status` before reading more
    than SAY_BYTES."""
    memory_file = None if cache_dir is None else Path(cache_dir) / FILE_NAME
    memory = {} if memory_file is None else _read(memory_file)
    out: dict[Path, str] = {}
    stale: list[tuple[Path, list[int]]] = []
    for path in paths:
        stamp = _stamp(os.stat(path))
        known = memory.get(os.path.abspath(path))
        if isinstance(known, list) and len(known) == 4 and known[:3] == stamp:
            out[path] = str(known[3])
        else:
            stale.append((path, stamp))
    size = sum(stamp[0] for _, stamp in stale)
    if size > SAY_BYTES:
        status(f"reading {len(stale):,} audio files ({size / 1e9:.1f} GB) once to identify the "
               "dataset by content (remembered by file times from then on)")
    fresh: dict[str, list] = {}
    for path, stamp in stale:
        digest = file_sha256(Path(path))
        if _stamp(os.stat(path)) == stamp:  # not rewritten while it was read
            fresh[os.path.abspath(path)] = [*stamp, digest]
        out[path] = digest
    if memory_file is not None and fresh:
        merged = {**_read(memory_file), **fresh}
        write_text_atomic(memory_file, json.dumps({"tool": TOOL, "format": FORMAT,
                                                  "files": merged}))
    return out


def is_hash_memory(path: Path) -> bool:
    """True for a file `file_hashes` wrote (its name and marker): `asc-auto clean` removes it."""
    if Path(path).name != FILE_NAME or not Path(path).is_file():
        return False
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("tool") == TOOL
