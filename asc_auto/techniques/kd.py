"""`kd`: distil a large VGG teacher into a small 3-layer CNN student at a searched precision.

Seed paper (section 2.3): log-mel 64 bands / 25 ms / 10 ms, SpecAugment, loss
0.25 KL(embeddings) + 0.25 KL(scores) + 0.50 CE, FP16. Here the student widths, kernel, the loss
weights (on the simplex), the temperature, the learning rate, mixup and the precision are searched.

The projection from the student's embedding to the teacher's (needed when their sizes differ) is
a training-only module: it is not part of the deployed student, so it is neither counted in the
size nor exported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from optuna.trial import FrozenTrial
from torch import nn

from asc_auto.compress.kd import DistillationLoss
from asc_auto.compress.size import PRECISIONS, Precision
from asc_auto.data.tau import TauDataset
from asc_auto.features.crops import CROPS, FrameCrop, content_crop
from asc_auto.models.base import POOLS
from asc_auto.models.cnn import CnnStudent, Projection, StudentConfig
from asc_auto.space import SearchSpace
from asc_auto.teacher import (
    TeacherOutputs,
    ensure_teachers,
    settle_teacher,
    teacher_settings,
    teacher_train_config,
    train_teacher,
)
from asc_auto.teacher_summary import teacher_lines
from asc_auto.techniques.base import (
    FINISH_RANGES,
    Candidate,
    EpochHook,
    Outcome,
    Pretrained,
    StepHook,
    Technique,
    TrialContext,
    calibration_clips,
    checked_choice,
    register_technique,
    train_and_finish,
)
from asc_auto.train import TrainConfig
from asc_auto.transfer import TEACHER_FILES


class DistillNet(nn.Module):
    """Student plus its training-only projection: outputs (logits, embedding in teacher space)."""

    def __init__(self, student: nn.Module, projection: nn.Module) -> None:
        super().__init__()
        self.student = student
        self.projection = projection

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, emb = self.student(x)
        return logits, self.projection(emb)


def student_config(config: dict[str, Any], in_channels: int, n_classes: int) -> StudentConfig:
    """The student architecture a sampled configuration describes."""
    return StudentConfig(
        channels=(int(config["c1"]), int(config["c2"]), int(config["c3"])),
        kernel_size=int(config["kernel_size"]),
        pool=str(config.get("pool", "avg")),  # spaces without the param: the paper's average
        in_channels=in_channels,
        n_classes=n_classes,
    )


def train_crop(config: dict[str, Any], ctx: TrialContext) -> FrameCrop | None:
    """The student's training crop for a configuration: None (whole clips) unless its `crops`
    param is "content". Evaluation and the deployed student always see whole clips: the global
    pool makes the student indifferent to the number of frames."""
    if checked_choice({"crops": config.get("crops", "clip")}, "crops", CROPS, ctx) == "clip":
        return None
    return content_crop(ctx.space.features, str(ctx.space.file), int(ctx.features.x.shape[-1]))


# The student's SpecAugment (a space's `spec_augment` param): "on" masks as the [train] table sets
# (the paper's recipe), "off" trains the student without masks; the teacher, trained once per
# split for every trial, keeps the table's. Why searched: on office16 (short events padded to
# 3.4 s) at 27 epochs of 154 clips the kd pick scored 82.6 % with the table's masks and 94.9 %
# without them (6 seeds, the same teacher; the baseline CNN 84.8 %), the paper's student 70.2 and
# 82.3 % (3 seeds), where at 325 epochs the pick scored 99.5 % with them
# (kd.toml's comment; docs/BENCHMARKS.md "kd's SpecAugment at a short budget").
SPEC_AUGMENT = ("on", "off")


def loss_weights(config: dict[str, Any], has_embeddings: bool) -> tuple[float, float, float]:
    """(alpha, beta, gamma) of the KD loss. A teacher without embeddings (stored logits that
    have none) cannot teach the alpha term: it is dropped and beta, gamma rescaled to sum to 1
    (gamma alone when both are 0)."""
    alpha, beta, gamma = (float(config[k]) for k in ("alpha", "beta", "gamma"))
    if has_embeddings:
        return alpha, beta, gamma
    rest = beta + gamma
    return (0.0, beta / rest, gamma / rest) if rest > 0 else (0.0, 0.0, 1.0)


@register_technique
class KnowledgeDistillation(Technique):
    name = "kd"
    summary = "VGG teacher -> 3-layer CNN student, KD loss on embeddings + scores + CE"
    tables = frozenset({"teacher"})
    teacher_files = TEACHER_FILES
    shape_params = frozenset({"c1", "c2", "c3", "kernel_size"})
    choices: ClassVar[Mapping[str, tuple[Any, ...]]] = {
        "pool": POOLS, "precision": PRECISIONS, "crops": CROPS,
        "spec_augment": SPEC_AUGMENT}
    ranges: ClassVar[Mapping[str, tuple[float, float]]] = FINISH_RANGES

    def __init__(self) -> None:
        # One teacher per train/validation split: a cross-validated search distils each fold's
        # student from a teacher that never saw that fold's validation clips.
        self.teachers: dict[str, TeacherOutputs] = {}

    def settle(self, space: SearchSpace, dataset: TauDataset,
               status: Callable[[str], None]) -> SearchSpace:
        return settle_teacher(space, dataset, status)

    def study_notes(self, attrs: Mapping[str, Any], best: FrozenTrial | None) -> list[str]:
        return teacher_lines(attrs, best)

    def teacher_for(self, ctx: TrialContext) -> TeacherOutputs:
        """The teacher trained on `ctx`'s training split (from the cache after the first time)."""
        split = ctx.split_digest()
        if split not in self.teachers:
            settings = teacher_settings(ctx.space.tables.get("teacher", {}), str(ctx.space.file))
            self.teachers[split] = ensure_teachers(ctx, settings)
        return self.teachers[split]

    def prepare(self, ctx: TrialContext) -> dict[str, Any]:
        settings = teacher_settings(ctx.space.tables.get("teacher", {}), str(ctx.space.file))
        teacher = self.teacher_for(ctx)
        return {"teacher_val_accuracy": teacher.val_accuracy,
                "teacher_params": teacher.params,
                "teacher_settings": dataclasses.asdict(settings),
                "teacher_source": teacher.source,
                "teacher_members": teacher.describe()}

    def pretrain(self, ctx: TrialContext) -> Pretrained:
        """The teacher, trained on `ctx` with the [teacher] settings: what `--teacher FILE`
        starts a kd search's teacher from (the student is not pretrained here)."""
        settings = teacher_settings(ctx.space.tables.get("teacher", {}), str(ctx.space.file))
        train_cfg = teacher_train_config(ctx, settings)
        model, vgg_cfg, accuracy, result = train_teacher(ctx, settings, train_cfg)
        meta = {"kind": "teacher", "model": "vgg_teacher", "vgg": dataclasses.asdict(vgg_cfg)}
        return Pretrained(model.cpu().eval(), accuracy, meta, result)

    def trial_train_config(self, config: dict[str, Any], ctx: TrialContext) -> TrainConfig:
        """The student's settings: SpecAugment off when the configuration's `spec_augment` says
        so (spaces without the param: on, as before it existed); the teacher keeps the table's."""
        cfg = super().trial_train_config(config, ctx)
        wanted = {"spec_augment": config.get("spec_augment", "on")}
        if checked_choice(wanted, "spec_augment", SPEC_AUGMENT, ctx) == "off":
            cfg = dataclasses.replace(cfg, freq_masks=0, time_masks=0)
        return cfg

    def build(self, config: dict[str, Any], ctx: TrialContext) -> Candidate:
        cfg = student_config(config, ctx.features.x.shape[1], ctx.n_classes)
        return Candidate(model=CnnStudent(cfg), precision=Precision(config["precision"]),
                         info={"channels": list(cfg.channels)})

    def fit(self, candidate: Candidate, config: dict[str, Any], ctx: TrialContext,
            on_epoch: EpochHook | None = None, on_step: StepHook | None = None) -> Outcome:
        teacher = self.teacher_for(ctx)
        student = candidate.model
        t_logits, t_emb = teacher.select(ctx.train_files)
        embed_dim = int(student.embed_dim)  # not a forward pass: it would move BN statistics
        projection: nn.Module = (
            nn.Identity() if t_emb is None or embed_dim == t_emb.shape[1]
            else Projection(embed_dim, t_emb.shape[1])
        )
        net = DistillNet(student, projection)
        weights = loss_weights(config, has_embeddings=t_emb is not None)
        loss = DistillationLoss(*weights, float(config["temperature"]))
        extras = (t_logits,) if t_emb is None else (t_logits, t_emb)

        def loss_fn(outputs: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor,
                    extras: Sequence[torch.Tensor]) -> torch.Tensor:
            emb = extras[1] if len(extras) > 1 else None
            return loss(outputs[0].float(), outputs[1].float(), extras[0], emb, targets)[0]

        cfg = self.trial_train_config(config, ctx)
        result = train_and_finish(net, cfg, config, ctx, on_epoch, on_step, loss_fn=loss_fn,
                                  extras=extras, transform=train_crop(config, ctx))
        return self.deploy_and_score(
            student, candidate.precision, ctx, result, ctx.train_xy[0],
            calibration_clips(config),
            info={"teacher_val_accuracy": teacher.val_accuracy,
                  "kd_weights_used": [round(w, 4) for w in weights]})
