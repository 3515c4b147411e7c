"""asc_auto.allocator: freed training buffers stay in the process instead of being faulted in
again every step, and a user's own malloc tuning is left alone. Each case runs in a fresh
interpreter: the settings are per process and cannot be undone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from asc_auto.allocator import on_glibc

pytestmark = pytest.mark.skipif(not on_glibc(), reason="the settings are glibc's")

# Allocate, touch and free a 64 MB buffer (above glibc's largest mmap threshold, like one conv
# output of the paper student) 20 times; count the minor page faults of the last 10 rounds (the
# tuned heap still faults in its first few rounds while it grows: 6 of them on glibc 2.36).
CHILD = r"""
import json, resource, sys, torch
from asc_auto.allocator import keep_freed_memory
state = keep_freed_memory() if sys.argv[1] == "tune" else "not called"
def once():
    torch.ones(16 * 1024 * 1024)  # 64 MB, written, then freed
for _ in range(10):
    once()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    once()
print(json.dumps({"state": state, "again": keep_freed_memory() if state != "not called" else "",
                  "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _child(mode: str, **env: str) -> dict[str, object]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")
            and k not in ("ASC_AUTO_MALLOC", "GLIBC_TUNABLES", "LD_PRELOAD")} | env
    out = subprocess.run([sys.executable, "-c", CHILD, mode], env=full, check=True,
                         capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_freed_buffers_are_reused_without_page_faults() -> None:
    plain = _child("plain")
    tuned = _child("tune")
    assert tuned["state"] == "tuned" and tuned["again"] == "tuned"  # once per process
    pages = 10 * 64 * 1024 * 1024 // 4096  # what re-faulting every round costs
    assert int(plain["faults"]) > pages // 2, plain  # glibc as it comes: faulted in each time
    assert int(tuned["faults"]) < pages // 20, tuned  # reused: almost none


def test_a_users_own_tuning_or_opt_out_is_left_alone() -> None:
    assert _child("tune", MALLOC_TRIM_THRESHOLD_="1000000")["state"] == \
        "left alone: MALLOC_TRIM_THRESHOLD_ is set"
    out = _child("tune", ASC_AUTO_MALLOC="default")
    assert out["state"] == "left alone: ASC_AUTO_MALLOC=default"
    assert int(out["faults"]) > 10 * 64 * 1024 * 1024 // 4096 // 2  # really left as it comes
