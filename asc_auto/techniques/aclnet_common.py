"""AclNet training as the seed paper describes it, shared by the `int8` and `lt` techniques.

Training sees random 1 s crops of the cached 16 kHz waveforms with a random gain and additive
noise, plus mixup; evaluation runs the model on 1 s non-overlapping segments and averages the
class probabilities over the clip (`SegmentAverage`, which is also what gets deployed).
SpecAugment is switched off: it masks spectrogram cells, and there is no spectrogram here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from optuna.trial import FrozenTrial
from torch import nn

from asc_auto.errors import ConfigError
from asc_auto.features.config import frontend_config_from_dict
from asc_auto.features.crops import content_starts, heard_length
from asc_auto.logit_distill import distillation, stored_teacher, with_distill_params
from asc_auto.models.aclnet import LLF_COMPRESS, AclNet, AclNetConfig, SegmentAverage
from asc_auto.space import SearchSpace
from asc_auto.staging import to_device
from asc_auto.tables import dataclass_from_table, ranged, settings_table
from asc_auto.teacher_summary import STRONGER_STORED, teacher_lines
from asc_auto.techniques.base import (
    EpochHook,
    Pretrained,
    StepHook,
    TrialContext,
    checked_choice,
)
from asc_auto.train import (
    FINISH_LR_FACTOR,
    TrainConfig,
    TrainResult,
    cross_entropy_loss,
    evaluate,
    finish_config,
    resolve_device,
    train_model,
)
from asc_auto.transfer import Sources

AUGMENT_TABLE = "augment"


@settings_table(AUGMENT_TABLE)
@dataclass(frozen=True)
class AugmentSettings:
    """Waveform augmentation of the seed paper (its values are not given; these are ours)."""

    crop_seconds: float = ranged(1.0, 0.0, None, low_open=True)  # training crop = eval segment
    gain_db: float = ranged(6.0, 0.0)  # gain drawn uniformly in [-gain_db, +gain_db]
    snr_db: float = ranged(20.0)  # noise SNR drawn uniformly in [snr_db, snr_db + 30] dB
    noise_prob: float = ranged(0.5, 0.0, 1.0)  # share of training crops that get noise
    # Crops, averaged segments and calibration from the recorded part of each clip, not the
    # zeros that pad short clips to clip_seconds (see `content_lengths`); a space's searched
    # `crops` param ("clip" | "content") decides per trial instead (`skips_padding`).
    skip_padding: bool = False


def augment_settings(ctx: TrialContext) -> AugmentSettings:
    """The space file's [augment] table over the defaults."""
    file = str(ctx.space.file)
    settings = dataclass_from_table(AugmentSettings, ctx.space.tables.get(AUGMENT_TABLE, {}),
                                    file, AUGMENT_TABLE)
    if settings.crop_seconds <= 0:
        raise ConfigError(file, "augment.crop_seconds", "must be > 0", "use 1.0")
    return settings


CROPS = ("clip", "content")  # the searched param's choices: anywhere in the padded clip, or
# from its recorded part (skip_padding)


def skips_padding(config: dict[str, Any], ctx: TrialContext) -> bool:
    """Whether this trial crops, calibrates and averages from the recorded part only: its
    `crops` param when the space searches it, else the [augment] table's `skip_padding`."""
    if "crops" not in config:
        return augment_settings(ctx).skip_padding
    return checked_choice(config, "crops", CROPS, ctx) == "content"


def sample_rate(ctx: TrialContext) -> int:
    """Sample rate of the cached waveforms (the space file's [features] table)."""
    cfg = frontend_config_from_dict(ctx.space.features, str(ctx.space.file))
    if cfg.kind != "waveform":
        raise ConfigError(ctx.space.file, "features.kind", f"is {cfg.kind!r}",
                          'AclNet reads raw audio: use kind = "waveform"')
    return cfg.sample_rate


def segment_samples(ctx: TrialContext) -> int:
    """Samples of one crop / evaluation segment, never longer than the cached clips."""
    seconds = augment_settings(ctx).crop_seconds
    rate = sample_rate(ctx)
    return min(round(seconds * rate), int(ctx.features.x.shape[-1]))


def content_lengths(x: torch.Tensor) -> torch.Tensor:
    """Samples up to and including each clip's last non-zero one (any channel): (B, C, S) -> (B,).

    Clips shorter than `clip_seconds` are cached zero-padded at the end; on data of short events
    a uniform 1 s crop of a padded clip is mostly silence labelled with the event's class (on
    office16, median clip 1.0 s of 3.3 s, over half of the crops; fsdd 0.4 s of 2.3 s, two thirds).
    Exact zeros only: any recorded sound, however quiet, counts as content.
    """
    return heard_length(x.ne(0).any(dim=1))


class WaveAugment:
    """Batch transform for `train_model`: random crop, random gain, additive white noise.

    With `skip_padding` a crop holds as much of the clip's recorded part (`content_lengths`)
    as it can: its start is uniform in [0, content - crop] for content longer than a crop, and
    in [content - crop, 0] for shorter content, which then sits whole at a random offset in the
    crop (zeros before and after it): a time shift instead of the same crop every epoch. The
    start is drawn as before and scaled onto that range, so clips without padding (TAU's 10 s
    scenes) get exactly the crops they got without the option.

    Runs where the batch is (the training device). The per-example draws (crop starts, gains,
    SNRs, noise on/off: a few numbers per clip) come from the CPU generator and cross with one
    non-blocking copy each; the noise itself (as large as the crops) is drawn on the device
    from torch's generator there (seeded by `train_model`), so no audio-sized tensor crosses.
    On the CPU all draws come from `gen`, as before.
    """

    def __init__(self, settings: AugmentSettings, crop: int) -> None:
        self.settings = settings
        self.crop = crop

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b, c, length = x.shape
        dev = x.device
        crop = min(self.crop, length)
        starts = to_device(torch.randint(0, length - crop + 1, (b,), generator=gen), dev)
        if self.settings.skip_padding:  # scaled onto the range above: no sync, no new draw
            starts = content_starts(starts, content_lengths(x), length, crop)
        idx = starts[:, None] + torch.arange(crop, device=dev)[None, :]
        # Gather first, convert after: only the crop is widened to float32 (the same values).
        # Positions before the clip's start (a shifted short clip) read as zeros.
        out = torch.gather(x, 2, idx.clamp_min(0)[:, None, :].expand(b, c, crop)).float()
        if self.settings.skip_padding:
            out = out * (idx >= 0)[:, None, :]
        s = self.settings
        gain_db = to_device((torch.rand(b, 1, 1, generator=gen) * 2 - 1) * s.gain_db, dev)
        out = out * 10 ** (gain_db / 20)
        if s.noise_prob > 0:
            snr = to_device(s.snr_db + 30 * torch.rand(b, 1, 1, generator=gen), dev)
            rms = out.pow(2).mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-5)
            use = to_device((torch.rand(b, 1, 1, generator=gen) < s.noise_prob).float(), dev)
            noise = (torch.randn(out.shape, generator=gen) if dev.type == "cpu"
                     else torch.randn(out.shape, device=dev))
            out = out + use * noise * rms * 10 ** (-snr / 20)
        return out


def aclnet_config(config: dict[str, Any], n_classes: int, sample_rate: int) -> AclNetConfig:
    """The architecture a sampled configuration describes (width, LLF channels, HLF depth)."""
    return AclNetConfig(
        width=float(config["width"]),
        llf_channels=(int(config["llf1"]), int(config["llf2"])),
        depth=int(config["depth"]),
        llf_compress=str(config.get("llf_compress", "none")),  # a space without it: the paper's
        n_classes=n_classes,
        sample_rate=sample_rate,
    )


def build_aclnet(config: dict[str, Any], ctx: TrialContext, seed: int | None = None,
                 ) -> SegmentAverage:
    """Untrained AclNet wrapped for segment-averaged inference; seeded so init is reproducible."""
    torch.manual_seed(ctx.train_cfg.seed if seed is None else seed)
    if "llf_compress" in config:
        checked_choice(config, "llf_compress", LLF_COMPRESS, ctx)
    rate = sample_rate(ctx)
    return SegmentAverage(AclNet(aclnet_config(config, ctx.n_classes, rate)), segment_samples(ctx),
                          skip_silent=skips_padding(config, ctx))


def aclnet_train_config(config: dict[str, Any], ctx: TrialContext,
                        device: str | None = None) -> TrainConfig:
    """The trial's training settings: searched lr and mixup, SpecAugment off."""
    cfg = ctx.train_cfg
    return dataclasses.replace(
        cfg, lr=float(config["lr"]), mixup_alpha=float(config["mixup_alpha"]),
        freq_masks=0, time_masks=0, device=cfg.device if device is None else device)


def train_aclnet(model: nn.Module, config: dict[str, Any], ctx: TrialContext,
                 on_epoch: EpochHook | None = None, on_step: StepHook | None = None,
                 amp: bool | None = None, frozen_batchnorm: bool = False,
                 validate: bool = True, cfg: TrainConfig | None = None) -> TrainResult:
    """Train in place on random crops; per-epoch validation (off with `validate`) is
    segment-averaged over clips. With stored teacher logits and a `distill_weight` above 0
    each crop is also taught its clip's teacher outputs (logit_distill.py). `amp`,
    `frozen_batchnorm`: as train_model's (`amp` None: `train.default_amp`, bf16 on CUDA).
    `cfg`: settings other than the trial's (aclnet_train_config), e.g. the finish's."""
    cfg = aclnet_train_config(config, ctx) if cfg is None else cfg
    x, y = ctx.train_xy
    settings = dataclasses.replace(augment_settings(ctx), skip_padding=skips_padding(config, ctx))
    transform = WaveAugment(settings, segment_samples(ctx))
    distill = distillation(config, ctx)
    loss_fn, extras = ((cross_entropy_loss, ()) if distill is None
                       else (distill.loss_fn(), (distill.logits,)))
    return train_model(model, x, y, cfg, ctx.n_classes, val=ctx.val_xy if validate else None,
                       on_epoch=on_epoch, on_step=on_step, transform=transform, amp=amp,
                       loss_fn=loss_fn, extras=extras, frozen_batchnorm=frozen_batchnorm)


def fine_tune_aclnet(model: nn.Module, config: dict[str, Any], ctx: TrialContext, epochs: int,
                     lr_factor: float = FINISH_LR_FACTOR, mixup_alpha: float = 0.0,
                     on_step: StepHook | None = None, device: str | None = None,
                     amp: bool | None = None) -> None:
    """Fine-tune a trained AclNet in place: `epochs` at `lr_factor` of the searched peak rate,
    mixup at `mixup_alpha`, BatchNorm frozen (its statistics the trained network's), no
    per-epoch validation (nothing reads it: the caller scores the result). With the defaults,
    the finish (train.finish_config); int8's QAT is this on the quantized network."""
    if epochs < 1:
        return
    cfg = finish_config(aclnet_train_config(config, ctx, device=device), epochs, lr_factor,
                        mixup_alpha)
    train_aclnet(model, config, ctx, cfg=cfg, on_step=on_step, amp=amp, frozen_batchnorm=True,
                 validate=False)


class StoredLogitStudent:
    """What `int8` and `lt` share beyond AclNet: teachers (a search given `--teacher-logits`
    files searches `distill_weight` and `distill_temperature` (logit_distill.py) and shows the
    teacher's accuracy beside the best student's, as kd does) and the trial's training settings
    (`aclnet_train_config`)."""

    teacher_files: ClassVar[frozenset[str]] = frozenset({"teacher_logits"})

    def trial_train_config(self, config: dict[str, Any], ctx: TrialContext) -> TrainConfig:
        return aclnet_train_config(config, ctx)

    def with_sources(self, space: SearchSpace, sources: Sources) -> SearchSpace:
        return with_distill_params(space, sources)

    def prepare(self, ctx: TrialContext) -> dict[str, Any]:
        teacher = stored_teacher(ctx)
        if teacher is None:
            return {}
        return {"teacher_val_accuracy": teacher.val_accuracy, "teacher_params": teacher.params,
                "teacher_source": teacher.source, "teacher_members": teacher.describe()}

    def study_notes(self, attrs: Mapping[str, Any], best: FrozenTrial | None) -> list[str]:
        return teacher_lines(attrs, best, STRONGER_STORED)


# What decides AclNet's tensors, and llf_compress: it changes no tensor, but weights trained on
# compressed frames are no start for a network without (and back), so --init-from fixes it too.
SHAPE_PARAMS = frozenset({"width", "llf1", "llf2", "depth", "llf_compress"})


def pretrain_aclnet(ctx: TrialContext) -> Pretrained:
    """AclNet of the space's paper configuration trained on `ctx` (FP32, neither quantized
    nor pruned): the checkpoint `int8` and `lt` searches start from with --init-from."""
    config = dict(ctx.space.paper)
    model = build_aclnet(config, ctx)
    result = train_aclnet(model, config, ctx)
    meta = {"kind": "model", "model": "aclnet",
            "config": {k: v for k, v in config.items() if k in SHAPE_PARAMS}}
    return Pretrained(model.cpu().eval(), val_accuracy(model, ctx), meta, result)


def val_accuracy(model: nn.Module, ctx: TrialContext, device: str | torch.device | None = None,
                 ) -> float:
    """Clip accuracy on the validation split (the model averages its segments itself)."""
    dev = resolve_device(ctx.train_cfg.device) if device is None else device
    return evaluate(model, *ctx.val_xy, ctx.n_classes, ctx.train_cfg.eval_batch_size,
                    dev).accuracy


def calibration_crops(ctx: TrialContext, n: int, batch_size: int = 16,
                      skip: bool | None = None) -> list[torch.Tensor]:
    """Up to `n` 1 s training segments (consecutive segments of the first clips), in batches:
    what INT8 calibration sees, in the shape the quantized network runs on. With `skip` (default:
    the [augment] table's skip_padding) all-zero segments (padding) are skipped, as the deployed
    average then skips them."""
    seg = segment_samples(ctx)
    x = ctx.train_xy[0]
    per_clip = max(1, x.shape[-1] // seg)
    skip = augment_settings(ctx).skip_padding if skip is None else skip
    found: list[torch.Tensor] = []
    count, start, step = 0, 0, math.ceil(n / per_clip)
    while count < n and start < len(x):  # more clips only while padding was skipped
        clips = x[start:start + step, :, : per_clip * seg]
        b, c, _ = clips.shape
        crops = clips.reshape(b, c, per_clip, seg).transpose(1, 2).reshape(-1, c, seg)
        if skip:
            crops = crops[crops.abs().amax(dim=(1, 2)) > 0]
        found.append(crops[: n - count].float())
        count += len(found[-1])
        start += step
    crops = torch.cat(found)
    return [crops[i:i + batch_size] for i in range(0, len(crops), batch_size)]
