"""What the training device is and how busy it is: its name, its bf16 peak, its utilisation.

Used by the benchmarks (benchmarks/throughput.py, benchmarks/workers.py) to say how much of the
hardware a search uses: achieved TFLOP/s against the datasheet's dense bfloat16 tensor-core peak,
and the share of time the GPU ran a kernel while several trials shared it.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from types import TracebackType

import torch

# Dense (no sparsity) bfloat16 tensor-core peaks from NVIDIA's datasheets, in TFLOP/s. Checked
# in this order against torch.cuda.get_device_name, so "H100 PCIe" is found before "H100".
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10", 125.0),
)


def device_name(device: torch.device) -> str:
    """A readable name: the GPU's model on CUDA, else the device type."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def bf16_peak_tflops(name: str) -> float | None:
    """The dense bf16 peak of a GPU by its name; None when it is not in the table."""
    for key, peak in BF16_PEAK_TFLOPS:
        if key.lower() in name.lower():
            return peak
    return None


def train_tflops(clips_per_second: float, macs_per_clip: int) -> float:
    """Achieved TFLOP/s of training: 2 FLOPs per MAC, x3 for forward + backward (the backward
    pass computes gradients of both inputs and weights, about twice the forward's work)."""
    return clips_per_second * macs_per_clip * 2 * 3 / 1e12


def share_of_peak(tflops: float, name: str) -> str:
    """'0.31 % of 989 TFLOP/s' or 'unknown' (a device the table does not know, or a CPU)."""
    peak = bf16_peak_tflops(name)
    return "unknown" if peak is None else f"{100 * tflops / peak:.2f} % of {peak:g} TFLOP/s"


def gpu_utilisation(device: torch.device) -> float | None:
    """Percent of the last sample period in which a kernel ran on the GPU (NVML's
    utilization.gpu: through torch when pynvml is installed, else nvidia-smi); None when there
    is no GPU or no way to ask."""
    if device.type != "cuda":
        return None
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # no pynvml (ImportError), or any NVMLError: fall back to nvidia-smi
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        out = subprocess.run([smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                              f"--id={index}"], capture_output=True, text=True, timeout=10,
                             check=True).stdout
        return float(out.strip().splitlines()[0])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


class UtilisationSampler:
    """Samples `gpu_utilisation` every `interval` seconds in a thread while in a `with` block;
    `mean` is None when no sample could be taken (a CPU, no NVML)."""

    def __init__(self, device: torch.device, interval: float = 0.5) -> None:
        self.device = device
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = gpu_utilisation(self.device)
            if value is None:
                return
            self.samples.append(value)
            self._stop.wait(self.interval)

    def __enter__(self) -> UtilisationSampler:
        if self.device.type == "cuda":
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None

    def describe(self) -> str:
        """'87.5 % (42 samples)' or 'n/a'."""
        mean = self.mean
        return "n/a" if mean is None else f"{mean:.1f} % ({len(self.samples)} samples)"
