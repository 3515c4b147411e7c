"""The contract every technique fulfils, and the registry the search driver looks them up in.

Optuna-style: one abstract base class with two abstract methods (`build`, `fit`) and no-op hooks
(`prepare`); timm-style registry: a dict plus a decorator. The search driver sizes what `build`
returns *before* any training, so an over-budget configuration costs nothing; `fit` trains,
compresses to the chosen precision and evaluates the compressed model on the validation split.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from optuna.trial import FrozenTrial
from torch import nn

from asc_auto.compress.precision import calibration_batches, deploy
from asc_auto.compress.size import Precision, SizeReport, SizeRule, model_size
from asc_auto.context import TrialContext
from asc_auto.data.tau import TauDataset
from asc_auto.errors import UsageError
from asc_auto.features.config import frontend_config_from_dict
from asc_auto.registry import Registry
from asc_auto.space import SearchSpace, check_choice, check_in_range
from asc_auto.train import (
    EvalResult,
    LossFn,
    TrainConfig,
    TrainResult,
    cross_entropy_loss,
    evaluate,
    finish_config,
    resolve_device,
    train_model,
)
from asc_auto.transfer import Sources, init_model

EpochHook = Callable[[int, float], None]
StepHook = Callable[[int, int], None]


@dataclass
class Candidate:
    """A built, untrained model at its target precision: enough to size it."""

    model: nn.Module
    precision: Precision
    info: dict[str, Any] = field(default_factory=dict)  # recorded as trial attributes
    # The deployed size under a rule while `fit` has yet to shrink the model (a pruning plan);
    # `fit` clears it once `model` is what will be deployed. None: `model` is sized as it is.
    size_plan: Callable[[SizeRule], SizeReport] | None = None
    # Likewise for MACs: the shape `fit` will prune `model` to (a structured lottery ticket), so
    # a MACs limit judges what will be deployed. None: `model`'s MACs are the deployed ones.
    macs_plan: nn.Module | None = None

    def macs_model(self) -> nn.Module:
        """The module whose MACs a rule counts for this candidate (see `macs_plan`)."""
        return self.model if self.macs_plan is None else self.macs_plan


@dataclass
class Outcome:
    """What `fit` measured: the accuracy of the deployed (compressed) model and its history."""

    accuracy: float
    accuracy_fp32: float
    deployed: nn.Module
    train: TrainResult
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Pretrained:
    """What `Technique.pretrain` trained: the FP32 model (kd: the teacher), its accuracy on the
    context's validation clips and its description (checkpoint.py: kind, config or VGG)."""

    model: nn.Module
    accuracy: float
    meta: dict[str, Any]
    train: TrainResult


class Technique(ABC):
    """A compression technique: suggest -> build -> (sized by the driver) -> fit."""

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    tables: ClassVar[frozenset[str]] = frozenset()  # extra tables its space file may hold
    # The teacher files a search of it may name (transfer.TEACHER_FILES): kd distils from VGG
    # checkpoints and stored outputs, int8 and lt from stored outputs (logit_distill.py).
    teacher_files: ClassVar[frozenset[str]] = frozenset()
    # Searched params that decide the model's tensor shapes: --init-from fixes them to the
    # checkpoint's configuration, so every trial's model can start from it.
    shape_params: ClassVar[frozenset[str]] = frozenset()
    # Categorical params the technique reads, with every value it understands: a space file
    # whose choices hold anything else is refused when it is read, not when a trial builds.
    choices: ClassVar[Mapping[str, tuple[Any, ...]]] = {}
    # Numeric params the technique reads, with the half-open [low, high) they must lie in.
    ranges: ClassVar[Mapping[str, tuple[float, float]]] = {}
    #: What a trial's epochs are where a fit trains more than once (None: it trains once).
    #: Hyperband compares trials at the same epoch, so a study keeps one scale (a resume key).
    epoch_scale: ClassVar[str | None] = None
    #: Raised when `fit` trains a configuration differently than before (part of retrain keys
    #: from 1 on, so seeds retrained the old way are not reused as the new way's).
    fit_version: ClassVar[int] = 0

    def feature_config(self, space: SearchSpace) -> Any:
        """The frontend settings of this technique's cached features."""
        return frontend_config_from_dict(space.features, str(space.file))

    def settle(self, space: SearchSpace, dataset: TauDataset,
               status: Callable[[str], None]) -> SearchSpace:
        """The space with values its file leaves to the data ("auto") decided for `dataset`;
        run by the context builder before features, digests and trials see the space."""
        del dataset, status
        return space

    def with_sources(self, space: SearchSpace, sources: Sources) -> SearchSpace:
        """The space as the search's starting points make it (e.g. distillation params when
        there are stored teacher logits); run by the context builder before `settle`."""
        del sources
        return space

    def prepare(self, ctx: TrialContext) -> dict[str, Any]:
        """Once per search, before any trial (e.g. train the KD teacher); returns study attrs."""
        del ctx
        return {}

    def initialise(self, candidate: Candidate, ctx: TrialContext) -> None:
        """Start a built candidate from the context's --init-from checkpoint (no-op without
        one): strict shapes, the classifier head afresh when the class count differs. The
        drivers (search, retrain) call it right after `build`; the trial records the file's
        sha256 (`init_from`)."""
        ref = ctx.sources.init_from
        if ref is not None:
            init_model(candidate.model, ref, ctx.status)
            candidate.info["init_from"] = ref.sha256

    def pretrain(self, ctx: TrialContext) -> Pretrained:
        """`asc-auto pretrain`: train the model other runs start from (the paper configuration;
        kd: the teacher) on `ctx`'s training clips, uncompressed, scored on its validation clips."""
        raise UsageError(f"technique {self.name!r} has no pretraining; fix: use one of "
                         f"{', '.join(pretrainable())}")

    def after_search(self, best: FrozenTrial | None, ctx: TrialContext,
                     folds: Sequence[TrialContext] = ()) -> dict[str, Any]:
        """Once after a run's trials, given its best feasible trial (None: none fits the
        budget), e.g. an ablation of that trial; returns study attrs. `folds`: the
        cross-validation folds the trials were scored on (empty: `ctx`'s split), so that what
        it measures is scored as the trials were."""
        del best, ctx, folds
        return {}

    def study_notes(self, attrs: Mapping[str, Any], best: FrozenTrial | None) -> list[str]:
        """Lines `show` and `report` print about a study of this technique from its attributes
        and its best feasible trial (kd: the teacher beside the best student; gcc: the
        ablation); a line starting with "warning" is highlighted."""
        del attrs, best
        return []

    def size(self, candidate: Candidate, rule: SizeRule) -> SizeReport:
        """The deployed size of a candidate under `rule`; called before and after training.

        A technique that shrinks the model during `fit` (pruning) gives its candidate a
        `size_plan`, so that the size known before training is the size that will be deployed.
        """
        if candidate.size_plan is not None:
            return candidate.size_plan(rule)
        return model_size(candidate.model, rule, candidate.precision)

    def evaluate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: TrialContext,
                 device: torch.device | str | None = None) -> EvalResult:
        """Clip-level scores of a (deployed) model on (x, y); retrain and export call this.

        Techniques that score a clip from several segments (AclNet: 1 s windows averaged)
        override it so that every reported number is computed the same way.
        """
        return evaluate(model, x, y, ctx.n_classes, ctx.train_cfg.eval_batch_size, device)

    def deploy_and_score(self, model: nn.Module, precision: Precision, ctx: TrialContext,
                         train: TrainResult, calibration_x: torch.Tensor, n_calibration: int,
                         info: dict[str, Any] | None = None) -> Outcome:
        """The common end of `fit`: score the trained FP32 model, compress it to `precision`,
        score what is deployed (both on the validation split).

        NNCF's INT8 model runs where it was calibrated (CPU); FP16/FP32 copies use the device.
        """
        device = resolve_device(ctx.train_cfg.device)
        acc32 = self.evaluate(model, *ctx.val_xy, ctx, device=device).accuracy
        deployed = deploy(model, precision, calibration_batches(calibration_x, n_calibration))
        on = "cpu" if precision is Precision.INT8 else device
        acc = self.evaluate(deployed, *ctx.val_xy, ctx, device=on).accuracy
        return Outcome(accuracy=acc, accuracy_fp32=acc32, deployed=deployed, train=train,
                       info=info or {})

    def trial_train_config(self, config: dict[str, Any], ctx: TrialContext) -> TrainConfig:
        """The settings a trial of `config` trains with: the context's, with its searched rate
        and mixup. One place per technique, so what `export` writes as the submission's
        `data_augmentation` is what `fit` ran."""
        return dataclasses.replace(ctx.train_cfg, lr=float(config["lr"]),
                                   mixup_alpha=float(config["mixup_alpha"]))

    @abstractmethod
    def build(self, config: dict[str, Any], ctx: TrialContext) -> Candidate:
        """Construct the untrained model for a sampled configuration (no training here)."""

    @abstractmethod
    def fit(self, candidate: Candidate, config: dict[str, Any], ctx: TrialContext,
            on_epoch: EpochHook | None = None, on_step: StepHook | None = None) -> Outcome:
        """Train, compress to `candidate.precision`, evaluate on the validation split.

        `on_epoch(epoch, val_accuracy)` and `on_step(done, total)` see every training `fit`
        runs (see `trainings`) on one scale: epoch t * epochs + e for training t's epoch e,
        so a progress bar, the cost line and the trial's learning curve cover all of them.
        The pruner reads the epochs of the first training only (its rung is half of one):
        a lottery ticket is stopped in its first dense training, for half a training's cost,
        not after every dense training and half the ticket's."""

    def trainings(self, config: dict[str, Any], candidate: Candidate) -> int:
        """How many trainings of the configured epochs one `fit` of `candidate` (built from
        `config`) runs: one, or more where a technique trains again (a lottery ticket that
        prunes), which the cost line and the epoch scale count."""
        del config, candidate
        return 1

    def fine_tune_epochs(self, config: dict[str, Any]) -> int:
        """Epochs one `fit` of `config` trains after its `trainings` (the finish; int8 also QAT
        of the quantized network), on the same `on_step` scale: the cost line and the progress
        bar count them."""
        return finish_epochs(config)


# `finish_epochs` (train.finish_config): any technique's space may search or fix it; a space
# without it has none. Techniques list it among their `ranges`.
FINISH_RANGES: Mapping[str, tuple[float, float]] = {"finish_epochs": (0, 10_000)}


def finish_epochs(config: dict[str, Any]) -> int:
    """Epochs of the unmixed low-rate finish after the last training (train.finish_config);
    0 where the space has no `finish_epochs`."""
    return int(config.get("finish_epochs", 0))


def train_and_finish(model: nn.Module, cfg: TrainConfig, config: dict[str, Any],
                     ctx: TrialContext, on_epoch: EpochHook | None = None,
                     on_step: StepHook | None = None, loss_fn: LossFn = cross_entropy_loss,
                     extras: Sequence[torch.Tensor] = (),
                     transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None
                     = None) -> TrainResult:
    """`train_model` on the context's training clips, then the configured finish (one step
    scale over both; the finish reports no epochs: Hyperband compares the training's). The
    result's curve is the training's; its clips and seconds include the finish's."""
    x, y = ctx.train_xy
    finish = finish_epochs(config)
    of = cfg.epochs + finish
    result = train_model(model, x, y, cfg, ctx.n_classes, val=ctx.val_xy, loss_fn=loss_fn,
                         extras=extras, on_epoch=on_epoch, transform=transform,
                         on_step=on_scale(on_step, 0, cfg.epochs, of))
    if finish > 0:
        tail = train_model(model, x, y, finish_config(cfg, finish), ctx.n_classes,
                           loss_fn=loss_fn, extras=extras, transform=transform,
                           on_step=on_scale(on_step, cfg.epochs, finish, of),
                           frozen_batchnorm=True)
        result.clips_seen += tail.clips_seen
        result.seconds_forward_backward += tail.seconds_forward_backward
        result.seconds_total += tail.seconds_total
    return result


def on_scale(hook: StepHook | None, before: int, epochs: int, of: int) -> StepHook | None:
    """`hook` for a training of `epochs` epochs that follows `before` epochs of the same `fit`,
    on the scale of all its `of` epochs (every epoch the same number of steps): one bar and one
    cost line over a fit that trains more than once (lt's rounds, int8's QAT)."""
    if hook is None or epochs < 1:
        return None
    outer = hook

    def on_step(done: int, total: int) -> None:
        per_epoch = total // epochs
        outer(before * per_epoch + done, of * per_epoch)
    return on_step


TECHNIQUES: Registry[type[Technique]] = Registry("technique")


def register_technique(cls: type[Technique]) -> type[Technique]:
    """Class decorator: make a technique available by its `name`."""
    return TECHNIQUES.add(cls.name, cls)


def learns_from_stored_outputs_alone(name: str) -> bool:
    """Whether technique `name` takes stored teacher outputs and no teacher of its own (int8,
    lt): the students `--distil-from baseline` was measured to lift. False for an unknown name
    (a study made by another tool)."""
    kind = TECHNIQUES.get(name)
    return kind is not None and kind.teacher_files == frozenset({"teacher_logits"})


def get_technique(name: str) -> Technique:
    """Instantiate a registered technique; unknown names list the known ones.

    The built-ins are registered already: importing this module first runs the package's
    __init__, which imports every built-in technique.
    """
    return TECHNIQUES.lookup(name)()


def checked_choice(config: dict[str, Any], name: str, allowed: Sequence[Any],
                   ctx: TrialContext) -> Any:
    """`config[name]`, which must be one of `allowed`: space files are checked when read
    (`Technique.choices`); this guards trials enqueued by hand, where a typo must not build
    another model."""
    return check_choice(ctx.space.file, f"params.{name}", config[name], allowed)


def checked_range(config: dict[str, Any], name: str, bounds: tuple[float, float],
                  ctx: TrialContext, default: float) -> float:
    """`config[name]` (`default` where a space file lacks it), which must be a number in the
    half-open `bounds`: space files are checked when read (`Technique.ranges`); this guards
    trials enqueued by hand."""
    return check_in_range(ctx.space.file, f"params.{name}", config.get(name, default), bounds)


def calibration_clips(config: dict[str, Any]) -> int:
    """Clips an INT8 deployment is calibrated on (searched by some spaces; 128 otherwise)."""
    return int(config.get("calibration_clips", 128))


def pretrainable() -> list[str]:
    """Names of the techniques that override `Technique.pretrain`."""
    return sorted(n for n, cls in TECHNIQUES.items() if cls.pretrain is not Technique.pretrain)
