"""Read and validate a dataset in the TAU Urban Acoustic Scenes layout (DCASE2020 Task 1).

Layout: `meta.csv`, `audio/*.wav`, `evaluation_setup/fold1_{train,evaluate,test}.csv`, all
tab-separated with a header line. `load_dataset` only parses the CSV files (every command calls
it, so it must stay fast); `check_dataset` also validates every audio file as search will read
it. Every problem is a DataError naming the file, the 1-based row (the header is row 1) and the
fix.
"""

from __future__ import annotations

import hashlib
import os
import re
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rich.progress import Progress

from asc_auto.data.audio import AudioInfo, scan_audio
from asc_auto.data.filehash import file_hashes
from asc_auto.errors import DataError
from asc_auto.progress import progress_bar

META = "meta.csv"
SETUP = "evaluation_setup"
TRAIN_CSV = f"{SETUP}/fold1_train.csv"
EVALUATE_CSV = f"{SETUP}/fold1_evaluate.csv"
TEST_CSV = f"{SETUP}/fold1_test.csv"
META_HEADER = ("filename", "scene_label", "identifier", "source_label")
FOLD_HEADER = ("filename", "scene_label")
TEST_HEADER = ("filename",)

_FIX_ROOT = (
    "point --data at the dataset root (the folder holding meta.csv, audio/, evaluation_setup/)"
)
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Clip:
    """One labelled recording; `identifier` (city-location) groups clips of one recording."""

    filename: str
    label: str
    identifier: str


@dataclass(frozen=True)
class TauDataset:
    """The parsed dataset: labels from meta.csv, the fold-1 splits, paths relative to `root`."""

    root: Path
    labels: tuple[str, ...]
    train: tuple[Clip, ...]
    evaluate: tuple[Clip, ...]
    test: tuple[str, ...]

    def label_index(self, label: str) -> int:
        """Class index of a label (position in the sorted label tuple)."""
        try:
            return self.labels.index(label)
        except ValueError:
            known = ", ".join(self.labels)
            raise KeyError(f"unknown label {label!r}; labels are {known}") from None

    def path(self, clip_or_filename: Clip | str) -> Path:
        """Absolute location of a clip's audio file."""
        name = clip_or_filename.filename if isinstance(clip_or_filename, Clip) else clip_or_filename
        return self.root / name

    def all_clips(self) -> tuple[Clip, ...]:
        """Train then evaluate clips, each file once."""
        seen: set[str] = set()
        out = []
        for clip in (*self.train, *self.evaluate):
            if clip.filename not in seen:
                seen.add(clip.filename)
                out.append(clip)
        return tuple(out)

    def clip_paths(self) -> list[Path]:
        """Every labelled clip's file, each once: what the data-settled "auto" choices (clip
        window, teacher pool and crops) read the WAV headers of, no labels involved."""
        return [self.path(clip) for clip in self.all_clips()]


@dataclass(frozen=True)
class DatasetSummary:
    """What `check_dataset` found: counts per split and class, and the audio format."""

    root: Path
    labels: tuple[str, ...]
    clips_per_split: dict[str, int]
    class_counts: dict[str, dict[str, int]]  # split (train, evaluate) -> label -> clips
    sample_rates: tuple[int, ...]
    channels: tuple[int, ...]
    duration_min_s: float
    duration_mean_s: float
    duration_max_s: float
    n_identifiers: int

def load_dataset(root: Path) -> TauDataset:
    """Parse and validate the CSV files of a TAU-layout dataset without decoding any audio."""
    return _load(Path(root))[0]


def check_dataset(root: Path, progress: bool = True) -> DatasetSummary:
    """Validate the CSVs and every listed audio file with `scan_audio`, which shares its checks
    with `read_audio` (what search decodes with: header, truncation, NaN/inf anywhere), so check
    and search accept the same datasets. Mixed sample rates are reported as a fact, not refused:
    the frontends resample every clip to their own rate."""
    ds, listed_at = _load(Path(root))
    files = list(listed_at)
    infos: dict[str, AudioInfo] = {}
    with _progress(progress) as bar:
        task = bar.add_task("checking audio", total=len(files))
        for name in files:
            try:
                infos[name] = scan_audio(ds.path(name))
            except DataError as exc:
                raise DataError(
                    exc.file, f"{exc.problem} ({_where(ds, listed_at[name])})", exc.fix
                ) from None
            bar.advance(task)

    rates = Counter(info.sample_rate for info in infos.values())
    durations = [infos[name].duration_s for name in files]
    return DatasetSummary(
        root=ds.root,
        labels=ds.labels,
        clips_per_split={
            "train": len(ds.train),
            "evaluate": len(ds.evaluate),
            "test": len(ds.test),
        },
        class_counts={
            "train": _count(ds.train, ds.labels),
            "evaluate": _count(ds.evaluate, ds.labels),
        },
        sample_rates=tuple(sorted(rates)),
        channels=tuple(sorted({info.channels for info in infos.values()})),
        duration_min_s=min(durations),
        duration_mean_s=statistics.fmean(durations),
        duration_max_s=max(durations),
        n_identifiers=len({clip.identifier for clip in ds.all_clips()}),
    )


def _csv_digest(ds: TauDataset) -> hashlib._Hash:
    digest = hashlib.sha256()
    for rel in (META, TRAIN_CSV, EVALUATE_CSV, TEST_CSV):
        csv = ds.root / rel
        if csv.is_file():
            digest.update(f"{rel}\0".encode())
            digest.update(csv.read_bytes())
            digest.update(b"\0")
    return digest


def _listed(ds: TauDataset) -> list[str]:
    return sorted({clip.filename for clip in ds.all_clips()} | set(ds.test))


def dataset_fingerprint(ds: TauDataset, cache_dir: Path | None = None,
                        status: Callable[[str], None] = lambda msg: None) -> str:
    """sha256 of the CSV files plus (name, content sha256) of every listed file: what a study
    and every cache built from the data are keyed by. Content, not times or the folder, so a
    copied or re-provisioned dataset is the same dataset and an edited file is not; each file's
    hash is remembered by its stat under `cache_dir` (data/filehash.py), so only the first look
    reads the audio."""
    digest = _csv_digest(ds)
    names = _listed(ds)
    hashes = file_hashes([ds.path(n) for n in names], cache_dir, status)
    for name in names:
        digest.update(f"{name}\0{hashes[ds.path(name)]}\n".encode())
    return digest.hexdigest()


def stat_fingerprint(ds: TauDataset) -> str:
    """The fingerprint studies made before content hashing recorded: the CSV files plus (name,
    size, mtime) of every listed file. Only to check such a study's data on resume."""
    digest = _csv_digest(ds)
    for name in _listed(ds):
        st = os.stat(ds.path(name))
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# --- parsing -------------------------------------------------------------------------------


def _load(root: Path) -> tuple[TauDataset, dict[str, tuple[str, int]]]:
    """The dataset plus, for every listed file, the (csv, row) that lists it first."""
    if not root.is_dir():
        raise DataError(root, "dataset folder does not exist", _FIX_ROOT)
    disk = _DiskIndex(root)
    meta_rows = _read_table(root, META, META_HEADER)
    if not meta_rows:
        raise DataError(root / META, "no data rows", "list every audio file in meta.csv", row=1)
    meta: dict[str, tuple[str, str, int]] = {}
    for row, (name, label, identifier, _source) in meta_rows:
        _check_name(root, META, row, name)
        if name in meta:
            raise DataError(
                root / META,
                f"duplicate row for {name} (first at row {meta[name][2]})",
                "remove the duplicate row",
                row=row,
            )
        meta[name] = (label, identifier, row)
    labels = tuple(sorted({label for label, _, _ in meta.values()}))

    listed_at: dict[str, tuple[str, int]] = {}

    def split(rel: str, header: tuple[str, ...], optional: bool = False) -> list[tuple[int, str]]:
        rows = _read_table(root, rel, header, optional=optional)
        seen: dict[str, int] = {}
        out = []
        for row, cells in rows:
            name = cells[0]
            _check_name(root, rel, row, name)
            if name in seen:
                raise DataError(
                    root / rel,
                    f"duplicate row for {name} (first at row {seen[name]})",
                    "remove the duplicate row",
                    row=row,
                )
            seen[name] = row
            if name not in meta:
                raise DataError(
                    root / rel,
                    f"{name} is not listed in {META}",
                    f"add it to {META} or remove this row",
                    row=row,
                )
            if len(cells) > 1:
                _check_label(root, rel, row, name, cells[1], meta, labels)
            if not disk.exists(name):
                raise DataError(
                    root / rel,
                    f"{name} does not exist on disk",
                    "restore the file or remove this row",
                    row=row,
                )
            listed_at.setdefault(name, (rel, row))
            out.append((row, name))
        return out

    def clips(rel: str) -> tuple[tuple[Clip, ...], dict[str, int]]:
        rows = split(rel, FOLD_HEADER)
        if not rows:
            raise DataError(
                root / rel,
                "the split is empty (header only)",
                "list at least one clip per class in it",
                row=1,
            )
        return tuple(Clip(name, meta[name][0], meta[name][1]) for _, name in rows), {
            name: row for row, name in rows
        }

    train, train_rows = clips(TRAIN_CSV)
    evaluate, evaluate_rows = clips(EVALUATE_CSV)
    for name, row in evaluate_rows.items():
        if name in train_rows:
            raise DataError(
                root / EVALUATE_CSV,
                f"{name} is also in {TRAIN_CSV} row "
                f"{train_rows[name]}: train and evaluate must not overlap",
                "remove it from one of the two files",
                row=row,
            )
    test = tuple(name for _, name in split(TEST_CSV, TEST_HEADER, optional=True))
    ds = TauDataset(root=root, labels=labels, train=train, evaluate=evaluate, test=test)
    return ds, listed_at


def _read_table(
    root: Path, rel: str, header: tuple[str, ...], optional: bool = False
) -> list[tuple[int, list[str]]]:
    """Rows of a tab-separated file as (1-based row, cells); blank lines are skipped."""
    path = root / rel
    if not path.is_file():
        if optional:
            return []
        raise DataError(path, "missing file", _FIX_ROOT)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(path, f"cannot read as UTF-8 text ({exc})", "save it as UTF-8") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataError(
            path,
            "empty file (no header line)",
            f"start it with the header {_tabbed(header)}",
            row=1,
        )
    got = tuple(cell.strip() for cell in lines[0].split("\t"))
    if got != header:
        comma = "\t" not in lines[0] and "," in lines[0]
        hint = "; the file looks comma-separated" if comma else ""
        raise DataError(
            path,
            f"header is {_tabbed(got)}, expected {_tabbed(header)}{hint}",
            "use the TAU header, tab-separated",
            row=1,
        )
    rows = []
    for index, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [cell.strip() for cell in line.split("\t")]
        if len(cells) != len(header):
            raise DataError(
                path,
                f"expected {len(header)} tab-separated columns, found {len(cells)}",
                f"write the row as {_tabbed(header)}",
                row=index,
            )
        for column, cell in zip(header, cells, strict=True):
            if not cell:
                raise DataError(path, f"empty {column}", f"fill in the {column}", row=index)
        rows.append((index, cells))
    return rows


def _check_name(root: Path, rel: str, row: int, name: str) -> None:
    """Listed paths must stay inside the dataset root (no absolute paths, no '..')."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or _DRIVE.match(name) or ".." in parts:
        raise DataError(
            root / rel,
            f"path {name!r} escapes the dataset root",
            "list audio paths relative to the root, e.g. audio/x.wav",
            row=row,
        )


def _check_label(
    root: Path,
    rel: str,
    row: int,
    name: str,
    label: str,
    meta: dict[str, tuple[str, str, int]],
    labels: tuple[str, ...],
) -> None:
    if label not in labels:
        raise DataError(
            root / rel,
            f"unknown label {label!r} (meta.csv has {', '.join(labels)})",
            "use one of meta.csv's labels",
            row=row,
        )
    meta_label, _, meta_row = meta[name]
    if label != meta_label:
        raise DataError(
            root / rel,
            f"label {label!r} of {name} disagrees with {META} row {meta_row} ({meta_label!r})",
            "make the two labels agree",
            row=row,
        )


class _DiskIndex:
    """Existence checks through one directory listing per folder (13k stat calls are slower)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.listings: dict[str, set[str]] = {}

    def exists(self, name: str) -> bool:
        path = self.root / name
        parent = str(path.parent)
        if parent not in self.listings:
            try:
                self.listings[parent] = {e.name for e in os.scandir(parent) if not e.is_dir()}
            except OSError:
                self.listings[parent] = set()
        return path.name in self.listings[parent]


def _where(ds: TauDataset, listed: tuple[str, int]) -> str:
    return f"listed in {ds.root / listed[0]}, row {listed[1]}"


def _count(clips: Sequence[Clip], labels: Sequence[str]) -> dict[str, int]:
    counts = Counter(clip.label for clip in clips)
    return {label: counts[label] for label in labels}


def _tabbed(cells: Sequence[str]) -> str:
    return "'" + "<TAB>".join(cells) + "'"


def _progress(enabled: bool) -> Progress:
    return progress_bar(enabled, remaining=True)
