"""Which process wrote something, and whether it still runs: lets a run clean up after a dead one
(its temp folders, its RUNNING trials) without ever touching a live worker's work."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _start_time(pid: int) -> int | None:
    """Kernel start time of `pid` (clock ticks since boot); tells a reused pid from the original."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host (whoever owns it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def this_worker() -> dict[str, Any]:
    """host, pid and start time of this process: recorded with a trial it runs."""
    pid = os.getpid()
    return {"host": HOST, "pid": pid, "start": _start_time(pid)}


def worker_dead(worker: Any) -> bool:
    """True only when `worker` (from this_worker) ran on this host and that process is gone.

    A worker of another host, or a record that cannot be read, is never called dead here:
    Optuna's heartbeat covers those after its grace period.
    """
    if not isinstance(worker, dict) or worker.get("host") != HOST:
        return False
    try:
        pid = int(worker["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if not pid_alive(pid):
        return True
    start = worker.get("start")
    return start is not None and _start_time(pid) not in (None, start)  # pid reused


def float_setting() -> dict[str, Any]:
    """This process's CPU threads and torch's kernel level ("AVX2", "AVX512", ...): what orders
    a training's float sums, so the same seed under another setting ends elsewhere (docs/GUIDE.md
    "Same seed, other threads"). Recorded with each trial and each retrained seed."""
    import torch

    return {"threads": torch.get_num_threads(), "cpu": torch.backends.cpu.get_cpu_capability()}


def cpu_share(processes: int) -> int:
    """CPU threads for each of `processes` processes that split this machine's cores."""
    return max(1, (os.cpu_count() or 1) // processes)


def take_slot(slots: Any) -> int:
    """This pool process's index (0, 1, ...) from a shared `multiprocessing.Value` counter:
    which GPU it takes (`train.worker_device`), the same way in every kind of pool."""
    with slots.get_lock():
        index = int(slots.value)
        slots.value += 1
    return index

