"""Keep glibc's malloc from handing large freed blocks back to the kernel between training steps.

Why: glibc serves every allocation above its mmap threshold (32 MB at most) with fresh mmap()
pages and unmaps them on free, so each training step's activations (the paper student at batch
32: about 105 MB per conv output) are page-faulted in and zeroed by the kernel again, step after
step. Measured with `benchmarks/allocator.py --steps 15 --repeats 2` (paper student, batch 32,
fresh process per arm) on the 2-core EPYC development machine beside a running search
(2026-12-01): glibc as it comes 6.7 / 6.8 clips/s, 19 s of the 66 s CPU time in the kernel, 5.6-5.8
M minor page faults per 15 steps; with `mallopt(M_MMAP_MAX, 0)` and a 1 GiB trim threshold 9.4 /
10.6 clips/s, no kernel time, 0-13 k faults (jemalloc's defaults through LD_PRELOAD, tried by
hand: no better than glibc's).

The cost: freed memory stays in the process for reuse instead of going back to the kernel at
once (up to the trim threshold above the heap's top), the trade every caching allocator makes
(PyTorch's CUDA allocator does the same on the GPU): a 2-trial demo search peaked at 3.36 GB
resident against 2.39 GB (docs/BENCHMARKS.md). The threshold has to hold one step's freed
activations, or the heap is trimmed and faulted in again each step. Not applied when the user
tuned malloc already (glibc's MALLOC_* variables, another allocator in LD_PRELOAD) or set
ASC_AUTO_MALLOC=default, and a no-op off glibc (macOS, Windows, musl).
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30  # bytes of free heap top kept before glibc returns it to the kernel
USER_TUNING = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
               "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")
OPT_OUT = "ASC_AUTO_MALLOC"  # "default": leave malloc as it is

_done: str | None = None


def keep_freed_memory() -> str:
    """Apply the settings once per process (training calls it); return what was done, for
    the tests and benchmarks/allocator.py: "tuned", or why it was left alone."""
    global _done
    if _done is None:
        _done = _apply()
    return _done


def on_glibc() -> bool:
    """Whether this process runs on glibc, the only malloc these settings are for."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _apply() -> str:
    if os.environ.get(OPT_OUT, "").strip().lower() == "default":
        return f"left alone: {OPT_OUT}=default"
    tuned = [name for name in USER_TUNING if name in os.environ]
    if tuned:
        return f"left alone: {tuned[0]} is set"
    if "malloc" in os.environ.get("LD_PRELOAD", ""):  # jemalloc, tcmalloc, mimalloc ...
        return "left alone: another allocator is preloaded"
    if not on_glibc():
        return "left alone: not glibc"
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD,
                                                                TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):
        return "left alone: mallopt not found"
    return "tuned" if ok else "left alone: mallopt refused"
