"""Multiply-accumulate count of one forward pass, measured by torch rather than by hand.

Later DCASE rules cap MACs per second of audio; a traced count stays right when architectures
change, a hand formula silently does not.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


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
