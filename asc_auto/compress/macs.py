"""Multiply-accumulate counts of one forward pass, counted the way each size rule's tool counts.

Two counters, because the official tools differ and a limit only means something counted their
way:

- ``flop_counter``: `torch.utils.flop_counter` (FLOPs / 2 of convolutions and matrix products).
  Traced by torch, so it stays right when architectures change; the count recorded under rules
  that set no MACs limit.
- ``torchinfo``: what NeSsi (the DCASE2022-2024 Task 1 complexity calculator) reports for a
  PyTorch model, `torchinfo.summary(model, input_size).total_mult_adds`, rebuilt here from
  torchinfo's `LayerInfo.calculate_macs` so the tool needs no extra dependency: for every call of
  a leaf module, each parameter named ``weight`` or ``bias`` adds its element count times the
  output positions (batch x spatial) when the module's class name contains "Conv", else times
  the batch; BatchNorm affine parameters therefore count, pooling and parameter-free operations
  do not. Pinned against the DCASE2024 baseline's published 29,419,156 MACs in tests/test_rules.py.

A rule with an inference window (DCASE2022-2024: one second of audio) is counted on an input
shaped like the features of that much audio (`window_input`), not on the cached clip.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from asc_auto.compress.size import SizeRule


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """MACs of `model(example)` in eval mode (FlopCounterMode flops / 2; convs and matmuls only).

    `example` should be a batch of one; the model's training mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def _first_shape(output: Any) -> list[int]:
    """torchinfo's output size: a tensor's shape, a sequence's first element's, a dict's last."""
    if isinstance(output, torch.Tensor):
        return list(output.shape)
    if isinstance(output, dict) and output:
        return _first_shape(list(output.values())[-1])
    if isinstance(output, (list, tuple)) and output:
        return _first_shape(output[0])
    return []


def _counted_elements(module: nn.Module, name: str, param: torch.Tensor) -> tuple[int, str]:
    """Elements torchinfo counts for a parameter: a pruned `<w>_orig` counts its mask's ones."""
    if name.endswith("_orig"):
        mask = getattr(module, f"{name[:-5]}_mask", None)
        if isinstance(mask, torch.Tensor):
            return int(mask.sum()), name[:-5]
    return param.numel(), name


def _torchinfo_layer_macs(module: nn.Module, output: Any) -> int:
    """`torchinfo.layer_info.LayerInfo.calculate_macs` for one call of a leaf module."""
    shape = _first_shape(output)
    conv = "Conv" in type(module).__name__
    macs = 0
    for name, param in module.named_parameters():
        count, name = _counted_elements(module, name, param)
        if name in ("weight", "bias"):
            macs += count * (math.prod(shape[:1] + shape[2:]) if conv else shape[0])
        elif "weight" in name or "bias" in name:  # RNN-style names (weight_ih_l0, ...)
            macs += math.prod(shape[:2]) * count
    return macs


def count_macs_torchinfo(model: nn.Module, example: torch.Tensor) -> int:
    """MACs of `model(example)` as torchinfo's `total_mult_adds` (hence NeSsi) reports them.

    Leaf modules only, once per call (a module called twice counts twice); eval mode, no
    gradients; the model's training mode is restored afterwards.
    """
    total = 0

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        del inputs
        nonlocal total
        total += _torchinfo_layer_macs(module, output)

    leaves = [m for m in model.modules() if not any(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


COUNTERS: dict[str, Callable[[nn.Module, torch.Tensor], int]] = {
    "flop_counter": count_macs,
    "torchinfo": count_macs_torchinfo,
}


def window_input(feature_config: Any, seconds: float) -> torch.Tensor:
    """Zeros shaped like one inference window's features (batch of one): the frontend's
    settings with `clip_seconds` set to the window, so framing (frames per second, the extra
    centre frame) is exactly the frontend's. Only shapes matter to a MACs count."""
    window = dataclasses.replace(feature_config, clip_seconds=seconds)
    return torch.zeros(1, *window.feature_shape)


def rule_macs(model: nn.Module, rule: SizeRule, clip_example: Callable[[], torch.Tensor],
              feature_config: Any) -> int:
    """MACs of one inference as `rule` defines it: its counter, on its window of audio (one
    cached clip, from `clip_example`, when the rule sets no window)."""
    if rule.macs_window_seconds is None:
        example = clip_example()
    else:
        example = window_input(feature_config, rule.macs_window_seconds)
    return COUNTERS[rule.macs_counter](model, example)
