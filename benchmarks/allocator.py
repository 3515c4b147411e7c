"""glibc malloc as it comes against asc_auto.allocator's settings: CPU training steps per second.

Trains the paper kd student (batch 32, 64 mel bands x 401 frames, channels_last, AdamW) for a
few steps in fresh processes, alternating glibc's defaults (ASC_AUTO_MALLOC=default) with the
settings `train_model` applies, and prints clips/s, the process's system CPU seconds and its
minor page faults per arm. Prints numbers, asserts nothing:

    .venv/bin/python benchmarks/allocator.py --steps 15 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
from asc_auto.allocator import keep_freed_memory
from asc_auto.models.cnn import CnnStudent, StudentConfig
state = keep_freed_memory()
torch.manual_seed(0)
m = CnnStudent(StudentConfig(n_classes=10)).to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(m.parameters(), 1e-3)
x = torch.randn(32, 1, 64, 401).to(memory_format=torch.channels_last)
y = torch.randint(0, 10, (32,))
def step():
    opt.zero_grad()
    torch.nn.functional.cross_entropy(m(x)[0], y).backward()
    opt.step()
for _ in range(3):
    step()
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
n = int(sys.argv[1])
for _ in range(n):
    step()
t, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"state": state, "clips_per_s": n * 32 / t,
                  "sys_s": r1.ru_stime - r0.ru_stime, "user_s": r1.ru_utime - r0.ru_utime,
                  "minor_faults": r1.ru_minflt - r0.ru_minflt}))
"""


def run_arm(steps: int, default: bool) -> dict[str, float | str]:
    env = dict(os.environ)
    if default:
        env["ASC_AUTO_MALLOC"] = "default"
    else:
        env.pop("ASC_AUTO_MALLOC", None)
    out = subprocess.run([sys.executable, "-c", CHILD, str(steps)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    for r in range(args.repeats):
        for default in (True, False):
            res = run_arm(args.steps, default)
            print(f"repeat {r + 1} {'glibc defaults' if default else 'asc-auto settings':18s} "
                  f"{res['clips_per_s']:6.1f} clips/s  user {res['user_s']:5.1f} s  "
                  f"sys {res['sys_s']:5.1f} s  minor faults {res['minor_faults']:>9,}  "
                  f"({res['state']})", flush=True)


if __name__ == "__main__":
    main()
