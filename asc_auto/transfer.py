"""What a search starts from besides its data: `--init-from` (the model's initial weights),
`--teacher` (kd teacher checkpoints) and `--teacher-logits` (stored teacher outputs).

A study records these files by path and sha256 (`Sources.attrs`): retrain and export start the
same way, a resumed study must name the same files, and every result derived from a file (retrain
seeds, teacher caches) is keyed by its sha256, so another file under the same name is never
mixed in. `--init-from` also fixes the parameters that decide the model's shapes to the
checkpoint's (its description says them, see checkpoint.py), so every trial can start from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from asc_auto.checkpoint import Checkpoint, load_into, read_checkpoint
from asc_auto.errors import UsageError
from asc_auto.io import file_sha256
from asc_auto.space import ParamSpec, SearchSpace


@dataclass(frozen=True)
class FileRef:
    """A file a study depends on: its path when recorded and its sha256."""

    path: Path
    sha256: str

    @classmethod
    def of(cls, path: Path | str, what: str) -> FileRef:
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"{path}: {what} not found; fix: pass an existing file")
        return cls(path.resolve(), file_sha256(path))

    def attr(self) -> dict[str, str]:
        return {"path": str(self.path), "sha256": self.sha256}

    @classmethod
    def from_attr(cls, value: Mapping[str, str]) -> FileRef:
        return cls(Path(value["path"]), str(value["sha256"]))


@dataclass(frozen=True)
class Sources:
    """The starting points of one study (all empty: from scratch, the built-in teacher)."""

    init_from: FileRef | None = None
    pinned: Mapping[str, Any] = field(default_factory=dict)  # shape params fixed by init_from
    teachers: tuple[FileRef, ...] = ()
    teacher_logits: tuple[FileRef, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.init_from or self.teachers or self.teacher_logits)

    def digests(self) -> dict[str, Any]:
        """What results depend on (sha256s, not paths): part of retrain keys and resume checks;
        empty when there is nothing, so keys made before these options existed stay valid."""
        out: dict[str, Any] = {}
        if self.init_from:
            out["init_from"] = self.init_from.sha256
        if self.teachers:
            out["teachers"] = [t.sha256 for t in self.teachers]
        if self.teacher_logits:
            out["teacher_logits"] = [t.sha256 for t in self.teacher_logits]
        return out

    def attrs(self) -> dict[str, Any]:
        """The study attribute: paths, digests and the pinned shape parameters."""
        return {
            "init_from": self.init_from.attr() if self.init_from else None,
            "pinned": dict(self.pinned),
            "teachers": [t.attr() for t in self.teachers],
            "teacher_logits": [t.attr() for t in self.teacher_logits],
        }

    @classmethod
    def from_attrs(cls, value: Mapping[str, Any] | None) -> Sources:
        """Read back `attrs()` (a study without the attribute started from scratch)."""
        if not value:
            return cls()
        init = value.get("init_from")
        return cls(init_from=FileRef.from_attr(init) if init else None,
                   pinned=dict(value.get("pinned") or {}),
                   teachers=tuple(FileRef.from_attr(t) for t in value.get("teachers") or ()),
                   teacher_logits=tuple(FileRef.from_attr(t)
                                        for t in value.get("teacher_logits") or ()))


# The teacher files a technique may take (`Technique.teacher_files`): "teacher" (--teacher: VGG
# checkpoints fine-tuned as kd's teacher) and "teacher_logits" (--teacher-logits: stored outputs).
TEACHER_FILES = frozenset({"teacher", "teacher_logits"})


def resolve_sources(technique: str, shape_params: frozenset[str],
                    teacher_files: frozenset[str], init_from: Path | None = None,
                    teachers: Sequence[Path] = (), teacher_logits: Sequence[Path] = ()
                    ) -> Sources:
    """Check the files a search was given and record them; one-line errors naming the file.
    `teacher_files`: which kinds of teacher file the technique takes (TEACHER_FILES)."""
    if teachers and "teacher" not in teacher_files:
        also = (f"; {technique} distils from stored outputs: pass them as --teacher-logits FILE"
                if "teacher_logits" in teacher_files else "")
        raise UsageError(f"--teacher (a VGG checkpoint to fine-tune as the teacher) applies to "
                         f"kd, not {technique}; fix: drop it or use --technique kd{also}")
    if teacher_logits and "teacher_logits" not in teacher_files:
        raise UsageError(f"--teacher-logits applies to kd, int8 and lt, not {technique}; fix: "
                         "drop it or use one of those techniques")
    pinned: dict[str, Any] = {}
    init = None
    if init_from is not None:
        ckpt = read_checkpoint(init_from, "--init-from checkpoint")
        if ckpt.kind == "teacher":
            raise UsageError(f"{init_from}: is a kd teacher checkpoint, not a {technique} model; "
                             "fix: pass it as --teacher FILE (with --technique kd)")
        config = ckpt.meta.get("config") or {}
        pinned = {k: v for k, v in sorted(config.items()) if k in shape_params}
        init = FileRef(Path(init_from).resolve(), ckpt.sha256)
    refs = []
    for path in teachers:
        ckpt = read_checkpoint(path, "--teacher checkpoint")
        if ckpt.meta and ckpt.kind != "teacher":
            raise UsageError(f"{path}: is a {ckpt.meta.get('technique', '?')} model checkpoint, "
                             "not a kd teacher; fix: pass a checkpoint written by `asc-auto "
                             "pretrain --technique kd`")
        refs.append(FileRef(Path(path).resolve(), ckpt.sha256))
    logits = tuple(FileRef.of(p, "--teacher-logits file") for p in teacher_logits)
    return Sources(init, pinned, tuple(refs), logits)


def pin_space(space: SearchSpace, pinned: Mapping[str, Any]) -> SearchSpace:
    """The space with `pinned` parameters fixed (one choice each), the paper point with them."""
    if not pinned:
        return space
    params = tuple(ParamSpec(p.name, "categorical", choices=(pinned[p.name],))
                   if p.name in pinned and p.type != "simplex" else p for p in space.params)
    paper = {**space.paper, **{k: v for k, v in pinned.items() if k in space.paper}}
    return dataclasses.replace(space, params=params, paper=paper)


_CHECKPOINTS: dict[tuple[str, str], Checkpoint] = {}  # (path, sha256) -> loaded once per process
_SAID: set[str] = set()


def verified(ref: FileRef, what: str) -> Path:
    """The recorded file's path, after checking it still has the recorded sha256."""
    if not ref.path.is_file():
        raise UsageError(f"{ref.path}: {what} the study was made with is gone; fix: put it back, "
                         "or start a new study with --study NEW_NAME")
    sha = file_sha256(ref.path)
    if sha != ref.sha256:
        raise UsageError(f"{ref.path}: {what} changed since the study recorded it (sha256 "
                         f"{ref.sha256[:12]}, now {sha[:12]}); fix: restore the file the study "
                         "was made with, or start a new study with --study NEW_NAME")
    return ref.path


def checkpoint_of(ref: FileRef, what: str) -> Checkpoint:
    """The checkpoint a study recorded, verified against its sha256 (loaded once)."""
    key = (str(ref.path), ref.sha256)
    if key not in _CHECKPOINTS:
        _CHECKPOINTS[key] = read_checkpoint(ref.path, what, expect_sha256=ref.sha256)
    return _CHECKPOINTS[key]


def init_model(model: nn.Module, ref: FileRef | None, status: Callable[[str], None]) -> None:
    """Start `model` from the --init-from checkpoint `ref` (nothing without one)."""
    if ref is None:
        return
    note = load_into(model, checkpoint_of(ref, "--init-from checkpoint"))
    if note and note not in _SAID:  # once per process, not once per trial
        _SAID.add(note)
        status(note)


def feature_notes(sources: Sources, features: Mapping[str, Any]) -> list[str]:
    """A line per checkpoint (--init-from, --teacher) whose recorded feature settings differ from
    `features` (this search's `key_dict()`) in anything but the clip length: its weights were
    learnt on other inputs, which the shape check cannot see (40 or 64 mel bands give the same
    tensors to a globally pooled CNN)."""
    notes = []
    for ref, what in [(sources.init_from, "--init-from checkpoint"),
                      *((t, "--teacher checkpoint") for t in sources.teachers)]:
        if ref is None:
            continue
        theirs = checkpoint_of(ref, what).meta.get("features") or {}
        diff = [f"{k} {theirs[k]!r} there, {features.get(k)!r} here" for k in sorted(theirs)
                if k != "clip_seconds" and theirs[k] != features.get(k)]
        if diff:
            notes.append(f"note: {ref.path.name} was trained on other features ({'; '.join(diff)});"
                         " it starts this search all the same")
    return notes

