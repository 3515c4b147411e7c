"""Trials per hour with `search --jobs N`: prints numbers, asserts nothing.

    .venv/bin/python benchmarks/workers.py [--jobs 1 2] [--trials 8] [--epochs 2] [--device auto]

Each N runs `asc-auto search --technique kd --jobs N` on the built-in demo data into a fresh study
(the features and the teacher are built once beforehand and shared through the cache, so only
trials are timed), with the same trial count, and prints wall time, trials per hour and, on a
GPU, its mean utilisation (asc_auto/gpuinfo.py) side by side, measured in one run on this
machine, then the N with the most trials per hour. On one GPU every N > 1 puts N workers on it.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from asc_auto.console import run_script
from asc_auto.gpuinfo import UtilisationSampler, device_name
from asc_auto.train import resolve_device


def _search(home: Path, study: str, trials: int, epochs: int, jobs: int, device: str
            ) -> tuple[float, str]:
    """Wall seconds of one search and the GPU's mean utilisation meanwhile ('n/a' on CPU)."""
    cmd = [sys.executable, "-m", "asc_auto.cli", "search", "--technique", "kd", "--study", study,
           "--trials", str(trials), "--epochs", str(epochs), "--jobs", str(jobs),
           "--home", str(home), "--device", device]
    t0 = time.perf_counter()
    with UtilisationSampler(resolve_device(device)) as util:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, util.describe()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--home", type=Path, default=None,
                        help="reuse a home with the demo data and caches [default: a temp dir]")
    args = parser.parse_args()
    console = Console(width=120)  # the tables stay whole in logs and pipes
    home = args.home or Path(tempfile.mkdtemp(prefix="asc-workers-"))
    device = resolve_device(args.device)
    console.print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                  f"device {device_name(device)}; home {home}; warming the caches (demo data, "
                  "features, teacher)")
    _search(home, "warm-up", 1, 1, 1, args.device)
    table = Table(title=f"kd on the demo data: {args.trials} trials, {args.epochs} epochs each",
                  title_justify="left")
    for col in ("--jobs", "wall s", "trials/hour", "vs first", "GPU utilisation"):
        table.add_column(col, justify="right")
    base: float | None = None
    rates: dict[int, float] = {}
    for jobs in args.jobs:
        wall, util = _search(home, f"jobs{jobs}-{int(time.time())}", args.trials, args.epochs,
                             jobs, args.device)
        rate = rates[jobs] = 3600 * args.trials / wall
        base = base or rate
        table.add_row(str(jobs), f"{wall:.1f}", f"{rate:.0f}", f"{rate / base:.2f}x", util)
    console.print(table)
    best = max(rates, key=lambda j: rates[j])
    console.print(f"most trials per hour: --jobs {best} ({rates[best]:.0f}/hour)")


if __name__ == "__main__":
    run_script(main)
