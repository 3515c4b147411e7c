"""Model size under a named counting rule: the one place that decides whether a model fits.

Size rules are data (``RULES``), not code scattered around: the seed paper's and the DCASE
low-complexity rules of 2020-2024, each with the source it was looked up in and what it counts.
DCASE2020 Task 1b counts non-zero values and skips BatchNorm (500 KB of 1024 bytes); 2021 Task 1a
counts non-zero values with BatchNorm and its running statistics (Keras weights); 2022-2024
Task 1 count every parameter (zeros and BatchNorm's weight and bias, as torchinfo does) and add a
second hard limit, multiply-accumulates per second of audio (`max_macs`, counted by
`asc_auto.compress.macs` the way NeSsi counts). The 2021-2024 limits are 128,000 bytes, the
figure their calculators and task pages use.
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


PRECISIONS: tuple[str, ...] = tuple(p.value for p in Precision)  # a `precision` param's choices


@dataclass(frozen=True)
class SizeRule:
    """How values are counted and what the limit is."""

    name: str
    description: str
    limit_bytes: int
    count_zeros: bool  # False: pruned (zero) values are free, as in the DCASE2020 rule
    exclude_batchnorm: bool  # True: BatchNorm parameters are free (folded into convs)
    kb_bytes: int = 1024
    batchnorm_statistics: bool = False  # True: running mean/var count too (Keras weights, 2021)
    max_macs: int | None = None  # MACs of one inference window; None: no MACs limit
    macs_window_seconds: float | None = None  # audio one inference sees; None: one cached clip
    macs_counter: str = "flop_counter"  # or "torchinfo" (NeSsi's count); see compress/macs.py
    source: str = ""  # where the rule was looked up

    @property
    def limit_kb(self) -> float:
        return self.limit_bytes / self.kb_bytes

    @property
    def max_mmacs(self) -> float | None:
        """The MACs limit in millions, or None."""
        return None if self.max_macs is None else self.max_macs / 1e6

    def macs_fit(self, macs: int) -> bool:
        """Within the MACs limit (always, when the rule sets none)."""
        return self.max_macs is None or macs <= self.max_macs


RULES: dict[str, SizeRule] = {
    rule.name: rule
    for rule in (
        SizeRule(
            name="dcase2020",
            description="DCASE2020 Task 1b: non-zero values x bytes, BatchNorm excluded, 500 KB",
            limit_bytes=500 * 1024,
            count_zeros=False,
            exclude_batchnorm=True,
            source="toni-heittola/dcase2020_task1_baseline model_size_calculation.py (Keras "
                   "BatchNormalization layers excluded, non-zero values x dtype bytes)",
        ),
        SizeRule(
            name="params",
            description="seed paper: all parameters (zeros and BatchNorm too) x bytes, 500 KB",
            limit_bytes=500 * 1024,
            count_zeros=True,
            exclude_batchnorm=False,
            source="the seed paper's reported sizes (parameters x bytes of the precision)",
        ),
        SizeRule(
            name="dcase2021",
            description="DCASE2021 Task 1a: non-zero values x bytes, BatchNorm included with its "
                        "running statistics, 128 KB (128,000 bytes); no MACs limit",
            limit_bytes=128_000,
            count_zeros=False,
            exclude_batchnorm=False,
            kb_bytes=1000,
            batchnorm_statistics=True,
            source="marmoi/dcase2021_task1a_baseline: model_size_calculation.py (every Keras "
                   "layer's weights, BatchNormalization's moving mean/variance included, "
                   "non-zero values x dtype bytes) and README ('128KB size for the non-zero "
                   "parameters', '32000 parameter values * 32 bits ... = 128000 bytes = "
                   "128KB'; baseline 46,246 parameters, 93,004 bytes)",
        ),
        *(SizeRule(
            name=f"dcase{year}",
            description=f"DCASE{year} Task 1: all parameters (zeros and BatchNorm weight/bias) x "
                        "bytes, 128 KB (128,000 bytes); at most 30 million MACs per 1 s of audio "
                        "(NeSsi/torchinfo count)",
            limit_bytes=128_000,
            count_zeros=True,
            exclude_batchnorm=False,
            kb_bytes=1000,
            max_macs=30_000_000,
            macs_window_seconds=1.0,
            macs_counter="torchinfo",
            source=source,
        ) for year, source in (
            ("2022", "marmoi/dcase2022_task1_baseline README ('Maximum number of parameters "
                     "128000, for ALL parameters, and the used variable type is fixed into "
                     "INT8'; 'Maximum number of MACS per inference: 30 MMAC ... The analysis "
                     "segment length for the inference is 1 s'; counted with NeSsi, whose "
                     "PyTorch path is torchinfo); Martin-Morato et al., 'Low-complexity acoustic "
                     "scene classification in DCASE 2022 Challenge' (baseline 46.5 K parameters,"
                     " 29.23 MMACs)"),
            ("2023", "dcase.community/challenge2023/task-low-complexity-acoustic-scene-"
                     "classification (the 2022 task 'with modified memory limit', ranked on "
                     "accuracy, memory usage and MACs); counted with NeSsi's torchinfo path "
                     "(fschmid56/cpjku_dcase23 helpers/nessi.py); limits as 2024, which continues "
                     "2022 and 2023"),
            ("2024", "CPJKU/dcase2024_task1_baseline README ('max memory for model parameters: "
                     "128 kB', 'max number of MACs for inference of a 1-second audio snippet: 30 "
                     "MMACs'; baseline 61,148 parameters x 2 B = 122,296 B, 29,419,156 MACs) and "
                     "helpers/nessi.py (MAX_PARAMS_MEMORY = 128_000, MAX_MACS = 30_000_000, "
                     "torchinfo.summary)"),
        )),
    )
}


def get_rule(name: str) -> SizeRule:
    """Look a rule up by name; unknown names list the known ones."""
    if name not in RULES:
        raise AscError(f"unknown size rule '{name}'; known rules: {', '.join(sorted(RULES))}")
    return RULES[name]


def sized_rule(name: str, budget_kb: float | None = None,
               max_mmacs: float | None = None) -> SizeRule:
    """The named rule with its limits overridden: the size budget (1 KB = the rule's KB) and the
    MACs limit in millions (counted as the rule counts MACs); None keeps the rule's own."""
    rule = get_rule(name)
    if budget_kb is not None:
        rule = dataclasses.replace(rule, limit_bytes=round(budget_kb * rule.kb_bytes))
    if max_mmacs is not None:
        rule = dataclasses.replace(rule, max_macs=round(max_mmacs * 1e6))
    return rule


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
    if rule.batchnorm_statistics:  # Keras keeps them as layer weights: 2021 counts them
        for stat in _batchnorm_statistics(model):
            params += stat.numel()
            counted += stat.numel()
            nonzero += int(torch.count_nonzero(stat))
    values = counted if rule.count_zeros else nonzero
    return _report(rule, precision, params, counted, nonzero, values * precision.bytes)


def _batchnorm_statistics(model: nn.Module) -> Iterator[torch.Tensor]:
    """Running mean and variance of every BatchNorm layer that tracks them."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            for stat in (module.running_mean, module.running_var):
                if stat is not None:
                    yield stat


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
    are counted only under a rule that counts them (dcase2021, matching `model_size`); a pruned
    `<name>_orig`/`<name>_mask` pair counts once as their product.
    """
    rule = _resolve_rule(rule)
    keys = set(state_dict)
    bn = excluded_prefixes if excluded_prefixes is not None else _detect_batchnorm(keys)
    params = counted = nonzero = nbytes = 0
    dtypes: set[torch.dtype] = set()
    for key, tensor in state_dict.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked" or leaf.endswith("_mask"):
            continue
        if leaf in _BN_BUFFERS and not (rule.batchnorm_statistics and _prefix(key) in bn):
            continue  # running statistics: counted by dcase2021 only
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


def folded_bias_bytes(model: nn.Module, rule: SizeRule | str) -> int:
    """Bytes a deployed graph adds when BatchNorm is folded into the preceding layer's bias.

    A rule that excludes BatchNorm (dcase2020) does not count these values, but an exported IR
    stores them; a technique that prunes right up to the limit keeps this much headroom so its
    exported artifact fits too. Zero for rules that count BatchNorm already.

    Counted at 4 bytes a value whatever the model's precision: OpenVINO's FP16 compression keeps a
    constant in f32 when its values are below FP16's normal range, and folded shifts can be
    (2026-12-03, the lt export test: a first BatchNorm's four shifts of 1e-6 stayed f32 and the
    IR counted 10,248 bytes against a 10,240-byte budget the ticket was pruned to).
    """
    rule = get_rule(rule) if isinstance(rule, str) else rule
    if not rule.exclude_batchnorm:
        return 0
    channels = sum(m.num_features for m in model.modules()
                   if isinstance(m, nn.modules.batchnorm._BatchNorm))
    return channels * Precision.FP32.bytes
