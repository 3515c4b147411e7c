"""Resume a training from its last finished epoch after a stop.

Why: a retrained seed or a confirmation fold is one training of 10-40 min on a 2-core CPU (fsdd
int8: 37 epochs of 30-45 s), and a Ctrl-C, a killed process or the end of a session threw all
of it away; the rerun trained it again from its first epoch. Inside `resumable(folder, key)`
every `train.train_model` call saves, at each epoch's end, what the next epoch starts from (the
weights, the optimizer and schedule, both random generators, the validation curve so far) and,
run again after a stop, continues from it: the same epochs follow, so the run ends where the
uninterrupted one would have (tested to the last bit on the CPU).

A scope numbers the trainings it contains (a lottery ticket's rounds, INT8 fine-tuning after
the float training) and keys each by the scope's key (everything the caller's run depends on),
its number, its settings, its data and its model's tensor shapes: a state saved under other
inputs is never loaded. The scope's folder is removed when the block ends, or fails with an
exception (a diverged or pruned training is not resumed); a stop (KeyboardInterrupt, SIGTERM,
a kill) leaves it for the rerun. The restored epochs are replayed to the training's hooks
(`on_epoch` with each recorded validation accuracy, `on_step` once), so progress, records and
a pruner see what they would have. A hook that keeps weights of an epoch (a lottery ticket's
rewind point) stores them with `keep` and, replayed (`replaying()`), takes them back with `kept`:
the model it sees then holds the last restored epoch's weights, not that epoch's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from asc_auto.errors import AscError
from asc_auto.io import atomic_path, try_lock
from asc_auto.keys import digest

MARKER = "epoch-state.json"  # in a scope's folder: what `asc-auto clean` recognises it by
FORMAT = 1


@dataclass
class _Scope:
    folder: Path
    key: str
    calls: int = 0  # train_model calls made in it so far


_SCOPE: ContextVar[_Scope | None] = ContextVar("asc_auto_epoch_state", default=None)
_REPLAYING: ContextVar[bool] = ContextVar("asc_auto_epoch_replay", default=False)


@contextlib.contextmanager
def resumable(folder: Path, key: str) -> Iterator[None]:
    """Trainings inside save their state each epoch under `folder` and resume from it.

    One process at a time owns a folder (a lock `.<name>.lock` beside it): a second process
    running the same run at once (two `retrain`s of one seed, two workers resuming one trial)
    would load the other's epochs and remove the folder under it when it ends; it trains
    without saving instead, and says so on stderr."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = try_lock(folder.parent / f".{folder.name}.lock")
    if lock is None:
        print(f"another process is training this same run and saving its epochs in {folder}: "
              "this one trains without saving them", file=sys.stderr, flush=True)
        token = _SCOPE.set(None)
        try:
            yield
        finally:
            _SCOPE.reset(token)
        return
    try:
        folder.mkdir(exist_ok=True)
        marker = folder / MARKER
        if not marker.exists():
            with atomic_path(marker) as tmp:
                tmp.write_text(json.dumps({"format": FORMAT, "key": key}))
        token = _SCOPE.set(_Scope(folder, key))
        try:
            yield
        except Exception:
            _finish(folder, lock)  # failed for good: nothing to resume
            raise
        else:
            _finish(folder, lock)
        finally:
            _SCOPE.reset(token)
    finally:
        lock.release()


def _finish(folder: Path, lock: Any) -> None:
    """Remove a scope's folder and then its lock file, still holding the lock: a process that
    opens the lock file after this makes a new one and starts a new folder."""
    shutil.rmtree(folder, ignore_errors=True)
    Path(lock.lock_file).unlink(missing_ok=True)



def scope_folder(root: Path, key: str) -> Path:
    """Where a scope keyed `key` keeps its state, under a cache root."""
    return Path(root) / "epoch-state" / digest(key)[:24]


def fingerprint(t: torch.Tensor) -> dict[str, Any]:
    """Shape, dtype and a sha256 of up to 65,536 evenly spaced elements: cheap on a whole
    dataset, and no other dataset of the same shape shares it in practice."""
    flat = t.detach().reshape(-1)
    step = max(1, flat.numel() // 65536)
    sample = flat[::step].cpu().contiguous()
    if sample.dtype == torch.bfloat16:
        sample = sample.float()
    return {"shape": list(t.shape), "dtype": str(t.dtype),
            "sha256": hashlib.sha256(sample.numpy().tobytes()).hexdigest()}


class EpochState:
    """One training's saved state: a torch file of tensors and plain values (loaded with
    `weights_only=True`: no pickled code runs), replaced atomically each epoch."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none or it was saved under another key."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # torn or foreign: start the training over
            return None
        return state if isinstance(state, dict) and state.get("key") == self.key else None

    def save(self, state: dict[str, Any]) -> None:
        with atomic_path(self.path) as tmp:
            torch.save({**state, "key": self.key}, tmp)


def for_training(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 extras: Sequence[torch.Tensor], settings: Any) -> EpochState | None:
    """The state of the next training in the active scope; None outside one."""
    scope = _SCOPE.get()
    if scope is None:
        return None
    index = scope.calls
    scope.calls += 1
    plain = dataclasses.asdict(settings) if dataclasses.is_dataclass(settings) else settings
    key = digest({"scope": scope.key, "call": index, "format": FORMAT,
                  "settings": plain, "x": fingerprint(x), "y": fingerprint(y),
                  "extras": [fingerprint(e) for e in extras],
                  "tensors": [[name, list(t.shape)] for name, t in model.state_dict().items()
                              if isinstance(t, torch.Tensor)]})
    return EpochState(scope.folder / f"training-{index}.pt", key)


def random_states(gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    """Every generator a training epoch draws from: the batch generator, torch's global one
    (dropout, initialisers) and, on CUDA, the device's."""
    states: dict[str, Any] = {"gen": gen.get_state(), "cpu_rng": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def restore_random(state: dict[str, Any], gen: torch.Generator, device: torch.device) -> None:
    gen.set_state(state["gen"])
    torch.set_rng_state(state["cpu_rng"])
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], device)


@contextlib.contextmanager
def replay() -> Iterator[None]:
    """While train_model replays restored epochs to its hooks."""
    token = _REPLAYING.set(True)
    try:
        yield
    finally:
        _REPLAYING.reset(token)


def replaying() -> bool:
    """Whether the running epoch hook is a replay of a restored epoch."""
    return _REPLAYING.get()


def keep(name: str, tensors: dict[str, torch.Tensor]) -> None:
    """Store `tensors` in the active scope for a replay of this epoch (nothing outside one)."""
    scope = _SCOPE.get()
    if scope is not None:
        EpochState(scope.folder / f"kept-{name}.pt", scope.key).save(
            {"tensors": {k: v.detach().cpu() for k, v in tensors.items()}})


def kept(name: str) -> dict[str, torch.Tensor]:
    """What `keep(name, ...)` stored in the active scope; an error when it is not there (the
    scope's state is then unusable: its folder is named so it can be removed)."""
    scope = _SCOPE.get()
    state = None if scope is None else EpochState(
        scope.folder / f"kept-{name}.pt", scope.key).load()
    if state is None:
        where = "no resumable scope" if scope is None else str(scope.folder)
        raise AscError(f"the resumed training's saved '{name}' weights are missing in {where}; "
                       "fix: remove that folder to train it from its first epoch")
    return dict(state["tensors"])
