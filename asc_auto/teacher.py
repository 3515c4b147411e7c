"""The KD teacher: trained once per (features, split, teacher settings), cached with its outputs.

Every kd trial distils from the same teacher, so training it inside each trial would multiply the
search cost by the trial count. The cache directory holds the weights (safetensors), the teacher's
logits and embeddings for every clip of the feature set, and meta.json with its validation
accuracy; it is written to a temp directory and renamed, so an interrupted run leaves no teacher
that a later run would trust.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors.torch import load_file, save_file

from asc_auto.context import TrialContext
from asc_auto.errors import ConfigError
from asc_auto.io import atomic_dir, build_lock, checksums, damaged_files
from asc_auto.models.vgg import VggConfig, VggTeacher
from asc_auto.tables import dataclass_from_table, ranged, settings_table
from asc_auto.train import TrainConfig, epochs_for, evaluate, resolve_device, train_model

CACHE_FORMAT = 2  # 2: checksums of weights and outputs in meta.json
PAPER_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512)


@settings_table("teacher")
@dataclass(frozen=True)
class TeacherSettings:
    """The [teacher] table of kd.toml."""

    width: float = ranged(1.0, 0.0, None, low_open=True)  # channel multiplier of the paper's
    # VGG (1.0: 64..512 channels)
    depth: int = ranged(12, 1, len(PAPER_CHANNELS))  # conv layers (the paper's 12)
    epochs: int = ranged(30, 1)
    min_clips_seen: int = ranged(0, 0)  # as [train] min_clips_seen: epochs raised to reach it
    lr: float = ranged(1e-3, 0.0, 10.0, low_open=True)
    batch_size: int = ranged(32, 2)
    mixup_alpha: float = ranged(0.2, 0.0)

    def vgg_config(self, in_channels: int, n_classes: int) -> VggConfig:
        if not 1 <= self.depth <= len(PAPER_CHANNELS):
            raise ConfigError("teacher", "depth", f"must be 1..{len(PAPER_CHANNELS)}")
        chans = tuple(max(4, round(c * self.width)) for c in PAPER_CHANNELS[: self.depth])
        pools = tuple(i for i in VggConfig().pool_after if i < self.depth) or (self.depth - 1,)
        return VggConfig(channels=chans, pool_after=pools, in_channels=in_channels,
                         n_classes=n_classes)


def teacher_settings(values: dict[str, Any], file: str) -> TeacherSettings:
    """Parse the [teacher] table; unknown keys and wrong types name the key."""
    return dataclass_from_table(TeacherSettings, values, file, "teacher")


@dataclass(frozen=True)
class TeacherOutputs:
    """The cached teacher: its outputs on every clip of the feature set, and how good it is."""

    key: str
    filenames: tuple[str, ...]
    logits: np.ndarray  # (N, n_classes)
    embeddings: np.ndarray  # (N, embed_dim)
    val_accuracy: float
    params: int
    path: Path

    def select(self, filenames: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher logits and embeddings for `filenames`, in that order."""
        index = {f: i for i, f in enumerate(self.filenames)}
        rows = np.array([index[f] for f in filenames], dtype=np.int64)
        return torch.from_numpy(self.logits[rows]), torch.from_numpy(self.embeddings[rows])


def teacher_key(ctx: TrialContext, settings: TeacherSettings, train_cfg: TrainConfig) -> str:
    blob = json.dumps({
        "format": CACHE_FORMAT, "split": ctx.split_digest(),
        "teacher": dataclasses.asdict(settings), "train": dataclasses.asdict(train_cfg),
    }, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def ensure_teacher(ctx: TrialContext, settings: TeacherSettings) -> TeacherOutputs:
    """Load the cached teacher for this context, training and caching it first if needed."""
    epochs = epochs_for(settings.epochs, settings.min_clips_seen, len(ctx.train_files))
    train_cfg = dataclasses.replace(ctx.train_cfg, epochs=epochs, lr=settings.lr,
                                    batch_size=settings.batch_size,
                                    mixup_alpha=settings.mixup_alpha)
    key = teacher_key(ctx, settings, train_cfg)
    path = ctx.cache_root / "teachers" / f"vgg-{key[:16]}"
    cached = _load(path, key)
    if cached is not None:
        return cached
    damage = damaged_files(path, "meta.json")
    if damage:  # never used: trained again, and the entry replaced
        ctx.status(f"{path}: {', '.join(damage)} changed since it was written (checksum); "
                   "training the teacher again")
    with build_lock(path, ctx.status):  # several workers: one trains, the others load it
        cached = _load(path, key)
        return cached if cached is not None else _train(ctx, settings, train_cfg, key, path)


def _train(ctx: TrialContext, settings: TeacherSettings, train_cfg: TrainConfig, key: str,
           path: Path) -> TeacherOutputs:
    """Train the teacher, cache it with its outputs; the caller holds its build lock."""
    x, y = ctx.train_xy
    vgg_cfg = settings.vgg_config(in_channels=x.shape[1], n_classes=ctx.n_classes)
    torch.manual_seed(train_cfg.seed)  # its initial weights: the same teacher every run
    model = VggTeacher(vgg_cfg)
    ctx.status(f"training the KD teacher ({sum(p.numel() for p in model.parameters()):,} params,"
               f" {settings.epochs} epochs); cached for every later trial")
    with Progress(TextColumn("teacher"), BarColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), transient=True, disable=not ctx.progress) as bar:
        task = bar.add_task("teacher", total=None, info="")

        def on_step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        def on_epoch(epoch: int, acc: float) -> None:
            bar.update(task, info=f"epoch {epoch + 1}: val acc {acc:.3f}")

        train_model(model, x, y, train_cfg, ctx.n_classes, val=ctx.val_xy,
                    on_epoch=on_epoch, on_step=on_step)
    device = resolve_device(train_cfg.device)
    val_acc = evaluate(model, *ctx.val_xy, ctx.n_classes, device=device).accuracy
    logits, embeds = _outputs(model, ctx, device)
    with atomic_dir(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(tmp / "weights.safetensors"))
        np.savez(tmp / "outputs.npz", logits=logits, embeddings=embeds)
        (tmp / "meta.json").write_text(json.dumps({
            "sha256": checksums(tmp, ("weights.safetensors", "outputs.npz")),
            "key": key, "val_accuracy": val_acc, "filenames": list(ctx.features.filenames),
            "params": sum(p.numel() for p in model.parameters()),
            "vgg": dataclasses.asdict(vgg_cfg), "settings": dataclasses.asdict(settings),
            "complete": True,
        }))
    loaded = _load(path, key)
    assert loaded is not None
    return loaded


@torch.no_grad()
def _outputs(model: VggTeacher, ctx: TrialContext, device: torch.device
             ) -> tuple[np.ndarray, np.ndarray]:
    model.eval().to(device)
    logits, embeds = [], []
    x_all = ctx.features.x
    for start in range(0, len(x_all), 64):
        xb = torch.from_numpy(np.asarray(x_all[start:start + 64], dtype=np.float32)).to(device)
        lo, em = model(xb)
        logits.append(lo.float().cpu().numpy())
        embeds.append(em.float().cpu().numpy())
    return np.concatenate(logits), np.concatenate(embeds)


def _load(path: Path, key: str) -> TeacherOutputs | None:
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        if not meta.get("complete") or meta.get("key") != key:
            return None
        if "sha256" not in meta or damaged_files(path, "meta.json", meta):
            return None  # changed since written: trained again (and replaced) by the caller
        with np.load(path / "outputs.npz") as z:
            logits, embeds = z["logits"], z["embeddings"]
    except (OSError, ValueError, KeyError):
        return None
    return TeacherOutputs(key, tuple(meta["filenames"]), logits, embeds,
                          float(meta["val_accuracy"]), int(meta["params"]), path)


def load_teacher_model(outputs: TeacherOutputs) -> VggTeacher:
    """Rebuild the cached teacher network (for inspection or re-use outside the search)."""
    meta = json.loads((outputs.path / "meta.json").read_text())
    vgg = meta["vgg"]
    model = VggTeacher(VggConfig(**{k: tuple(v) if isinstance(v, list) else v
                                    for k, v in vgg.items()}))
    model.load_state_dict(load_file(str(outputs.path / "weights.safetensors")))
    return model.eval()
