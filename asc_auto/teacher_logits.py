"""Stored teacher outputs (`--teacher-logits FILE`): distil from any model, run anywhere.

The format is a NumPy .npz archive, read with `np.load(allow_pickle=False)` (never pickle):

- `filenames` (N,), str: clip names exactly as the dataset's CSVs write them (`audio/a-1-0.wav`)
- `logits` (N, C), float: the teacher's scores before softmax, C = the dataset's classes
- `embeddings` (N, D), float, optional: each clip's teacher embedding (the KD loss's alpha term)
- `labels` (C,), str, optional: class names in column order; when given they must be meta.csv's
- `heldout_filenames` (M,) str and `heldout_logits` (M, C) float, optional: each clip's outputs
  from a model that did not train on it (`asc-auto teacher-logits`); when they cover a search's
  validation clips, the teacher's validation accuracy is theirs (honest), while the students
  still learn from `logits`

Columns follow meta.csv's class order (`asc-auto data check` prints it). Every clip of
fold1_train must be there (the training clips of both search and retrain); evaluate-fold clips are
optional and only used to report the teacher's accuracy. Any problem is one line naming the file
and the first offending clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asc_auto.errors import DataError

FIX = "write the npz as docs/GUIDE.md, 'Stored teacher outputs', says"


def write_teacher_logits(path: Path, filenames: Sequence[str], logits: np.ndarray,
                         embeddings: np.ndarray | None = None,
                         labels: Sequence[str] | None = None,
                         heldout: tuple[Sequence[str], np.ndarray] | None = None) -> None:
    """Write a file in the format above (atomically); a helper for users and tests.
    `heldout`: (filenames, logits) of outputs from models that did not train on those clips."""
    from asc_auto.io import atomic_path

    arrays: dict[str, np.ndarray] = {"filenames": np.asarray(list(filenames), dtype=str),
                                     "logits": np.asarray(logits, dtype=np.float32)}
    if embeddings is not None:
        arrays["embeddings"] = np.asarray(embeddings, dtype=np.float32)
    if labels is not None:
        arrays["labels"] = np.asarray(list(labels), dtype=str)
    if heldout is not None:
        arrays["heldout_filenames"] = np.asarray(list(heldout[0]), dtype=str)
        arrays["heldout_logits"] = np.asarray(heldout[1], dtype=np.float32)
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def read_teacher_logits(path: Path, labels: Sequence[str], required: Sequence[str]
                        ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray | None]:
    """(filenames, logits (N, C) float32, embeddings (N, D) float32 or None), checked against
    the dataset's `labels` and the clips that must be there (`required`, in order)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as exc:
        why = "holds Python objects (pickle), which are never loaded" if "pickle" in str(exc) \
            else f"not a readable .npz ({exc})"
        raise DataError(path, why, FIX) from None
    for name in ("filenames", "logits"):
        if name not in arrays:
            raise DataError(path, f"has no '{name}' array (it has {', '.join(arrays) or 'none'})",
                            FIX)
    files = _names(path, arrays["filenames"], "filenames")
    logits = _matrix(path, arrays["logits"], "logits", files)
    if "labels" in arrays and tuple(str(x) for x in arrays["labels"]) != tuple(labels):
        raise DataError(path, f"columns are {', '.join(map(str, arrays['labels']))}, the dataset "
                        f"has {', '.join(labels)} (first clip {files[0] if files else '-'})",
                        "write one column per class of meta.csv, in its order")
    if logits.shape[1] != len(labels):
        raise DataError(path, f"logits have {logits.shape[1]} classes, the dataset "
                        f"{len(labels)} ({', '.join(labels)}); first clip "
                        f"{files[0] if files else '-'}",
                        "one column per class, in meta.csv's order")
    embeds = _matrix(path, arrays["embeddings"], "embeddings", files) \
        if "embeddings" in arrays else None
    index = set(files)
    missing = [f for f in required if f not in index]
    if missing:
        raise DataError(path, f"no teacher outputs for clip {missing[0]} ({len(missing)} of the "
                        f"{len(required)} fold1_train clips missing)",
                        "give every fold1_train clip a row (names as in the dataset's CSVs)")
    return files, logits, embeds


def _names(path: Path, names: np.ndarray, field: str) -> tuple[str, ...]:
    """A 1-D string array of clip names, each once, or a DataError naming the first repeat."""
    if names.ndim != 1 or names.dtype.kind != "U":
        raise DataError(path, f"'{field}' must be a 1-D string array, got {names.dtype} "
                        f"{names.shape}", "save it with np.asarray(names, dtype=str)")
    files = tuple(str(n) for n in names)
    seen: set[str] = set()
    for name in files:
        if name in seen:
            raise DataError(path, f"clip {name!r} appears twice in '{field}'",
                            "keep one row per clip")
        seen.add(name)
    return files


def _matrix(path: Path, value: np.ndarray, name: str, files: tuple[str, ...]) -> np.ndarray:
    """A (len(files), K) finite float32 matrix, or a DataError naming the first bad clip."""
    if value.dtype.kind not in "fiu":
        raise DataError(path, f"'{name}' must be numbers, got {value.dtype}", FIX)
    rows = len(value) if value.ndim else 0
    if value.ndim != 2 or rows != len(files):
        if value.ndim == 2 and rows < len(files):
            where = f"first clip without a row: {files[rows]}"
        elif value.ndim == 2:
            where = f"rows left over after the last clip, {files[-1] if files else '-'}"
        else:
            where = f"first clip {files[0] if files else '-'}"
        raise DataError(path, f"'{name}' is {value.shape}, expected ({len(files)}, K): one row "
                        f"per clip of 'filenames' ({where})", FIX)
    value = value.astype(np.float32)
    bad = ~np.isfinite(value).all(axis=1)
    if bad.any():
        raise DataError(path, f"'{name}' of clip {files[int(np.argmax(bad))]} is NaN or "
                        "infinite", "write finite values")
    return value


def read_heldout_logits(path: Path, n_classes: int
                        ) -> tuple[tuple[str, ...], np.ndarray] | None:
    """The file's held-out outputs (`heldout_filenames`, `heldout_logits`), checked as the main
    ones are; None when it has none. Read after `read_teacher_logits` accepted the file."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        if "heldout_logits" not in z.files and "heldout_filenames" not in z.files:
            return None
        if "heldout_logits" not in z.files or "heldout_filenames" not in z.files:
            raise DataError(path, "has one of 'heldout_filenames' and 'heldout_logits' without "
                            "the other", "write both or neither")
        names, value = z["heldout_filenames"], z["heldout_logits"]
    files = _names(path, names, "heldout_filenames")
    logits = _matrix(path, value, "heldout_logits", files)
    if logits.shape[1] != n_classes:
        raise DataError(path, f"heldout_logits have {logits.shape[1]} classes, the dataset "
                        f"{n_classes}", "one column per class, in meta.csv's order")
    return files, logits
