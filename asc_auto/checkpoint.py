"""Checkpoints a run starts from: safetensors files (no pickle) that describe themselves, loaded
into a model under a strict shape check.

`asc-auto pretrain` writes them; `search --init-from` and `--teacher` read them; a retrain seed's
weights.safetensors is one too (without a description). The description (technique, kind, the
configuration that fixes the architecture, classes, feature settings) is JSON in the file's own
safetensors metadata, so the file alone says what it holds. Loading is strict: every tensor of
the model must be in the file with the same shape, and nothing else may be there; the one
exception is the classifier head when the class count differs (another dataset's classes), which
is left freshly initialised and said in one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from asc_auto.errors import UsageError
from asc_auto.io import atomic_path, file_sha256

META_KEY = "asc_auto"  # the safetensors metadata entry holding the JSON description
FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file: where it is, its sha256 (what keys derived from it use), its
    description (empty for a file written elsewhere) and, loaded on first use, its tensors."""

    path: Path
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """'model' (a technique's model) or 'teacher' (a kd teacher)."""
        return str(self.meta.get("kind", "model"))

    @cached_property
    def tensors(self) -> dict[str, torch.Tensor]:
        return load_file(str(self.path))


def read_checkpoint(path: Path | str, what: str = "checkpoint",
                    expect_sha256: str | None = None) -> Checkpoint:
    """Open a checkpoint; one-line errors for a missing, foreign or changed file.

    `expect_sha256`: the digest a study recorded; a file that changed since is refused (results
    keyed by the old digest would otherwise be mixed with the new file's).
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: {what} not found; fix: pass an existing .safetensors file "
                         "(written by `asc-auto pretrain` or a retrain seed's weights)")
    sha = file_sha256(path)
    if expect_sha256 is not None and sha != expect_sha256:
        raise UsageError(f"{path}: {what} changed since the study recorded it (sha256 "
                         f"{expect_sha256[:12]}, now {sha[:12]}); fix: restore the file the study "
                         "was made with, or start a new study with --study NEW_NAME")
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(META_KEY)
    except Exception as exc:  # safetensors raises its own error types for a foreign file
        raise UsageError(f"{path}: not a safetensors file ({exc}); fix: pass a .safetensors "
                         "checkpoint (never a pickle)") from None
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError:
        meta = {}
    return Checkpoint(path, sha, meta if isinstance(meta, dict) else {})


def write_checkpoint(model: nn.Module, path: Path, meta: dict[str, Any]) -> str:
    """Write `model`'s state dict and its description atomically; returns the file's sha256."""
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(Path(path)) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(
            {"format": FORMAT, **meta}, sort_keys=True)})
    return file_sha256(path)


def head_keys(model: nn.Module) -> tuple[str, ...]:
    """State-dict keys of the classifier head: the last Linear named `classifier` (every model
    here has one), else the last Linear."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    named = [(n, m) for n, m in linears if n.rsplit(".", 1)[-1] == "classifier"]
    chosen = (named or linears)[-1:]
    return tuple(f"{name}.{p}" if name else p for name, m in chosen
                 for p, _ in m.named_parameters(recurse=False))


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def load_into(model: nn.Module, ckpt: Checkpoint) -> str | None:
    """Copy the checkpoint's tensors into `model` (in place), strictly.

    Every mismatch is named in one error (missing, unexpected and differently shaped tensors);
    when only the classifier head differs in its class count, the head keeps its fresh
    initialisation and the returned line says so (None otherwise).
    """
    state = model.state_dict()
    tensors = ckpt.tensors
    head = head_keys(model)
    head_w = head[0] if head else None
    reset = bool(
        head_w and head_w in tensors and tensors[head_w].dim() == state[head_w].dim() == 2
        and tensors[head_w].shape[1] == state[head_w].shape[1]
        and tensors[head_w].shape[0] != state[head_w].shape[0])
    problems = [f"{k} missing from the file" for k in state if k not in tensors]
    problems += [f"{k} not in the model" for k in tensors if k not in state]
    problems += [f"{k} is {_shape(tensors[k])} in the file, {_shape(state[k])} in the model"
                 for k in state if k in tensors and tensors[k].shape != state[k].shape
                 and not (reset and k in head)]
    if problems:
        raise UsageError(
            f"{ckpt.path}: does not fit the model ({len(problems)} tensors): "
            f"{'; '.join(problems)}; fix: start from a checkpoint of the same architecture "
            "(asc-auto pretrain with the same technique and --space)")
    loaded = {k: tensors[k].to(state[k].dtype) for k in state if not (reset and k in head)}
    model.load_state_dict({**state, **loaded})
    if not reset:
        return None
    assert head_w is not None
    return (f"{ckpt.path.name}: {tensors[head_w].shape[0]} classes there, "
            f"{state[head_w].shape[0]} here: the classifier head ({', '.join(head)}) starts "
            "afresh, every other tensor from the file")
