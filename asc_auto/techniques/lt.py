"""`lt`: AclNet pruned by the lottery-ticket procedure, deployed at FP16 (or FP32).

Seed paper (section 2.2): AclNet0.5 trained, 19.6 % of its parameters pruned (317,038 ->
255,740), the survivors rewound to their initial values and retrained, FP16: 499.49 KB, 91.47 %.
Here: train -> prune -> rewind (to the initial weights, or those after epoch k) -> retrain, for
1..n rounds; unstructured global magnitude pruning or structured channel pruning. The amount is
what the size budget needs at the chosen precision, or the searched `sparsity` when that asks for
more, so the size known before training is the deployed size (see `LotteryTicket.size`).
Without `sparsity` most searched shapes fit 500 KB unpruned and were no tickets at all (office16,
2026-12-03: 4 of 6 trials of the lt row in docs/BENCHMARKS.md, its pick among them).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from asc_auto import epoch_state, logit_distill
from asc_auto.compress import pruning
from asc_auto.compress.size import (
    PRECISIONS,
    Precision,
    SizeReport,
    SizeRule,
    folded_bias_bytes,
    model_size,
)
from asc_auto.models.aclnet import LLF_COMPRESS, AclNet, SegmentAverage
from asc_auto.techniques.aclnet_common import (
    AUGMENT_TABLE,
    CROPS,
    SHAPE_PARAMS,
    StoredLogitStudent,
    build_aclnet,
    fine_tune_aclnet,
    pretrain_aclnet,
    segment_samples,
    train_aclnet,
    val_accuracy,
)
from asc_auto.techniques.base import (
    FINISH_RANGES,
    Candidate,
    EpochHook,
    Outcome,
    Pretrained,
    StepHook,
    Technique,
    TrialContext,
    checked_choice,
    checked_range,
    finish_epochs,
    on_scale,
    register_technique,
)

UNSTRUCTURED, STRUCTURED = "unstructured", "structured"


def keep_layers(model: nn.Module) -> Sequence[nn.Module]:
    """Layers whose output channels structured pruning keeps: the classifier (its outputs are the
    classes) and the second LLF conv (its channels become the HLF's frequency axis, a reshape
    torch-pruning cannot follow; they cost few parameters)."""
    assert isinstance(model, AclNet)
    return [model.classifier, model.llf[3]]


def unstructured_keep(model: nn.Module) -> Sequence[nn.Module]:
    """Layers unstructured pruning leaves whole: the classifier (see `compress.pruning`)."""
    assert isinstance(model, AclNet)
    return [model.classifier]


def prunes(candidate: Candidate) -> bool:
    """Whether `candidate` is pruned at all: the budget needs it or a sparsity asks for it
    (else its dense network is what is trained and deployed)."""
    info = candidate.info
    if info["pruning"] == UNSTRUCTURED:
        return int(info["pruned_weights"]) > 0
    return float(info["channel_ratio"]) > 0.0


@register_technique
class LotteryTicket(StoredLogitStudent, Technique):
    name = "lt"
    summary = "AclNet on raw audio -> lottery-ticket pruning (budget or searched sparsity), FP16"
    tables = frozenset({AUGMENT_TABLE})
    shape_params = SHAPE_PARAMS
    choices: ClassVar[Mapping[str, tuple[Any, ...]]] = {
        "crops": CROPS, "llf_compress": LLF_COMPRESS, "pruning": (UNSTRUCTURED, STRUCTURED),
        "precision": PRECISIONS}
    ranges: ClassVar[Mapping[str, tuple[float, float]]] = {"sparsity": (0.0, 1.0),
                                                          **logit_distill.RANGES,
                                                          **FINISH_RANGES}
    # Since 2026-12-03 the pruner reads the first dense training (see `fit`), before the ticket's,
    # and a network that fits unpruned trains once (`trainings`): older studies mix otherwise.
    epoch_scale = "all trainings (one where nothing is pruned), the rung in the first"
    # 1 (2026-12-03): one training where nothing is pruned; 2 (2026-12-03): the searched
    # sparsity, and unstructured pruning leaves the classifier whole.
    fit_version = 2

    def pretrain(self, ctx: TrialContext) -> Pretrained:
        return pretrain_aclnet(ctx)

    def build(self, config: dict[str, Any], ctx: TrialContext) -> Candidate:
        model = build_aclnet(config, ctx)
        precision = Precision(config["precision"])
        kind = str(checked_choice(config, "pruning", self.choices["pruning"], ctx))
        # A space without `sparsity` (written before it) prunes what the budget needs only.
        sparsity = checked_range(config, "sparsity", self.ranges["sparsity"], ctx, default=0.0)
        info: dict[str, Any] = {"pruning": kind, "rounds": int(config["rounds"]),
                                "rewind_epoch": int(config["rewind_epoch"]),
                                "params_dense": sum(p.numel() for p in model.parameters())}
        # prune to the budget less the biases BatchNorm folding adds to the exported graph
        headroom = folded_bias_bytes(model, ctx.rule)
        rule = dataclasses.replace(ctx.rule, limit_bytes=ctx.rule.limit_bytes - headroom)
        info["headroom_bytes"] = headroom
        macs_plan: nn.Module | None = None  # unstructured: zeros are counted MACs (NeSsi)
        weights = pruning.weight_count(model.model)
        if kind == UNSTRUCTURED:
            zeros = pruning.zeros_for(model.model, rule, precision, sparsity,
                                      unstructured_keep(model.model))
            info["pruned_weights"] = zeros
            info["weights_removed"] = round(zeros / weights, 4)

            def plan(under: SizeRule) -> SizeReport:  # what pruning `zeros` weights leaves
                return pruning.unstructured_size(model, under, precision, zeros)
        else:
            example = self._example(ctx)
            ratio, _ = pruning.ratio_for_budget(model.model, example, rule, precision,
                                                int(config["rounds"]), keep_layers,
                                                sparsity=sparsity)
            info["channel_ratio"] = round(ratio, 4)
            shape = pruning.structured_shape(model.model, example, ratio,
                                             int(config["rounds"]), keep_layers)
            info["weights_removed"] = round(1 - pruning.weight_count(shape) / weights, 4)
            macs_plan = model.wrap(shape)  # fewer channels: fewer MACs, counted before training

            def plan(under: SizeRule) -> SizeReport:  # the ticket's shape after the rounds
                return model_size(shape, under, precision)
        # Until `fit` has pruned the model, it is sized as what pruning will leave.
        return Candidate(model=model, precision=precision, info=info, size_plan=plan,
                         macs_plan=macs_plan)

    @staticmethod
    def _example(ctx: TrialContext) -> torch.Tensor:
        return torch.zeros(1, ctx.features.x.shape[1], segment_samples(ctx))

    def trainings(self, config: dict[str, Any], candidate: Candidate) -> int:
        """The dense network once per round, then the ticket; once where nothing is pruned.
        A dense network that fits was trained rounds + 1 times unpruned, each round the same
        network from the same start (office16, 20 epochs: 5 of 8 trials, the later trainings'
        curves identical to the epoch), for the result of one training."""
        return max(1, int(config["rounds"])) + 1 if prunes(candidate) else 1

    def fit(self, candidate: Candidate, config: dict[str, Any], ctx: TrialContext,
            on_epoch: EpochHook | None = None, on_step: StepHook | None = None) -> Outcome:
        wrapper = candidate.model
        assert isinstance(wrapper, SegmentAverage)
        net = wrapper.model
        epochs = ctx.train_cfg.epochs
        k = min(int(config["rewind_epoch"]), epochs - 1)
        rounds = max(1, int(config["rounds"]))
        trainings = self.trainings(config, candidate)
        finish = finish_epochs(config)
        of = trainings * epochs + finish  # every epoch of the fit, on one step scale

        def steps_of(training: int) -> StepHook | None:
            """`on_step` over all trainings and the finish: equal schedules, so training t's
            steps follow the t before it (one bar, one ETA for the whole ticket)."""
            return on_scale(on_step, training * epochs, epochs, of)

        def epochs_of(training: int, also: EpochHook | None = None) -> EpochHook:
            """`on_epoch` over all trainings, epoch t * epochs + e for training t's epoch e, so
            the pruner's rung (half of one training) sits in the first dense training: a
            ticket stopped there costs half a training, not all the dense ones and half the
            ticket's (see `Technique.fit`)."""
            def hook(epoch: int, acc: float) -> None:
                if also is not None:
                    also(epoch, acc)
                if on_epoch is not None:
                    on_epoch(training * epochs + epoch, acc)
            return hook
        rewind_to: list[nn.Module] = [copy.deepcopy(net).cpu()]  # epoch 0: the initial weights
        taken = [k == 0]

        def snapshot(epoch: int, acc: float) -> None:
            """Keep the dense weights of epoch k of the FIRST training only: later rounds train
            an already pruned network, whose weights are not what a ticket rewinds to."""
            del acc
            if not taken[0] and epoch + 1 == k:
                rewind_to[0] = copy.deepcopy(net).cpu()
                if epoch_state.replaying():  # resumed: net holds a later epoch's weights
                    rewind_to[0].load_state_dict(epoch_state.kept("rewind"))
                else:
                    epoch_state.keep("rewind", rewind_to[0].state_dict())
                taken[0] = True

        dense_acc: list[float] = []
        if trainings == 1:  # the dense network fits the budget: nothing to prune or rewind
            pass
        elif candidate.info["pruning"] == UNSTRUCTURED:
            targets = pruning.round_targets(int(candidate.info["pruned_weights"]), rounds)
            for training, target in enumerate(targets):
                train_aclnet(wrapper, config, ctx, on_epoch=epochs_of(training, snapshot),
                             on_step=steps_of(training))
                dense_acc.append(val_accuracy(wrapper, ctx))
                pruning.magnitude_prune(net, target, unstructured_keep(net))
                pruning.rewind(net, rewind_to[0].state_dict())
        else:
            example = self._example(ctx)
            history: pruning.History = []
            ratio = float(candidate.info["channel_ratio"])
            for training, step_ratio in enumerate(pruning.round_ratios(ratio, rounds)):
                train_aclnet(wrapper, config, ctx, on_epoch=epochs_of(training, snapshot),
                             on_step=steps_of(training))
                dense_acc.append(val_accuracy(wrapper, ctx))
                history += pruning.structured_prune(net.cpu(), example, step_ratio, keep_layers)
                net = pruning.replay(rewind_to[0], history, example)
                wrapper = wrapper.wrap(net)
        result = train_aclnet(wrapper, config, ctx, on_epoch=epochs_of(trainings - 1),
                              on_step=steps_of(trainings - 1))
        if not dense_acc:
            dense_acc.append(val_accuracy(wrapper, ctx))
        # the ticket's finish, its pruned weights still masked (zeros stay zeros)
        fine_tune_aclnet(wrapper, config, ctx, finish,
                         on_step=on_scale(on_step, trainings * epochs, finish, of))
        pruning.make_permanent(net)
        wrapper.cpu()
        candidate.model = wrapper
        candidate.size_plan = candidate.macs_plan = None  # pruned: the model is what is deployed
        return self.deploy_and_score(
            wrapper, candidate.precision, ctx, result, ctx.train_xy[0], 0,
            info={"accuracy_dense": round(dense_acc[0], 4),
                  "params_pruned": sum(p.numel() for p in wrapper.parameters())})
