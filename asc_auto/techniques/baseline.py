"""`baseline`: the DCASE2020 Task 1b baseline CNN, trained with the same data, cache, loop,
retrain, export and report as every technique, so each report shows the techniques against it on
the user's own data (a searched model that does not beat it has no reason to exist).

The [paper] point of its space is the baseline as published (log-mel 40 bands, 40 ms / 20 ms,
two conv blocks, dense 100, FP32, no augmentation); the space around it varies only the learning
rate, mixup and precision, so a search over it is a small tuning of the reference, not a new
architecture.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from asc_auto.compress.size import PRECISIONS, Precision
from asc_auto.models.baseline import BaselineCnn, BaselineConfig
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


@register_technique
class DcaseBaseline(Technique):
    name = "baseline"
    summary = "DCASE2020 Task 1b baseline CNN (2 conv blocks, dense 100): the reference"
    choices: ClassVar[Mapping[str, tuple[Any, ...]]] = {"precision": PRECISIONS}
    ranges: ClassVar[Mapping[str, tuple[float, float]]] = FINISH_RANGES

    def build(self, config: dict[str, Any], ctx: TrialContext) -> Candidate:
        cfg = BaselineConfig(in_channels=ctx.features.x.shape[1], n_classes=ctx.n_classes)
        return Candidate(model=BaselineCnn(cfg), precision=Precision(config["precision"]),
                         info={"channels": list(cfg.channels)})

    def fit(self, candidate: Candidate, config: dict[str, Any], ctx: TrialContext,
            on_epoch: EpochHook | None = None, on_step: StepHook | None = None) -> Outcome:
        cfg = self.trial_train_config(config, ctx)
        result = train_and_finish(candidate.model, cfg, config, ctx, on_epoch, on_step)
        return self.deploy_and_score(candidate.model, candidate.precision, ctx, result,
                                     ctx.train_xy[0], calibration_clips(config))
