"""`asc-auto pretrain`: train a technique's model (kd: its teacher) on another labelled dataset,
so a search on a small dataset starts from it (`search --init-from`, `--teacher`).

The seed paper pretrained AclNet and the VGG teacher on AudioSet; here any TAU-layout dataset the
user has serves. The model is trained with the technique's own feature and training settings (its
space file, `--space`), on all of that dataset's fold1_train, uncompressed, and scored on its
evaluate fold. Written atomically: the checkpoint (safetensors, its description in the file's
metadata, see checkpoint.py) and a small JSON card beside it (`<name>.json`: dataset fingerprint,
classes, settings, accuracy, sha256 of the checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asc_auto.checkpoint import write_checkpoint
from asc_auto.context import ContextSettings, build_context
from asc_auto.data.tau import dataset_fingerprint
from asc_auto.errors import UsageError
from asc_auto.io import write_text_atomic
from asc_auto.space import default_space_file
from asc_auto.techniques.base import get_technique, pretrainable

SUFFIX = ".safetensors"


@dataclass(frozen=True)
class PretrainOptions:
    """Everything `asc-auto pretrain` can be told; defaults are the CLI's."""

    technique: str
    data: Path
    out: Path
    space: Path | None = None  # the technique's space file: features, [train], [teacher], paper
    epochs: int | None = None  # overrides [train] epochs (kd: the teacher's come from [teacher])
    seed: int = 0
    device: str = "auto"
    home: Path = Path("studies")  # the feature cache
    progress: bool = True


@dataclass(frozen=True)
class PretrainResult:
    """What was written and how good it is."""

    checkpoint: Path
    card: Path
    sha256: str
    accuracy: float
    evaluate_clips: int
    params: int
    seconds: float


def card_path(out: Path) -> Path:
    """The JSON card beside a checkpoint: `name.safetensors` -> `name.json`."""
    return Path(out).with_suffix(".json")


def pretrain(opts: PretrainOptions, status: Callable[[str], None] = print) -> PretrainResult:
    """Train, score on the evaluate fold, write checkpoint and card; see the module docstring."""
    technique = get_technique(opts.technique)
    if technique.name not in pretrainable():
        raise UsageError(f"technique {technique.name!r} has no pretraining; fix: use one of "
                         f"{', '.join(pretrainable())}")
    out = Path(opts.out)
    if out.suffix != SUFFIX:
        raise UsageError(f"{out}: the checkpoint must end in {SUFFIX}; fix: e.g. --out "
                         f"{out.with_suffix(SUFFIX)}")
    if out.is_dir():
        raise UsageError(f"{out}: is a folder; fix: name a file, e.g. {out / ('model' + SUFFIX)}")
    overrides = {}
    if opts.epochs is not None and "teacher" in technique.tables:  # kd: the teacher's budget
        overrides["teacher"] = {"epochs": opts.epochs, "min_clips_seen": 0}
    ctx = build_context(technique, ContextSettings(
        data=Path(opts.data), space_file=opts.space or default_space_file(technique.name),
        rule="dcase2020", budget_kb=500.0, home=opts.home, overrides=overrides,
        epochs=opts.epochs, seed=opts.seed, device=opts.device, progress=opts.progress,
        val_fraction=None), status)
    if not ctx.val_files:
        raise UsageError(f"{ctx.dataset.root}: fold1_evaluate is empty; fix: give the dataset an "
                         "evaluate fold (the pretrained model is scored on it)")
    status(f"pretraining {technique.name} on {ctx.dataset.root} ({len(ctx.train_files)} training "
           f"clips, {len(ctx.dataset.labels)} classes)")
    t0 = time.perf_counter()
    done = technique.pretrain(ctx)
    seconds = time.perf_counter() - t0
    params = sum(p.numel() for p in done.model.parameters())
    train = {k: v for k, v in dataclasses.asdict(ctx.train_cfg).items() if k != "device"}
    if done.meta.get("kind") == "teacher":  # the teacher trains with its own [teacher] budget
        train = {"epochs": len(done.train.val_history), "seed": ctx.train_cfg.seed}
    meta: dict[str, Any] = {
        "technique": technique.name, **done.meta,
        "classes": list(ctx.dataset.labels),
        "dataset": {"path": str(ctx.dataset.root),
                    "fingerprint": dataset_fingerprint(ctx.dataset, ctx.cache_root),
                    "train_clips": len(ctx.train_files), "evaluate_clips": len(ctx.val_files)},
        "features": technique.feature_config(ctx.space).key_dict(),
        "settings": {"train": train, "tables": ctx.space.tables,
                     "space_file": str(ctx.space.file)},
        "accuracy": {"evaluate": round(done.accuracy, 4), "clips": len(ctx.val_files)},
        "params": params, "seconds": round(seconds, 1),
    }
    sha = write_checkpoint(done.model, out, meta)
    card = card_path(out)
    write_text_atomic(card, json.dumps({**meta, "checkpoint": out.name, "sha256": sha},
                                       indent=2, sort_keys=True) + "\n")
    return PretrainResult(out, card, sha, done.accuracy, len(ctx.val_files), params, seconds)
