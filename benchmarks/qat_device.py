"""Does NNCF's fake-quantized AclNet train on a GPU, and how fast? Prints numbers, asserts nothing.

The `int8` technique fine-tunes its quantized model (QAT, `qat_epochs`) on the CPU even when the
FP32 epochs ran on a GPU (techniques/int8.py), because NNCF builds the fake-quantized graph on
the CPU and moving it has not been tried on a GPU yet. This script is that try: it quantizes
the paper's AclNet0.5 on the CPU (as `quantize_aclnet` does), then times QAT steps (forward,
backward, AdamW) on the CPU and on `--device`, and says whether the device run worked and gave
the same loss on the first step. On a GPU machine:

    python benchmarks/qat_device.py --device cuda --steps 20

On the CPU alone it checks the script itself (`--device cpu`).
"""

from __future__ import annotations

import argparse
import copy
import time
import traceback

import torch
import torch.nn.functional as F

from asc_auto.compress.precision import quantize_int8
from asc_auto.console import run_script
from asc_auto.models.aclnet import aclnet


def qat_steps(model: torch.nn.Module, device: str, steps: int, x: torch.Tensor,
              y: torch.Tensor) -> tuple[float, float]:
    """(steps per second after one warm-up step, the warm-up step's loss) on `device`."""
    model = model.to(device).train()
    x, y = x.to(device), y.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x)[0], y)
        loss.backward()
        opt.step()
        return loss.item()

    first = step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0), first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = aclnet(width=0.5, n_classes=10).eval()
    seconds = model.config.sample_rate  # 1 s crops, as AclNet trains and is calibrated
    calibration = [torch.randn(16, 1, seconds) for _ in range(4)]
    quantized = quantize_int8(model, calibration, subset_size=len(calibration))
    x = torch.randn(args.batch, 1, seconds)
    y = torch.randint(0, 10, (args.batch,))
    cpu_rate, cpu_loss = qat_steps(copy.deepcopy(quantized), "cpu", args.steps, x, y)
    print(f"cpu: {cpu_rate:.2f} QAT steps/s (batch {args.batch}), first loss {cpu_loss:.4f}")
    if args.device == "cpu":
        return
    try:
        rate, loss = qat_steps(copy.deepcopy(quantized), args.device, args.steps, x, y)
    except Exception:  # the question this script asks: report it, do not hide it
        print(f"{args.device}: QAT failed on the device:\n{traceback.format_exc()}")
        return
    print(f"{args.device}: {rate:.2f} QAT steps/s ({rate / cpu_rate:.1f}x the CPU), first loss "
          f"{loss:.4f} (CPU {cpu_loss:.4f}, difference {abs(loss - cpu_loss):.2e})")


if __name__ == "__main__":
    run_script(main)
