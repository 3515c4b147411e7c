"""Model size under a named counting rule: the one place that decides whether a model fits.

Size rules are data (``RULES``), not code scattered around: the DCASE2020 Task 1b rule counts
non-zero values and skips BatchNorm; the seed paper counts every parameter. Both limit 500 KB
with 1 KB = 1024 bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import nn

from asc_auto.errors import AscError

# Non-parameter state of BatchNorm layers: never a "parameter", so never counted.
_BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


class Precision(StrEnum):
    """Numeric format a model is deployed in."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"

    @property
    def bytes(self) -> int:
        return {"fp32": 4, "fp16": 2, "int8": 1}[self.value]


@dataclass(frozen=True)
class SizeRule:
    """How values are counted and what the limit is."""

    name: str
    description: str
    limit_bytes: int
    count_zeros: bool  # False: pruned (zero) values are free, as in the DCASE2020 rule
    exclude_batchnorm: bool  # True: BatchNorm parameters are free (folded into convs)
    kb_bytes: int = 1024

    @property
    def limit_kb(self) -> float:
        return self.limit_bytes / self.kb_bytes


RULES: dict[str, SizeRule] = {
    rule.name: rule
    for rule in (
        SizeRule(
            name="dcase2020",
            description="DCASE2020 Task 1b: non-zero values x bytes, BatchNorm excluded, 500 KB",
            limit_bytes=500 * 1024,
            count_zeros=False,
            exclude_batchnorm=True,
        ),
        SizeRule(
            name="params",
            description="seed paper: all parameters (zeros and BatchNorm too) x bytes, 500 KB",
            limit_bytes=500 * 1024,
            count_zeros=True,
            exclude_batchnorm=False,
        ),
    )
}


def get_rule(name: str) -> SizeRule:
    """Look a rule up by name; unknown names list the known ones."""
    if name not in RULES:
        raise AscError(f"unknown size rule '{name}'; known rules: {', '.join(sorted(RULES))}")
    return RULES[name]


def sized_rule(name: str, budget_kb: float) -> SizeRule:
    """The named rule with its limit set to the budget (1 KB = the rule's KB)."""
    rule = get_rule(name)
    return dataclasses.replace(rule, limit_bytes=round(budget_kb * rule.kb_bytes))


@dataclass(frozen=True)
class SizeReport:
    """Outcome of counting one model under one rule."""

    rule: str
    precision: Precision | None  # None: tensors of mixed dtypes (model_size_from_tensors)
    params: int  # every parameter value, zeros and BatchNorm included
    counted_params: int  # values the rule counts (after BatchNorm exclusion)
    nonzero: int  # non-zero values among counted_params
    size_bytes: int
    size_kb: float
    limit_kb: float
    fits: bool


def size_kb(n_values: int, precision: Precision | str) -> float:
    """KB (1024 bytes) taken by `n_values` values stored at `precision`."""
    return n_values * Precision(precision).bytes / 1024


def _effective_parameters(model: nn.Module) -> Iterator[tuple[nn.Module, torch.Tensor]]:
    """Yield (owning module, value) for every parameter as the deployed model would hold it.

    torch.nn.utils.prune replaces `weight` by `weight_orig` (parameter) and `weight_mask`
    (buffer); the deployed weight is their product, counted once. NNCF-quantized models keep
    fp32 weights (fake quantization), which are counted at the precision asked for.
    """
    for module in model.modules():
        if type(module).__module__.startswith("nncf."):
            continue  # NNCF quantizer scales and bit widths: quantization metadata, not weights
        buffers = dict(module.named_buffers(recurse=False))
        for name, param in module.named_parameters(recurse=False):
            mask = buffers.get(f"{name[:-5]}_mask") if name.endswith("_orig") else None
            value = param.detach() if mask is None else param.detach() * mask
            yield module, value


def _resolve_rule(rule: SizeRule | str) -> SizeRule:
    return rule if isinstance(rule, SizeRule) else get_rule(rule)


def _report(
    rule: SizeRule,
    precision: Precision | None,
    params: int,
    counted: int,
    nonzero: int,
    nbytes: int,
) -> SizeReport:
    return SizeReport(
        rule=rule.name,
        precision=precision,
        params=params,
        counted_params=counted,
        nonzero=nonzero,
        size_bytes=nbytes,
        size_kb=nbytes / rule.kb_bytes,
        limit_kb=rule.limit_kb,
        fits=nbytes <= rule.limit_bytes,
    )


def model_size(model: nn.Module, rule: SizeRule | str, precision: Precision | str) -> SizeReport:
    """Size of `model` deployed at `precision` (not its tensors' current dtype) under `rule`."""
    rule = _resolve_rule(rule)
    precision = Precision(precision)
    params = counted = nonzero = 0
    for module, value in _effective_parameters(model):
        params += value.numel()
        if rule.exclude_batchnorm and isinstance(module, nn.modules.batchnorm._BatchNorm):
            continue
        counted += value.numel()
        nonzero += int(torch.count_nonzero(value))
    values = counted if rule.count_zeros else nonzero
    return _report(rule, precision, params, counted, nonzero, values * precision.bytes)


def batchnorm_prefixes(model: nn.Module) -> set[str]:
    """State-dict prefixes (module names) of the BatchNorm layers of `model`."""
    return {
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
    }


def _detect_batchnorm(keys: set[str]) -> set[str]:
    """BatchNorm layers are the prefixes that own a running_var buffer."""
    return {k.rsplit(".", 1)[0] for k in keys if k.endswith(".running_var")}


def _prefix(key: str) -> str:
    return key.rsplit(".", 1)[0] if "." in key else ""


def model_size_from_tensors(
    state_dict: Mapping[str, torch.Tensor],
    rule: SizeRule | str,
    excluded_prefixes: set[str] | None = None,
) -> SizeReport:
    """Size of written tensors, each at its own dtype's bytes: re-checks exported artifacts.

    BatchNorm layers are found by `excluded_prefixes` (e.g. from `batchnorm_prefixes(model)`)
    or, when None, as the prefixes owning a `running_var` entry. BatchNorm running statistics
    are never counted (they are not parameters, matching `model_size`); a pruned
    `<name>_orig`/`<name>_mask` pair counts once as their product.
    """
    rule = _resolve_rule(rule)
    keys = set(state_dict)
    bn = excluded_prefixes if excluded_prefixes is not None else _detect_batchnorm(keys)
    params = counted = nonzero = nbytes = 0
    dtypes: set[torch.dtype] = set()
    for key, tensor in state_dict.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf in _BN_BUFFERS or leaf.endswith("_mask"):
            continue
        value = tensor.detach()
        mask_key = f"{key[:-5]}_mask" if key.endswith("_orig") else None
        if mask_key in state_dict:
            value = value * state_dict[mask_key].to(value.dtype)
        params += value.numel()
        if rule.exclude_batchnorm and _prefix(key) in bn:
            continue
        n_nonzero = int(torch.count_nonzero(value))
        counted += value.numel()
        nonzero += n_nonzero
        nbytes += (value.numel() if rule.count_zeros else n_nonzero) * value.element_size()
        dtypes.add(value.dtype)
    precision = _precision_of(dtypes)
    return _report(rule, precision, params, counted, nonzero, nbytes)


def _precision_of(dtypes: set[torch.dtype]) -> Precision | None:
    """The one Precision all counted tensors share, or None when mixed/unknown."""
    by_dtype = {
        torch.float32: Precision.FP32,
        torch.float16: Precision.FP16,
        torch.int8: Precision.INT8,
        torch.qint8: Precision.INT8,
        torch.uint8: Precision.INT8,
    }
    found = {by_dtype.get(d) for d in dtypes}
    return found.pop() if len(found) == 1 else None


def folded_bias_bytes(model: nn.Module, rule: SizeRule | str, precision: Precision | str) -> int:
    """Bytes a deployed graph adds when BatchNorm is folded into the preceding layer's bias.

    A rule that excludes BatchNorm (dcase2020) does not count these values, but an exported IR
    stores them; a technique that prunes right up to the limit keeps this much headroom so its
    exported artifact fits too. Zero for rules that count BatchNorm already.
    """
    rule = get_rule(rule) if isinstance(rule, str) else rule
    if not rule.exclude_batchnorm:
        return 0
    channels = sum(m.num_features for m in model.modules()
                   if isinstance(m, nn.modules.batchnorm._BatchNorm))
    return channels * Precision(precision).bytes
