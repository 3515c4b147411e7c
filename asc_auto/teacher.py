"""The KD teacher: trained once per (features, split, teacher settings), cached with its outputs.

Every kd trial distils from the same teacher, so training it inside each trial would multiply the
search cost by the trial count. The cache directory holds the weights (safetensors), the teacher's
logits and embeddings for every clip of the feature set, and meta.json with its validation
accuracy; it is written to a temp directory and renamed, so an interrupted run leaves no teacher
that a later run would trust.

What a kd search distils from (`ensure_teachers`): by default `[teacher] members` VGGs trained
from scratch (seeds seed, seed + 1, ...); with `--teacher FILE` (repeatable) VGGs initialised from
those checkpoints (e.g. `asc-auto pretrain --technique kd` on a larger dataset) and fine-tuned
here; with `--teacher-logits FILE` (repeatable) stored outputs of any model (teacher_logits.py).
Several members form an ensemble: their logits are averaged and their embeddings concatenated
(each member's embedding space kept; the student's projection maps onto all of them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from asc_auto.checkpoint import load_into
from asc_auto.context import TrialContext
from asc_auto.cost import EpochClock, SearchPlan, duration_text
from asc_auto.data.audio import durations, padding_share
from asc_auto.data.tau import TauDataset
from asc_auto.errors import ConfigError
from asc_auto.features.crops import CROP_SECONDS, CROPS, content_crop
from asc_auto.io import atomic_dir, build_lock, checksums, damaged_files
from asc_auto.keys import digest
from asc_auto.models.base import POOLS
from asc_auto.models.vgg import VggConfig, VggTeacher
from asc_auto.progress import progress_bar
from asc_auto.space import SearchSpace
from asc_auto.stats import accuracy_text
from asc_auto.tables import dataclass_from_table, ranged, settings_table
from asc_auto.teacher_logits import read_heldout_logits, read_teacher_logits
from asc_auto.train import (
    TrainConfig,
    TrainResult,
    epochs_for,
    evaluate,
    resolve_device,
    train_model,
)
from asc_auto.transfer import FileRef, checkpoint_of, verified

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
    # VGGs trained from scratch (seeds seed, seed + 1, ...) whose logits are averaged; ignored
    # when --teacher or --teacher-logits name the members. Not part of a member's cache key.
    members: int = ranged(1, 1, 16)
    # Global pool of the VGG: the paper's "avg", "max" (see asc_auto/models/base.py), or "auto"
    # in a space file: settled on the data by `settle_pool` before these settings are read.
    pool: str = "avg"
    # "clip": train on whole padded clips (the paper); "content": on crops of `crop_seconds` of
    # each clip's recorded part (features/crops.py), the outputs students distil from still on
    # whole clips; "auto" in a space file: settled on the data by `settle_crops`, as is
    # `crop_seconds = "auto"` (the clips' 90th-percentile length, at least 1 s).
    crops: str = "clip"
    crop_seconds: float | str = ranged(CROP_SECONDS, 0.0, None, low_open=True)  # str: "auto"

    def vgg_config(self, in_channels: int, n_classes: int) -> VggConfig:
        if not 1 <= self.depth <= len(PAPER_CHANNELS):
            raise ConfigError("teacher", "depth", f"must be 1..{len(PAPER_CHANNELS)}")
        chans = tuple(max(4, round(c * self.width)) for c in PAPER_CHANNELS[: self.depth])
        pools = tuple(i for i in VggConfig().pool_after if i < self.depth) or (self.depth - 1,)
        return VggConfig(channels=chans, pool_after=pools, in_channels=in_channels,
                         n_classes=n_classes, pool=self.pool)


AUTO = "auto"  # a [teacher] value settled on the data (pool, crops, crop_seconds)
# `pool = "auto"` takes max when the clips are on average more than this share zero padding of
# the feature window (clip_seconds), else the paper's avg. Measured (width-0.5 VGGs, 2-core CPU,
# evaluate fold): office16 (65 % padding) max 97.0 / 100.0 % (seeds 0, 1) vs avg 92.4 / 95.5 /
# 95.5 %; fsdd (81 % padding, 30 epochs) max 90.0 % vs avg 85.6 % (seed 0 each); TAU's 10 s
# clips have none, where the paper's avg stays. Chosen for the teacher's own accuracy: students
# distilled from the two were within seed noise of each other on both datasets (docs/BENCHMARKS.md,
# "Design measurements: kd").
AUTO_MAX_PADDING = 0.5

# `crop_seconds = "auto"` makes the teacher's content crops as long as this quantile of the clips'
# durations (at least CROP_SECONDS), so a crop holds nearly every sound whole; `crops = "auto"`
# takes content crops when such a crop is shorter than the window, else whole clips (a crop filling
# the window would be the same training under another cache key). Measured (width-0.5 max-pool VGGs,
# evaluate fold, 2-core CPU, benchmarks/ablation.py; docs/BENCHMARKS.md "Design measurements: kd"):
# office16 (90th percentile 2.24 s, window 3.4 s; 60 epochs) 2.24 s crops 98.5 / 98.5 % (seeds 0, 1)
# vs 1 s crops 86.4 / 80.3 % vs whole clips 97.0 / 100.0 %; fsdd (0.60 s: 1 s crops, window 2.3 s;
# seed 0) 1 s crops 91.6 % vs whole clips 90.0 % at 30 epochs, 84.1 vs 71.6 % at 10 (not side by
# side); TAU's 10 s clips and the demo's: whole clips.
AUTO_CROP_QUANTILE = 0.9
_CROP_FIX = 'give seconds (e.g. 2.0) or "auto" (as long as 90 % of the clips, at least 1 s)'


def _settle_auto(space: SearchSpace, key: str, choices: tuple[str, ...],
                 decide: Callable[[], tuple[str, str]], status: Callable[[str], None]
                 ) -> SearchSpace:
    """The space with ``[teacher] key = "auto"`` replaced by what `decide` returns (the choice
    and why, said in one status line); a given value is checked against `choices` and kept."""
    value = space.tables.get("teacher", {}).get(key)
    if value != AUTO:
        if value is not None and value not in choices:
            raise ConfigError(space.file, f"teacher.{key}", f"is {value!r}",
                              f"use one of {', '.join((*choices, AUTO))}")
        return space
    chosen, why = decide()
    status(f'teacher {key} "auto" -> {chosen}: {why}')
    return space.with_overrides({"teacher": {key: chosen}})


def settle_pool(space: SearchSpace, dataset: TauDataset,
                status: Callable[[str], None] = print) -> SearchSpace:
    """The space with ``[teacher] pool = "auto"`` replaced by "max" or "avg" for `dataset`
    (every clip's header, training and evaluate: no labels), said in one status line; other
    values pass through. Settled before the space's digest, so a study records the pool its
    teacher has and a TAU study keeps the digest it had with the paper's "avg"."""
    def decide() -> tuple[str, str]:
        seconds = float(space.features["clip_seconds"])
        share = padding_share(dataset.clip_paths(), seconds)
        return ("max" if share > AUTO_MAX_PADDING else "avg",
                f"the clips are on average {share:.0%} zero padding of their {seconds:g} s "
                f"window (max above {AUTO_MAX_PADDING:.0%})")

    return _settle_auto(space, "pool", POOLS, decide, status)


def settle_crops(space: SearchSpace, dataset: TauDataset,
                 status: Callable[[str], None] = print) -> SearchSpace:
    """The space with ``[teacher] crops = "auto"`` replaced by "content" when a crop is shorter
    than the window, else "clip", and ``crop_seconds = "auto"`` (also when crops is "auto" and
    no length is given) by the clips' 90th-percentile length, at least 1 s (every clip's header,
    like `settle_pool`); said in one status line; given values pass through. Settled before the
    space's digest, as the pool is; a settled length is written only where it matters (content
    crops) and differs from 1 s, so spaces settled before the option keep their digest."""
    table = space.tables.get("teacher", {})
    length = table.get("crop_seconds")
    if isinstance(length, str) and length != AUTO:
        raise ConfigError(space.file, "teacher.crop_seconds", f"is {length!r}", _CROP_FIX)
    measured = length == AUTO or (length is None and table.get("crops") == AUTO)
    why = ""
    if measured:
        seconds = durations(dataset.clip_paths())
        quantile = float(np.quantile(seconds, AUTO_CROP_QUANTILE)) if seconds else 0.0
        length = max(CROP_SECONDS, round(quantile, 2))
        why = (f" ({AUTO_CROP_QUANTILE:.0%} of the clips are at most {quantile:.2f} s long; "
               f"at least {CROP_SECONDS:g} s)")
    crop = float(length) if isinstance(length, int | float) else CROP_SECONDS

    def decide() -> tuple[str, str]:
        window = float(space.features["clip_seconds"])
        if crop >= window - 1e-6:  # the whole clip: the same training under another cache key
            return "clip", f"a {crop:g} s crop{why} fills the {window:g} s window"
        return "content", f"{crop:g} s crops{why} are shorter than the {window:g} s window"

    given = table.get("crops")
    space = _settle_auto(space, "crops", CROPS, decide, status)
    if not measured:
        return space
    teacher = {k: v for k, v in space.tables["teacher"].items() if k != "crop_seconds"}
    if teacher.get("crops") == "content":
        if given != AUTO:  # said with the crops when they were settled too
            status(f'teacher crop_seconds "auto" -> {crop:g}{why}')
        if crop != CROP_SECONDS:
            teacher["crop_seconds"] = crop
    return dataclasses.replace(space, tables={**space.tables, "teacher": teacher})


def settle_teacher(space: SearchSpace, dataset: TauDataset,
                   status: Callable[[str], None] = print) -> SearchSpace:
    """Both data-settled [teacher] choices: `settle_pool` and `settle_crops`."""
    return settle_crops(settle_pool(space, dataset, status), dataset, status)


def teacher_settings(values: dict[str, Any], file: str) -> TeacherSettings:
    """Parse the [teacher] table; unknown keys, wrong types and values name the key."""
    settings = dataclass_from_table(TeacherSettings, values, file, "teacher")
    if settings.pool not in POOLS:
        raise ConfigError(file, "teacher.pool", f"is {settings.pool!r}",
                          f"use one of {', '.join(POOLS)}")
    if settings.crops not in CROPS:
        raise ConfigError(file, "teacher.crops", f"is {settings.crops!r}",
                          f"use one of {', '.join(CROPS)}")
    if isinstance(settings.crop_seconds, str):  # "auto" is settled before the table is read
        raise ConfigError(file, "teacher.crop_seconds", f"is {settings.crop_seconds!r}",
                          _CROP_FIX)
    return settings


@dataclass(frozen=True)
class TeacherOutputs:
    """A teacher's outputs on every clip it covers, and how good it is.

    `source`: "trained" (a VGG trained here), "checkpoint" (a VGG started from --teacher FILE and
    fine-tuned here), "logits" (a --teacher-logits file) or "ensemble" (the average of
    `members`). `embeddings` is None when a stored-outputs member has none; `val_accuracy` None
    when the validation clips are not all covered.
    """

    key: str
    filenames: tuple[str, ...]
    logits: np.ndarray  # (N, n_classes)
    embeddings: np.ndarray | None  # (N, embed_dim)
    val_accuracy: float | None
    params: int
    path: Path | None
    source: str = "trained"
    members: tuple[TeacherOutputs, ...] = ()
    file: str | None = None  # the checkpoint or logits file it came from
    # Outputs of models that did not train on these clips (a stored file's held-out arrays):
    # what its validation accuracy is measured on, when they cover the validation clips.
    heldout_files: tuple[str, ...] = ()
    heldout_logits: np.ndarray | None = None

    def rows(self, filenames: Sequence[str]) -> np.ndarray:
        return _rows(self.filenames, filenames)

    def select(self, filenames: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher logits and embeddings (None without any) for `filenames`, in that order."""
        rows = self.rows(filenames)
        embeds = None if self.embeddings is None else torch.from_numpy(self.embeddings[rows])
        return torch.from_numpy(self.logits[rows]), embeds

    def describe(self) -> list[dict[str, Any]]:
        """One row per member (the teacher itself when it is not an ensemble): study attrs."""
        return [{"source": m.source, "file": m.file, "val_accuracy": m.val_accuracy,
                 "params": m.params} for m in (self.members or (self,))]


def teacher_key(ctx: TrialContext, settings: TeacherSettings, train_cfg: TrainConfig,
                init: FileRef | None = None) -> str:
    """A member's cache key: split, settings, training and the checkpoint it starts from."""
    plain = dataclasses.asdict(settings)
    plain.pop("members")  # how many members there are is not what one member depends on
    for name, before in (("pool", "avg"), ("crops", "clip"), ("crop_seconds", CROP_SECONDS)):
        if plain[name] == before:  # what every cache before the option was written with
            plain.pop(name)
    if "crops" not in plain:  # whole clips: the crop length plays no part
        plain.pop("crop_seconds", None)
    doc: dict[str, Any] = {"format": CACHE_FORMAT, "split": ctx.split_digest(),
                           "teacher": plain, "train": dataclasses.asdict(train_cfg)}
    if init is not None:
        doc["init_from"] = init.sha256
    blob = json.dumps(doc, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def teacher_train_config(ctx: TrialContext, settings: TeacherSettings, seed_offset: int = 0
                         ) -> TrainConfig:
    """The teacher's training settings: its own budget (raised by min_clips_seen on small
    data, like the students'), rate, batch and mixup; seeded per member. Its own
    `min_clips_seen` too, so the student's (which the teacher does not train by) is not part of
    the teacher's cache key; the shipped spaces set both alike, so their keys did not change."""
    epochs = epochs_for(settings.epochs, settings.min_clips_seen, len(ctx.train_files))
    return dataclasses.replace(ctx.train_cfg, epochs=epochs, lr=settings.lr,
                               batch_size=settings.batch_size, mixup_alpha=settings.mixup_alpha,
                               min_clips_seen=settings.min_clips_seen,
                               seed=ctx.train_cfg.seed + seed_offset)


def ensure_teachers(ctx: TrialContext, settings: TeacherSettings) -> TeacherOutputs:
    """What the students of `ctx` distil from: the context's --teacher checkpoints (fine-tuned)
    and --teacher-logits files, else `settings.members` VGGs trained here; several are averaged."""
    src = ctx.sources
    members = [ensure_teacher(ctx, settings, init=ref) for ref in src.teachers]
    members += [logits_teacher(ctx, ref) for ref in src.teacher_logits]
    if not members:
        members = [ensure_teacher(ctx, settings, seed_offset=k) for k in range(settings.members)]
    return members[0] if len(members) == 1 else average_teachers(members, ctx)


def ensure_teacher(ctx: TrialContext, settings: TeacherSettings, seed_offset: int = 0,
                   init: FileRef | None = None) -> TeacherOutputs:
    """Load one cached VGG teacher for this context, training and caching it first if needed;
    `init`: start from that checkpoint (fine-tuned on this context's training split)."""
    train_cfg = teacher_train_config(ctx, settings, seed_offset)
    key = teacher_key(ctx, settings, train_cfg, init)
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
        return cached if cached is not None else _train(ctx, settings, train_cfg, key, path,
                                                        init)


def teacher_model(ctx: TrialContext, settings: TeacherSettings, init: FileRef | None,
                  seed: int) -> tuple[VggTeacher, VggConfig]:
    """An untrained VGG for `ctx` (seeded), or one started from `init`: the architecture its
    description records, this dataset's input planes and classes (the head afresh when the
    class count differs)."""
    in_channels = int(ctx.features.x.shape[1])
    vgg_cfg = settings.vgg_config(in_channels=in_channels, n_classes=ctx.n_classes)
    ckpt = checkpoint_of(init, "--teacher checkpoint") if init is not None else None
    if ckpt is not None and isinstance(ckpt.meta.get("vgg"), dict):
        recorded = {k: tuple(v) if isinstance(v, list) else v for k, v in ckpt.meta["vgg"].items()}
        vgg_cfg = VggConfig(**{**recorded, "in_channels": in_channels,
                               "n_classes": ctx.n_classes})
    torch.manual_seed(seed)  # its initial weights: the same teacher every run
    model = VggTeacher(vgg_cfg)
    if ckpt is not None:
        note = load_into(model, ckpt)
        if note:
            ctx.status(note)
    return model, vgg_cfg


def train_teacher(ctx: TrialContext, settings: TeacherSettings, train_cfg: TrainConfig,
                  init: FileRef | None = None
                  ) -> tuple[VggTeacher, VggConfig, float, TrainResult]:
    """Train one VGG on `ctx`'s training split: the model, its config, its validation accuracy
    and what training measured."""
    x, y = ctx.train_xy
    model, vgg_cfg = teacher_model(ctx, settings, init, train_cfg.seed)
    start = f"from {init.path.name}" if init is not None else "from scratch"
    ctx.status(f"training the KD teacher {start} ({sum(p.numel() for p in model.parameters()):,}"
               f" params, {train_cfg.epochs} epochs, seed {train_cfg.seed}; search "
               f"--teacher-epochs N sets its epochs)")
    # Its cost, said once after at least 5 s of its epochs, as a search's and a retrain's are.
    cost = EpochClock(SearchPlan(epochs=train_cfg.epochs, folds=1, trials=None, unit="teacher",
                                 shorten="--teacher-epochs"), ctx.status)
    with progress_bar(ctx.progress, count=False, info=True, elapsed=True, remaining=True) as bar:
        task = bar.add_task("teacher", total=None, info="")

        def on_step(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        def on_epoch(epoch: int, acc: float) -> None:
            bar.update(task, info=f"epoch {epoch + 1}/{train_cfg.epochs}: val acc {acc:.3f}")
            cost.epoch(epoch)

        crop = (content_crop(ctx.space.features, str(ctx.space.file), int(x.shape[-1]),
                             float(settings.crop_seconds)) if settings.crops == "content"
                else None)
        cost.start()
        result = train_model(model, x, y, train_cfg, ctx.n_classes, val=ctx.val_xy,
                             on_epoch=on_epoch, on_step=on_step, transform=crop)
    device = resolve_device(train_cfg.device)
    accuracy = evaluate(model, *ctx.val_xy, ctx.n_classes, device=device).accuracy
    # Said as it ends (a default-budget teacher is an hour on a CPU, one per fold): whether it
    # is worth distilling is known here, not only in the tables after the search.
    held = len(ctx.val_files)
    ctx.status(f"KD teacher trained: {accuracy_text(accuracy, held)} on its {held} held-out "
               f"clips ({duration_text(result.seconds_total)})")
    return model, vgg_cfg, accuracy, result


def _train(ctx: TrialContext, settings: TeacherSettings, train_cfg: TrainConfig, key: str,
           path: Path, init: FileRef | None) -> TeacherOutputs:
    """Train the teacher, cache it with its outputs; the caller holds its build lock."""
    model, vgg_cfg, val_acc, _ = train_teacher(ctx, settings, train_cfg, init)
    logits, embeds = _outputs(model, ctx, resolve_device(train_cfg.device))
    with atomic_dir(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(tmp / "weights.safetensors"))
        np.savez(tmp / "outputs.npz", logits=logits, embeddings=embeds)
        (tmp / "meta.json").write_text(json.dumps({
            "sha256": checksums(tmp, ("weights.safetensors", "outputs.npz")),
            "key": key, "val_accuracy": val_acc, "filenames": list(ctx.features.filenames),
            "params": sum(p.numel() for p in model.parameters()),
            "vgg": dataclasses.asdict(vgg_cfg), "settings": dataclasses.asdict(settings),
            "init_from": init.attr() if init is not None else None,
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
    init = meta.get("init_from")
    return TeacherOutputs(key, tuple(meta["filenames"]), logits, embeds,
                          float(meta["val_accuracy"]), int(meta["params"]), path,
                          source="checkpoint" if init else "trained",
                          file=init["path"] if init else None)


def logits_teacher(ctx: TrialContext, ref: FileRef) -> TeacherOutputs:
    """A --teacher-logits file as a teacher, checked against the dataset (every fold1_train
    clip, its classes) and the sha256 the study recorded."""
    verified(ref, "--teacher-logits file")
    files, logits, embeds = read_teacher_logits(
        ref.path, ctx.dataset.labels, [c.filename for c in ctx.dataset.train])
    heldout = read_heldout_logits(ref.path, len(ctx.dataset.labels))
    out = TeacherOutputs(digest({"logits": ref.sha256}), files, logits, embeds, None, 0, None,
                         source="logits", file=str(ref.path),
                         heldout_files=heldout[0] if heldout else (),
                         heldout_logits=heldout[1] if heldout else None)
    return dataclasses.replace(out, val_accuracy=_val_accuracy(out, ctx))


def average_teachers(members: Sequence[TeacherOutputs], ctx: TrialContext) -> TeacherOutputs:
    """The ensemble: members' logits averaged over the clips all of them cover; embeddings
    concatenated when every member has them (else none)."""
    covered = set(members[0].filenames).intersection(*(m.filenames for m in members[1:]))
    files = tuple(f for f in members[0].filenames if f in covered)
    logits = np.mean([m.logits[m.rows(files)] for m in members], axis=0, dtype=np.float64)
    embeds = None
    if all(m.embeddings is not None for m in members):
        embeds = np.concatenate([m.embeddings[m.rows(files)] for m in members  # type: ignore[index]
                                 ], axis=1)
    held: tuple[str, ...] = ()
    held_logits = None
    if all(m.heldout_logits is not None for m in members):  # then averaged as the logits are
        common = set(members[0].heldout_files).intersection(
            *(m.heldout_files for m in members[1:]))
        held = tuple(f for f in members[0].heldout_files if f in common)
        held_logits = np.mean([m.heldout_logits[_rows(m.heldout_files, held)]  # type: ignore[index]
                               for m in members], axis=0).astype(np.float32)
    out = TeacherOutputs(digest([m.key for m in members]), files, logits.astype(np.float32),
                         embeds, None, sum(m.params for m in members), None,
                         source="ensemble", members=tuple(members), heldout_files=held,
                         heldout_logits=held_logits)
    return dataclasses.replace(out, val_accuracy=_val_accuracy(out, ctx))


def _rows(filenames: Sequence[str], wanted: Sequence[str]) -> np.ndarray:
    index = {f: i for i, f in enumerate(filenames)}
    return np.array([index[f] for f in wanted], dtype=np.int64)


def _val_accuracy(teacher: TeacherOutputs, ctx: TrialContext) -> float | None:
    """Accuracy of the teacher on `ctx`'s validation clips: of its held-out outputs when they
    cover them (a stored file's, from models that did not train on them), else of its logits;
    None if a clip is missing from both."""
    if not ctx.val_files:
        return None
    if teacher.heldout_logits is not None and set(ctx.val_files) <= set(teacher.heldout_files):
        logits = teacher.heldout_logits[_rows(teacher.heldout_files, ctx.val_files)]
    elif set(ctx.val_files) <= set(teacher.filenames):
        logits = teacher.logits[teacher.rows(ctx.val_files)]
    else:
        return None
    return float(np.mean(logits.argmax(axis=1) == ctx.val_xy[1].numpy()))


def load_teacher_model(outputs: TeacherOutputs) -> VggTeacher:
    """Rebuild a cached VGG teacher (for inspection or re-use outside the search)."""
    if outputs.path is None:
        raise ValueError(f"a {outputs.source} teacher has no network to load")
    meta = json.loads((outputs.path / "meta.json").read_text())
    vgg = meta["vgg"]
    model = VggTeacher(VggConfig(**{k: tuple(v) if isinstance(v, list) else v
                                    for k, v in vgg.items()}))
    model.load_state_dict(load_file(str(outputs.path / "weights.safetensors")))
    return model.eval()
