"""Getting training data onto the device once, and timing steps, without host-device syncs.

On a GPU the training loop must never make the host wait for the device inside a step: a
blocking copy from pageable host memory (`tensor.to("cuda")`), `.item()`, `.cpu()` or
`torch.cuda.synchronize` each drain the device's queue, and a small model then spends most of
its time idle. So:

- `Staged` moves a run's per-example tensors (features, labels, teacher outputs) to the device
  once when they fit (`fits_on_device`: what CUDA reports free, plus what this process's
  allocator holds unused, less a reserve for activations and other workers), and batches are
  then indexed there; when they do not fit they stay in host memory and each batch goes
  through pinned memory with a non-blocking copy.
- `to_device` does that pinned, non-blocking copy for small tensors made on the host (random
  indices, mixing weights).
- `StepTimer` times forward+backward with CUDA events that are read once per epoch (on the CPU:
  `time.perf_counter`, where the host is the device).

On the CPU every one of these is the plain operation it replaces, so a CPU run computes exactly
what it computed before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

# Kept free on a GPU when deciding residency: activations, the optimizer, cuDNN workspaces and
# other workers' trials need room too. The larger of the two counts.
RESERVE_BYTES = 2 * 2**30
RESERVE_SHARE = 0.10


def nbytes(tensors: Sequence[torch.Tensor]) -> int:
    """Bytes held by these tensors' elements."""
    return sum(t.nelement() * t.element_size() for t in tensors)


def fits_on_device(size: int, device: torch.device) -> bool:
    """Whether `size` bytes can live on `device` for a whole run, leaving the reserve free.

    The CPU: always (the data are already there). CUDA: checked against `mem_get_info` plus
    the memory this process's caching allocator holds unused (a previous trial's freed data).
    Other devices: no (unknown memory; batches are copied instead).
    """
    if device.type == "cpu":
        return True
    if device.type != "cuda":
        return False
    free, total = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return size + max(RESERVE_BYTES, RESERVE_SHARE * total) <= free


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`t` on `device`; from host to CUDA through pinned memory without blocking the host (a
    plain `.to("cuda")` from pageable memory waits for everything queued on the device)."""
    if t.device == device:
        return t
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class Staged:
    """Per-example tensors that training batches are cut from, on the device when they fit."""

    def __init__(self, tensors: Sequence[torch.Tensor], device: torch.device,
                 resident: bool | None = None) -> None:
        self.device = device
        self.resident = fits_on_device(nbytes(tensors), device) if resident is None else resident
        # Resident: one copy to the device now. Otherwise the host tensors, copied per batch.
        self.tensors = [t.to(device) if self.resident else t for t in tensors]

    def order(self, perm: torch.Tensor) -> torch.Tensor:
        """An epoch's permutation (made on the host) where batches are indexed: one small copy
        per epoch instead of one per batch."""
        return to_device(perm, self.device) if self.resident else perm

    def take(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Rows `idx` (a slice of `order`'s result) of every tensor, on the device."""
        if self.resident:
            return [t[idx] for t in self.tensors]
        return [to_device(t[idx], self.device) for t in self.tensors]


class StepTimer:
    """Seconds spent between `start` and `stop` over many steps, read without per-step syncs.

    CUDA: a pair of events per step, summed when `seconds()` is called (once per epoch, where
    the loop reads its loss count anyway). CPU: `time.perf_counter` at both ends.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self._total = 0.0
        self._t0 = 0.0
        self._begin: torch.cuda.Event | None = None
        self._pairs: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []

    def _event(self) -> torch.cuda.Event:
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self.device))
        return event

    def start(self) -> None:
        if self.cuda:
            self._begin = self._event()
        else:
            self._t0 = time.perf_counter()

    def stop(self) -> None:
        if self.cuda:
            assert self._begin is not None, "StepTimer.stop without start"
            self._pairs.append((self._begin, self._event()))
            self._begin = None
        else:
            self._total += time.perf_counter() - self._t0

    def seconds(self) -> float:
        """Total so far; on CUDA this waits for the last recorded step to finish."""
        if self._pairs:
            self._pairs[-1][1].synchronize()
            self._total += sum(a.elapsed_time(b) for a, b in self._pairs) / 1000.0
            self._pairs.clear()
        return self._total
