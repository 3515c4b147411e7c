"""Lottery-ticket pruning helpers: how much to prune for a size budget, prune, and rewind.

Two kinds, both searched by the `lt` technique:

- unstructured: global magnitude pruning of every conv/linear weight (torch.nn.utils.prune). The
  masks stay attached while the ticket retrains, so pruned weights stay exactly zero; they only
  shrink the size under rules that do not count zeros (DCASE2020's).
- structured: whole channels removed with torch-pruning. The pruner's `pruning_history()` is
  replayed with `DependencyGraph.load_pruning_history` on a copy of the *initial* model, which gives
  the ticket: the pruned shape holding the original initial weights of the surviving channels.
  Physically smaller, so it shrinks the size under every rule.

The amount is at least what the budget needs, so every configuration lands inside the limit:
unstructured pruning zeroes the values over budget; structured pruning takes the smallest uniform
channel ratio whose pruned shape fits (the shape does not depend on the weights, so it is known
before training). A searched `sparsity` (the fraction of conv and linear weights the ticket
loses) can ask for more: without it, a network that fits unpruned is no lottery ticket at all.

Unstructured pruning leaves the classifier alone (`keep`): ranked globally, its weights are among
the smallest (the paper's AclNet0.5 for 11 classes, at initialisation: 31 % of them go at 20 %
sparsity, 80 % at 50 %, all at 80 %: every class then scores the same); Frankle & Carbin prune
the output layer at a lower rate for the same reason.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune

from asc_auto.compress.size import Precision, SizeReport, SizeRule, model_size

History = list[tuple[str, bool, Any]]
PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Linear)


def prunable_weights(model: nn.Module,
                     keep: Sequence[nn.Module] = ()) -> list[tuple[nn.Module, str]]:
    """(module, "weight") of every conv and linear layer but `keep`: what magnitude pruning
    ranks."""
    return [(m, "weight") for m in model.modules()
            if isinstance(m, PRUNABLE) and not any(m is k for k in keep)]


def weight_count(model: nn.Module, keep: Sequence[nn.Module] = ()) -> int:
    """Conv and linear weights but `keep`'s (no biases, no BatchNorm); all of them are what
    `sparsity` is a fraction of."""
    return sum(m.weight.numel() for m, _ in prunable_weights(model, keep))


def budget_values(rule: SizeRule, precision: Precision | str) -> int:
    """Counted values that fit the rule's limit at `precision`."""
    return rule.limit_bytes // Precision(precision).bytes


def zeros_needed(model: nn.Module, rule: SizeRule, precision: Precision | str) -> int:
    """Values unstructured pruning must zero so that at most the budget's values are non-zero.

    Counted from all counted values (not the current non-zeros), so the size after pruning is
    at most the budget whatever zeros training happens to produce. 0 when the model fits or when
    the rule counts zeros (then unstructured pruning cannot help).
    """
    if rule.count_zeros:
        return 0
    report = model_size(model, rule, precision)
    return max(0, report.counted_params - budget_values(rule, precision))


def zeros_for(model: nn.Module, rule: SizeRule, precision: Precision | str, sparsity: float,
              keep: Sequence[nn.Module] = ()) -> int:
    """Weights unstructured pruning zeroes: what the budget needs, or `sparsity` of all conv and
    linear weights when that is more; at most the weights outside `keep` (a budget that needs
    more then stays over the limit, and the size plan says so)."""
    wanted = max(zeros_needed(model, rule, precision), round(sparsity * weight_count(model)))
    return min(wanted, weight_count(model, keep))


def unstructured_size(model: nn.Module, rule: SizeRule, precision: Precision | str,
                      n_zeros: int) -> SizeReport:
    """The size `model` will have once `n_zeros` prunable weights are zeroed (known before
    training: at most the counted values minus `n_zeros` stay non-zero). Rules that count zeros
    see no change."""
    report = model_size(model, rule, precision)
    if rule.count_zeros or n_zeros <= 0:
        return report
    nonzero = min(report.nonzero, report.counted_params - n_zeros)
    nbytes = nonzero * Precision(precision).bytes
    return SizeReport(rule=rule.name, precision=Precision(precision), params=report.params,
                      counted_params=report.counted_params, nonzero=nonzero, size_bytes=nbytes,
                      size_kb=nbytes / rule.kb_bytes, limit_kb=rule.limit_kb,
                      fits=nbytes <= rule.limit_bytes)


def pruned_count(model: nn.Module) -> int:
    """Weights currently masked to zero by torch.nn.utils.prune."""
    return sum(int((m.weight_mask == 0).sum()) for m, _ in prunable_weights(model)
               if hasattr(m, "weight_mask"))


def magnitude_prune(model: nn.Module, total_zeros: int, keep: Sequence[nn.Module] = ()) -> None:
    """Global magnitude pruning of every conv and linear weight but `keep`'s until `total_zeros`
    weights are masked (adds to earlier masks)."""
    more = total_zeros - pruned_count(model)
    if more > 0:
        prune.global_unstructured(prunable_weights(model, keep),
                                  pruning_method=prune.L1Unstructured, amount=more)


def round_targets(total: int, rounds: int) -> list[int]:
    """Cumulative zeros after each of `rounds` iterative rounds, reaching `total` exactly.

    Equal steps: with the budget-derived totals here (tens of percent), the geometric schedule
    of Frankle & Carbin and equal steps differ by a few percent per round.
    """
    rounds = max(1, rounds)
    return [round(total * (i + 1) / rounds) for i in range(rounds)]


def rewind(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Reset every surviving value to `state` (the initial or early-epoch weights); masks stay.

    `state` is a state dict of the unpruned model (keys `weight`, not `weight_orig`).
    """
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if key.endswith("_mask"):
                continue
            source = key[: -len("_orig")] if key.endswith("_orig") else key
            tensor.copy_(state[source])


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold masks into the weights (weight = weight_orig * mask) and drop the pruning hooks."""
    for module, name in prunable_weights(model):
        if prune.is_pruned(module) and hasattr(module, f"{name}_mask"):
            prune.remove(module, name)
    return model


# --- structured -------------------------------------------------------------------------------


IgnoreFn = Callable[[nn.Module], Sequence[nn.Module]]


def structured_prune(model: nn.Module, example: torch.Tensor, ratio: float,
                     ignore: IgnoreFn) -> History:
    """Remove `ratio` of the channels of every prunable layer by L1 magnitude; returns the plan.

    `ignore(model)` lists layers whose output channels must stay (the classifier).
    """
    if ratio <= 0:
        return []
    was_training = model.training
    model.eval()
    pruner = tp.pruner.MagnitudePruner(
        model, example, importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=ratio, ignored_layers=list(ignore(model)), global_pruning=False)
    pruner.step()
    model.train(was_training)
    return list(pruner.pruning_history())


def replay(initial: nn.Module, history: History, example: torch.Tensor) -> nn.Module:
    """A copy of `initial` pruned by `history`: the structured lottery ticket."""
    ticket = copy.deepcopy(initial)
    if history:
        graph = tp.DependencyGraph().build_dependency(ticket, example_inputs=example)
        graph.load_pruning_history(history)
    return ticket


def round_ratios(final_ratio: float, rounds: int) -> list[float]:
    """Per-round channel ratios (of what is left) whose product of keeps is 1 - final_ratio."""
    keep = (1.0 - final_ratio) ** (1.0 / max(1, rounds))
    return [1.0 - keep] * max(1, rounds)


def structured_shape(initial: nn.Module, example: torch.Tensor, final_ratio: float, rounds: int,
                     ignore: IgnoreFn) -> nn.Module:
    """The pruned shape `rounds` rounds at `final_ratio` give (weights are irrelevant to it)."""
    model = copy.deepcopy(initial)
    for ratio in round_ratios(final_ratio, rounds):
        structured_prune(model, example, ratio, ignore)
    return model


def ratio_for_budget(initial: nn.Module, example: torch.Tensor, rule: SizeRule,
                     precision: Precision | str, rounds: int, ignore: IgnoreFn,
                     steps: int = 10, sparsity: float = 0.0) -> tuple[float, SizeReport]:
    """Smallest channel ratio (to 1/2^steps) whose pruned shape fits and has lost at least
    `sparsity` of the conv and linear weights; (ratio, its size).

    Returns the size at ratio 0 when the model fits unpruned and no sparsity is asked, and at
    the largest ratio tried (0.95) when nothing qualifies (the caller reports it as over budget).
    """
    most = (1.0 - sparsity) * weight_count(initial)

    def at(ratio: float) -> tuple[bool, SizeReport]:
        shape = structured_shape(initial, example, ratio, rounds, ignore)
        size = model_size(shape, rule, precision)
        return size.fits and weight_count(shape) <= most, size

    base = model_size(initial, rule, precision)
    if base.fits and sparsity <= 0:
        return 0.0, base
    hi = 0.95
    ok, hi_size = at(hi)
    if not ok:
        return hi, hi_size
    lo = 0.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        ok, mid_size = at(mid)
        if ok:
            hi, hi_size = mid, mid_size
        else:
            lo = mid
    return hi, hi_size
