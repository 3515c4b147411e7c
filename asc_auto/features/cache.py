"""The on-disk feature cache: features of every clip computed once per dataset and settings.

Every trial of a search reads the same features, so decoding 13k stereo 48 kHz files must happen
once. A cache entry is `cache_root/<kind>-<key[:16]>/` holding `x.npy` (float16, N x planes x F x
T), `y.npy` (int64 class indices) and `meta.json` (filenames, labels, config, key, shapes, and
`"complete": true`, written last). The key is sha256 of the dataset fingerprint (CSV bytes plus
size and mtime of every listed file), the frontend's `key_dict()` and CACHE_FORMAT_VERSION, so a
changed setting, a changed CSV or a touched audio file gives a new entry.

An entry is built in a temporary sibling directory and renamed into place (`atomic_dir`), so an
interrupted build leaves nothing under the final name; an entry that fails validation (no
complete marker, wrong key, wrong shapes, unreadable arrays, arrays whose sha256 differs from the
one meta.json recorded when they were written) is ignored and rebuilt. A cache hit
memory-maps x.npy and decodes no audio.

Decoding and resampling dominate the cost (per 10 s stereo 48 kHz clip on one core: ~12 ms
decode, ~8 ms downmix + resample to 16 kHz, ~10 ms log-mel). A small thread pool decodes and
resamples clips ahead (soundfile and torch release the GIL) while the main thread computes
log-mels in batches, and torch's intra-op threads are set to 1 during the build: on the 2-core
development machine, shared with other jobs, intra-op threading made a single resample call 5x
slower (OpenMP threads waiting on busy cores), while clip-level threads scale. Measured there on
150 clips of 10 s: this thread pool 36-66 clips/s, a 2-worker DataLoader 54-61 clips/s (noisy,
shared machine: a tie); threads are simpler and keep DataError intact (a DataLoader worker
re-raises it as RuntimeError).

With a GPU (`device="cuda"`) the frontend runs there in batches of 64 clips while up to 16 loader
threads (one per core) decode and resample: the main thread only launches kernels, so decoding
is what limits. Either way the build streams: at most one batch plus a look-ahead of two batches
of waveforms is held decoded, each batch of features goes to the memory-mapped x.npy as soon as
it is computed, so a 13,370-clip TAU fold (1.7 GB of float16 log-mels) is never held in memory,
on the host or on the device.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from asc_auto.data.tau import Clip, TauDataset, dataset_fingerprint
from asc_auto.errors import AscError
from asc_auto.features.config import FeatureConfig
from asc_auto.features.frontends import load_waveform, make_frontend
from asc_auto.io import atomic_dir, build_lock, checksums, damaged_files
from asc_auto.progress import progress_bar

# Bump when the stored layout or the feature computation changes, to invalidate old caches.
# 2: meta.json holds the sha256 of x.npy and y.npy, verified on every load.
CACHE_FORMAT_VERSION = 2

X_FILE, Y_FILE, META_FILE = "x.npy", "y.npy", "meta.json"


@dataclass(frozen=True, eq=False)  # arrays have no truth value: compare by identity
class FeatureSet:
    """Features of every train+evaluate clip; `x` is a read-only memory map of float16."""

    x: np.ndarray
    y: np.ndarray
    filenames: tuple[str, ...]
    labels: tuple[str, ...]
    key: str
    index: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (len(self.x) == len(self.y) == len(self.filenames)):
            raise ValueError(
                f"x, y, filenames disagree: {len(self.x)}, {len(self.y)}, {len(self.filenames)}"
            )
        index = {name: i for i, name in enumerate(self.filenames)}
        if len(index) != len(self.filenames):
            raise ValueError("duplicate filenames in a FeatureSet")
        object.__setattr__(self, "index", index)

    def __len__(self) -> int:
        return len(self.filenames)

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def select(self, filenames: Sequence[str], dtype: torch.dtype = torch.float32
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (as `dtype`) and int64 labels of these clips, in this order."""
        rows = np.empty(len(filenames), dtype=np.int64)
        for i, name in enumerate(filenames):
            try:
                rows[i] = self.index[name]
            except KeyError:
                raise AscError(
                    f"clip {name!r} has no cached features (feature set {self.key[:16]}); "
                    "fix: use clips of the dataset the features were built from"
                ) from None
        x = torch.from_numpy(np.asarray(self.x[rows])).to(dtype)
        y = torch.from_numpy(np.asarray(self.y[rows], dtype=np.int64))
        return x, y


def cache_key(ds: TauDataset, cfg: FeatureConfig, hash_dir: Path | None = None,
              status: Callable[[str], None] = lambda msg: None) -> str:
    """sha256 over the dataset fingerprint (its files' content; their hashes remembered under
    `hash_dir`), the frontend settings and the cache format."""
    payload = {
        "dataset": dataset_fingerprint(ds, hash_dir, status),
        "frontend": cfg.key_dict(),
        "format": CACHE_FORMAT_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _entry_dir(cache_root: Path, kind: str, key: str) -> Path:
    return Path(cache_root) / f"{kind}-{key[:16]}"


def feature_cache_dir(cache_root: Path, ds: TauDataset, cfg: FeatureConfig,
                      hash_dir: Path | None = None) -> Path:
    """Where the features of this dataset and settings live (built or not)."""
    return _entry_dir(cache_root, cfg.kind, cache_key(ds, cfg, hash_dir))


def build_features(
    ds: TauDataset,
    cfg: FeatureConfig,
    cache_root: Path,
    progress: bool = True,
    device: str = "cpu",
    batch_size: int | None = None,
    status: Callable[[str], None] = lambda msg: None,
    hash_dir: Path | None = None,
) -> FeatureSet:
    """Return the features of all train+evaluate clips, computing them only on a cache miss.

    An entry whose arrays no longer match the checksums written with them (a disk fault, an
    overwritten file) is rebuilt, with a status line, never used. `batch_size`: clips per
    frontend call (None: 64 on CUDA, 16 on the CPU).
    """
    if batch_size is None:
        batch_size = 64 if _on_cuda(device) else 16
    key = cache_key(ds, cfg, hash_dir, status)
    final = _entry_dir(cache_root, cfg.kind, key)
    clips = ds.all_clips()
    cached = _load_entry(final, key, cfg, clips, ds.labels)
    if cached is not None:
        return cached
    with build_lock(final, status):  # other workers wait, then load what this one built
        cached = _load_entry(final, key, cfg, clips, ds.labels)
        if cached is not None:
            return cached
        return _build(final, key, ds, cfg, clips, progress, device, batch_size, status)


def _build(final: Path, key: str, ds: TauDataset, cfg: FeatureConfig, clips: Sequence[Clip],
           progress: bool, device: str, batch_size: int, status: Callable[[str], None],
           ) -> FeatureSet:
    """Build (or rebuild a damaged) entry; the caller holds its build lock."""
    damage = damaged_files(final, META_FILE)
    if damage:
        status(f"{final}: {', '.join(damage)} changed since it was written (checksum); "
               "rebuilding the features")
    try:
        _write_entry(final, key, ds, cfg, clips, progress, device, batch_size)
    except OSError:
        # Another process may have renamed the same entry into place first; use it if valid.
        raced = _load_entry(final, key, cfg, clips, ds.labels)
        if raced is None:
            raise
        return raced
    loaded = _load_entry(final, key, cfg, clips, ds.labels)
    if loaded is None:  # pragma: no cover - would mean the writer below is broken
        raise AscError(f"{final}: freshly built feature cache failed validation")
    return loaded


def _write_entry(
    final: Path,
    key: str,
    ds: TauDataset,
    cfg: FeatureConfig,
    clips: Sequence[Clip],
    progress: bool,
    device: str,
    batch_size: int,
) -> None:
    """Compute every clip's features into a temp dir that becomes `final` only when complete."""
    shape = (len(clips), *cfg.feature_shape)
    frontend = make_frontend(cfg).to(device).eval()
    y = np.array([ds.label_index(clip.label) for clip in clips], dtype=np.int64)
    with atomic_dir(final) as tmp:
        x = np.lib.format.open_memmap(tmp / X_FILE, mode="w+", dtype=np.float16, shape=shape)
        with (
            _progress(progress) as bar,
            torch.inference_mode(),
            _single_threaded_torch(),
            contextlib.closing(_batched_waveforms(ds, clips, cfg, batch_size,
                                                  _loader_threads(device))) as batches,
        ):
            task = bar.add_task(f"{cfg.kind} features", total=len(clips))
            for start, waves in batches:
                feats = frontend(waves.to(device))
                _store(x, start, feats)
                bar.advance(task, len(waves))
        x.flush()
        del x
        np.save(tmp / Y_FILE, y)
        meta: dict[str, Any] = {
            "sha256": checksums(tmp, (X_FILE, Y_FILE)),
            "key": key,
            "format": CACHE_FORMAT_VERSION,
            "config": cfg.key_dict(),
            "filenames": [clip.filename for clip in clips],
            "labels": list(ds.labels),
            "x_shape": list(shape),
            "x_dtype": "float16",
            "y_shape": [len(clips)],
            "complete": True,  # last key of the last file written: readers require it
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1))


def _store(x: np.ndarray, start: int, feats: torch.Tensor) -> None:
    """Write one batch into the memory map; non-finite features would poison training."""
    block = feats.float().cpu().numpy()
    if not np.isfinite(block).all():  # pragma: no cover - log floor makes this unreachable
        raise AscError(f"non-finite features in clips {start}..{start + len(block) - 1}")
    x[start : start + len(block)] = block.astype(np.float16)


def _load_entry(
    folder: Path,
    key: str,
    cfg: FeatureConfig,
    clips: Sequence[Clip],
    labels: tuple[str, ...],
) -> FeatureSet | None:
    """The cache entry if it is complete and matches what we expect, else None."""
    try:
        meta = json.loads((folder / META_FILE).read_text())
        n = len(clips)
        expected = [n, *cfg.feature_shape]
        if meta.get("complete") is not True or meta.get("key") != key:
            return None
        if meta.get("x_shape") != expected or meta.get("filenames") != [c.filename for c in clips]:
            return None
        if tuple(meta.get("labels", ())) != labels:
            return None
        x = np.load(folder / X_FILE, mmap_mode="r")
        y = np.load(folder / Y_FILE)
        if x.dtype != np.float16 or list(x.shape) != expected:
            return None
        if y.dtype != np.int64 or y.shape != (n,):
            return None
        if n and not 0 <= y.min() <= y.max() < len(labels):
            return None
        if "sha256" not in meta or damaged_files(folder, META_FILE, meta):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return FeatureSet(x=x, y=y, filenames=tuple(meta["filenames"]), labels=labels, key=key)


def _load_clip(ds: TauDataset, clip: Clip, cfg: FeatureConfig) -> torch.Tensor:
    """One clip's waveform; read_audio refuses a file with NaN/inf anywhere, as `data check`."""
    return load_waveform(ds.path(clip), cfg)


def _on_cuda(device: str) -> bool:
    return torch.device(device).type == "cuda"


def _loader_threads(device: str = "cpu") -> int:
    """Decoding threads: one per core, capped at 4 when the main thread computes the features
    on the CPU (it needs a share too), at 16 when the GPU does."""
    return max(1, min(16 if _on_cuda(device) else 4, os.cpu_count() or 1))


@contextlib.contextmanager
def _single_threaded_torch() -> Iterator[None]:
    """Parallelism comes from the loader threads; intra-op threads would only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _batched_waveforms(
    ds: TauDataset, clips: Sequence[Clip], cfg: FeatureConfig, batch_size: int,
    threads: int | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """(start index, stacked waveforms) per batch; decoding runs ahead in a bounded thread pool."""
    ahead = 2 * batch_size  # bounded look-ahead: never holds more than this many clips decoded
    workers = _loader_threads() if threads is None else threads
    with ThreadPoolExecutor(workers, thread_name_prefix="asc-audio") as pool:
        pending: deque[Future[torch.Tensor]] = deque()
        submitted = 0
        try:
            for start in range(0, len(clips), batch_size):
                stop = min(start + batch_size, len(clips))
                while submitted < min(stop + ahead, len(clips)):
                    pending.append(pool.submit(_load_clip, ds, clips[submitted], cfg))
                    submitted += 1
                yield start, torch.stack([pending.popleft().result() for _ in range(start, stop)])
        finally:
            for fut in pending:
                fut.cancel()


def _progress(enabled: bool) -> Progress:
    return progress_bar(enabled, unit="clips", elapsed=True, remaining=True)
