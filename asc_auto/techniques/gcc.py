"""`gcc`: binaural log-mels plus a GCC-PHAT gram into a small depthwise-separable CNN.

Seed paper (section 2.4): 3 x 40 x ~500 inputs (log-mel left, log-mel right, GCC-gram; 64 ms
window, 45 ms overlap), 5 depthwise-separable conv layers, 252,491 parameters, FP16. Here the
widths, kernel, learning rate, mixup, precision (FP16, FP32, NNCF INT8) and `use_gcc` are
searched.

`use_gcc` is the ablation switch: false drops the GCC plane (the model sees the two log-mels
only), so a user can measure what the spatial information adds on their data. The feature cache
always holds all three planes; the plane is dropped by `PlaneSelect` inside the deployed model,
so both settings read one cache and take the same 3-plane input. The space file's `[gcc]` table
can fix the switch for a whole study (`use_gcc = true | false`, default "search"), and
`ablate = true` makes `after_search` retrain the best configuration with the other setting
(`ablate_gcc`), recording both accuracies in the study's `gcc_ablation` attribute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import optuna
import torch
from optuna.trial import FrozenTrial
from torch import nn

from asc_auto.compress.size import PRECISIONS, Precision
from asc_auto.cv import CvScore
from asc_auto.errors import AscError, ConfigError
from asc_auto.models.dwcnn import DwCnn, DwCnnConfig
from asc_auto.records import pick_trial
from asc_auto.schema import TrialRecord
from asc_auto.seeds import trial_seed
from asc_auto.stats import accuracy_text, binomial_se
from asc_auto.tables import table_values
from asc_auto.techniques.base import (
    FINISH_RANGES,
    Candidate,
    EpochHook,
    Outcome,
    StepHook,
    Technique,
    TrialContext,
    calibration_clips,
    register_technique,
    train_and_finish,
)

GCC_PLANE = 2  # planes of the gcc frontend: 0 log-mel left, 1 log-mel right, 2 GCC-gram
ABLATION_ATTR = "gcc_ablation"


@dataclass(frozen=True)
class GccSettings:
    """The space file's [gcc] table."""

    use_gcc: bool | None = None  # None: follow the searched `use_gcc` param ("search")
    ablate: bool = True  # after the search, retrain the best config with the other setting


def gcc_settings(table: dict[str, Any], file: str) -> GccSettings:
    """Parse [gcc] by the rules of every settings table (`tables.table_values`: unknown keys
    and wrong types are errors naming the file and key); `use_gcc` also takes the word "search".
    Read when the technique prepares, as before: the `settings_table` registry (checked when the
    space file is read) holds tables of ranged numbers, and [gcc] has none."""
    value = table.get("use_gcc", "search")
    if value != "search" and not isinstance(value, bool):
        raise ConfigError(file, "gcc.use_gcc", f"must be \"search\", true or false, got {value!r}")
    values = {**table, "use_gcc": None if value == "search" else value}
    return GccSettings(**table_values(GccSettings, values, file, "gcc"))


class PlaneSelect(nn.Module):
    """Standardises the input planes, feeds the first `n_planes` to the CNN (2: GCC dropped).

    Part of the deployed model, so every configuration takes the cached 3-plane features and
    the with/without-GCC comparison needs no second cache. The standardisation (mean and std
    per plane and band of the training split, set by `fit`) matters because log-mels sit far
    from zero and a short training run leaves BatchNorm's running statistics behind: measured on
    the demo data, the paper model predicted the majority class for 3 of 4 epochs without it.
    It is feature extraction (buffers, not parameters), which the size rules exclude.
    """

    def __init__(self, net: nn.Module, n_planes: int, n_bands: int) -> None:
        super().__init__()
        self.net = net
        self.n_planes = n_planes
        self.register_buffer("mean", torch.zeros(1, n_planes, n_bands, 1))
        self.register_buffer("std", torch.ones(1, n_planes, n_bands, 1))

    @torch.no_grad()
    def fit_standardisation(self, x: torch.Tensor) -> None:
        """Per plane and band statistics of training features (N, planes, bands, frames)."""
        total = torch.zeros_like(self.mean, dtype=torch.float64)
        squares = torch.zeros_like(total)
        for start in range(0, len(x), 256):  # chunks: the full TAU train fold is ~1.8 GB
            part = x[start:start + 256, : self.n_planes].to(torch.float64)
            total += part.sum(dim=(0, 3), keepdim=True)
            squares += part.square().sum(dim=(0, 3), keepdim=True)
        count = len(x) * x.shape[-1]
        mean = total / count
        std = (squares / count - mean.square()).clamp_min(0).sqrt()
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net((x[:, : self.n_planes] - self.mean) / self.std)


def network_config(config: dict[str, Any], use_gcc: bool, n_classes: int) -> DwCnnConfig:
    """The CNN a sampled configuration describes (2 input planes without GCC)."""
    return DwCnnConfig(
        channels=tuple(int(config[f"c{i}"]) for i in range(1, 6)),
        kernel_size=int(config["kernel_size"]),
        in_channels=GCC_PLANE + 1 if use_gcc else GCC_PLANE,
        n_classes=n_classes,
    )


@register_technique
class GccGrams(Technique):
    name = "gcc"
    summary = "log-mel L/R + GCC-PHAT gram -> 5 depthwise-separable conv layers; GCC ablation"
    tables = frozenset({"gcc"})
    # use_gcc sets the first conv's input planes: part of the architecture --init-from fixes
    shape_params = frozenset({"c1", "c2", "c3", "c4", "c5", "kernel_size", "use_gcc"})
    choices: ClassVar[Mapping[str, tuple[Any, ...]]] = {
        "precision": PRECISIONS, "use_gcc": (True, False)}
    ranges: ClassVar[Mapping[str, tuple[float, float]]] = FINISH_RANGES

    def settings(self, ctx: TrialContext) -> GccSettings:
        return gcc_settings(ctx.space.tables.get("gcc", {}), str(ctx.space.file))

    def prepare(self, ctx: TrialContext) -> dict[str, Any]:
        planes = ctx.features.x.shape[1]
        if planes != GCC_PLANE + 1:
            raise ConfigError(ctx.space.file, "features.kind",
                              f"the gcc technique needs 3-plane gcc features, got {planes} planes",
                              'use kind = "gcc"')
        settings = self.settings(ctx)
        return {"gcc_use_gcc": "search" if settings.use_gcc is None else settings.use_gcc}

    def use_gcc(self, config: dict[str, Any], ctx: TrialContext) -> bool:
        """The [gcc] table's fixed setting wins over the sampled one; default: with GCC."""
        fixed = self.settings(ctx).use_gcc
        return fixed if fixed is not None else bool(config.get("use_gcc", True))

    def build(self, config: dict[str, Any], ctx: TrialContext) -> Candidate:
        return self.build_with(config, ctx, self.use_gcc(config, ctx))

    def build_with(self, config: dict[str, Any], ctx: TrialContext, use_gcc: bool) -> Candidate:
        """`build` with the ablation switch given explicitly (what `ablate_gcc` flips)."""
        cfg = network_config(config, use_gcc, ctx.n_classes)
        model = PlaneSelect(DwCnn(cfg), cfg.in_channels, ctx.features.x.shape[2])
        return Candidate(model=model,
                         precision=Precision(config["precision"]),
                         info={"channels": list(cfg.channels), "use_gcc": use_gcc})

    def fit(self, candidate: Candidate, config: dict[str, Any], ctx: TrialContext,
            on_epoch: EpochHook | None = None, on_step: StepHook | None = None) -> Outcome:
        model = candidate.model
        assert isinstance(model, PlaneSelect)
        cfg = self.trial_train_config(config, ctx)
        x = ctx.train_xy[0]
        model.fit_standardisation(x)
        result = train_and_finish(model, cfg, config, ctx, on_epoch, on_step)
        return self.deploy_and_score(model, candidate.precision, ctx, result, x,
                                     calibration_clips(config),
                                     info={"use_gcc": candidate.info["use_gcc"]})

    def study_notes(self, attrs: Mapping[str, Any], best: FrozenTrial | None) -> list[str]:
        ablation = attrs.get(ABLATION_ATTR)
        if not ablation:
            return []
        n = ablation.get("val_clips")  # recorded since 2026-12-02
        folds = int(ablation.get("folds") or 1)
        where = f"; {folds} folds, {n} clips" if folds > 1 else (f"; {n} clips" if n else "")

        def acc(setting: str) -> str:
            return accuracy_text(ablation[f"accuracy_{setting}"], None,
                                 ablation.get(f"se_{setting}"))

        scratch = ("; both from scratch, not from --init-from"
                   if ablation.get("from_scratch") else "")
        return [f"GCC ablation of trial {ablation['trial']} ({ablation['precision']}{where}"
                f"{scratch}): validation accuracy {acc('with_gcc')} with the GCC plane, "
                f"{acc('without_gcc')} without ({ablation['gcc_gain']:+.4f})"]

    def after_search(self, best: FrozenTrial | None, ctx: TrialContext,
                     folds: Sequence[TrialContext] = ()) -> dict[str, Any]:
        """When [gcc] ablate is on: the best configuration's accuracy with and without GCC,
        scored as the trials were (over `folds` when they were cross-validated)."""
        if not self.settings(ctx).ablate:
            return {}
        if best is None:
            raise AscError("the gcc ablation needs a complete trial within the budget; fix: run "
                           "more trials with `asc-auto search`, or set [gcc] ablate = false")
        return {ABLATION_ATTR: ablation(best, tuple(folds) or (ctx,), self)}


def ablate_gcc(study: optuna.Study, contexts: Sequence[TrialContext],
               trial_number: int | None = None, technique: GccGrams | None = None
               ) -> dict[str, Any]:
    """`ablation` of one trial of a study (default: the best feasible one), recorded as the
    study user attribute `gcc_ablation` (finished trials cannot take new attributes)."""
    result = ablation(pick_trial(study, trial_number), contexts, technique or GccGrams())
    study.set_user_attr(ABLATION_ATTR, result)
    return result


def _score(tech: GccGrams, config: dict[str, Any], contexts: Sequence[TrialContext],
           use_gcc: bool, number: int) -> tuple[CvScore, str]:
    """`config` with `use_gcc` trained and scored on each context (a split, or every fold),
    each started from trial `number`'s initial-weight seed for that fold, as the search did."""
    accs: list[float] = []
    precision = ""
    for fold, ctx in enumerate(contexts):
        torch.manual_seed(trial_seed(ctx.train_cfg.seed, number, fold))
        candidate = tech.build_with(config, ctx, use_gcc)
        accs.append(float(tech.fit(candidate, config, ctx).accuracy))
        precision = candidate.precision.value
    return CvScore(tuple(accs), tuple(len(c.val_files) for c in contexts)), precision


def ablation(trial: FrozenTrial, contexts: Sequence[TrialContext], tech: GccGrams
             ) -> dict[str, Any]:
    """Retrain one trial's configuration with the other `use_gcc` setting; both accuracies,
    scored alike: on the split, or over every fold (the clip-weighted mean, as the search).

    The trial keeps its own recorded accuracy for the setting it used when it was scored on
    these `contexts` (one split, or as many folds as it has fold accuracies); otherwise, e.g. a
    cross-validated trial given the split alone, its setting is trained again here, so the two
    numbers never come from different protocols. The other setting is trained with the same
    configuration and training settings, from the trial's initial-weight seed per fold, and
    evaluated at the same precision. A study started from --init-from trains both settings
    from scratch: the checkpoint fits one setting's first layer only, and a pretrained model
    beside a fresh one would measure the transfer, not the GCC plane. Returns
    trial, use_gcc (of the trial), precision, accuracy_with_gcc, accuracy_without_gcc,
    gcc_gain, se_with_gcc, se_without_gcc (each as a trial's: cross-validated, the larger of
    the binomial and the folds' spread), folds, val_clips (clips each accuracy is scored on),
    own_retrained, from_scratch (the trial itself started from --init-from).
    """
    record = TrialRecord.from_trial(trial)
    config = dict(record.config or {})
    used = bool(record.extra.get("use_gcc", config.get("use_gcc", True)))
    other = not used
    status = contexts[0].status
    scored_on = len(record.cv_accuracies) if record.cv_accuracies else 1
    from_scratch = contexts[0].sources.init_from is not None
    retrain_own = scored_on != len(contexts) or from_scratch
    where = f"over {len(contexts)} folds" if len(contexts) > 1 else "on the validation split"
    why = (" (and as searched, from scratch: the --init-from checkpoint fits one setting's "
           "first layer only)" if from_scratch else
           " (and as searched, which was scored otherwise)" if retrain_own else "")
    status(f"gcc ablation: retraining trial {trial.number} "
           f"{'with' if other else 'without'} the GCC plane {where}{why}")
    flipped, precision = _score(tech, config, contexts, other, trial.number)
    n_val = sum(flipped.n_val)
    if retrain_own:
        again = _score(tech, config, contexts, used, trial.number)[0]
        own, own_se = again.mean, again.standard_error
    else:  # a cross-validated trial recorded its own SE (folds' spread included)
        own = float(trial.value)
        own_se = record.value_se if record.value_se is not None else binomial_se(own, n_val)
    with_gcc, without_gcc = (own, flipped.mean) if used else (flipped.mean, own)
    se_with, se_without = ((own_se, flipped.standard_error) if used
                           else (flipped.standard_error, own_se))
    return {
        "trial": trial.number,
        "use_gcc": used,
        "precision": precision,
        "accuracy_with_gcc": round(with_gcc, 4),
        "accuracy_without_gcc": round(without_gcc, 4),
        "gcc_gain": round(with_gcc - without_gcc, 4),
        "se_with_gcc": round(se_with, 4),
        "se_without_gcc": round(se_without, 4),
        "folds": len(contexts),
        "val_clips": n_val,
        "own_retrained": retrain_own,
        "from_scratch": from_scratch,
    }
