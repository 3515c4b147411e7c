"""Reduced-precision copies of a trained model: fp16 (simulated or real) and int8 via NNCF.

Evaluating the simulated copy measures the accuracy of what will be deployed while inference
keeps running in fp32 on any CPU; the real fp16 copy is for export.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from asc_auto.compress.size import Precision


def simulate_precision(model: nn.Module, precision: Precision | str) -> nn.Module:
    """Eval-mode deep copy holding the values the deployed model would hold, still in fp32.

    fp16: every float32 parameter and buffer is rounded through torch.float16. int8 needs
    calibration data: use `quantize_int8`.
    """
    precision = Precision(precision)
    if precision is Precision.INT8:
        raise ValueError("int8 needs calibration data: use quantize_int8(model, calibration)")
    clone = copy.deepcopy(model).eval()
    if precision is Precision.FP16:
        with torch.no_grad():
            for tensor in [*clone.parameters(), *clone.buffers()]:
                if tensor.dtype == torch.float32:
                    tensor.copy_(tensor.to(torch.float16).to(torch.float32))
    return clone


def to_half(model: nn.Module) -> nn.Module:
    """Real float16 eval-mode copy (inputs must be float16 too): what export writes."""
    return copy.deepcopy(model).half().eval()


def _inputs_only(batch: Any) -> torch.Tensor:
    """Accept (inputs, targets, ...) batches as loaders yield them as well as bare inputs."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _same_on_every_cpu() -> Any:
    """7-bit weights in every conv/matmul (NNCF's overflow fix on all layers, not only the first).

    CPUs without VNNI (no AVX2, AVX2, AVX-512 without VNNI) add pairs of u8 x s8 products in
    int16, which saturates with 8-bit weights, so the deployed IR computes another model than the
    one searched and exported: measured under QEMU (EPYC,-avx2; Haswell), logits 1.6 % (of the
    largest) away from the torch INT8 model where this VNNI CPU is 0.4 % away; 4.5 % for the
    model of tests/test_int8.py, whose 3 % check failed there. With 7-bit weights no pair can
    saturate: 0.63 % on both CPUs, and that test passes under QEMU. Its accuracy on the tone task
    stayed 100 %, as with 8-bit weights.
    """
    import nncf

    return nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.ENABLE)


def quantize_int8(
    model: nn.Module, calibration: Iterable[torch.Tensor], subset_size: int = 300
) -> nn.Module:
    """Post-training INT8 quantization with NNCF (the seed paper's int8 technique).

    `calibration` yields input batches (or (inputs, targets) tuples); `subset_size` is the
    number of items NNCF reads from it (batches, unless it is a DataLoader with a batch_size).
    NNCF deep-copies the model; the result is an eval-mode module returning the same
    (logits, embedding) tuple. The first call on a machine compiles an NNCF C++ extension
    (measured 35-53 s on 2 busy cores; cached in ~/.cache/torch_extensions, ~2 s afterwards).
    """
    # The extension build can outlast NNCF's 60 s default on a busy 2-core machine.
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "600")
    import nncf  # heavy import, kept out of module import time

    if subset_size < 1:
        raise ValueError(f"subset_size must be >= 1, got {subset_size}")
    if isinstance(calibration, Iterator):  # NNCF iterates more than once: keep what it reads
        calibration = list(itertools.islice(calibration, subset_size))
    was_training = model.training
    model.eval()
    try:
        dataset = nncf.Dataset(calibration, _inputs_only)
        # NNCF prints its own log lines and rich progress bars to stdout, which would tear
        # the caller's progress display: keep warnings and errors only, drop its bars.
        nncf.set_log_level(logging.ERROR)
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()):
            quantized = nncf.quantize(model, dataset, subset_size=subset_size,
                                      advanced_parameters=_same_on_every_cpu())
    finally:
        model.train(was_training)
    return quantized.eval()


def calibration_batches(x: torch.Tensor, n: int, batch_size: int = 16) -> list[torch.Tensor]:
    """The first `n` training inputs in batches: what INT8 post-training quantization sees."""
    x = x[:n].float()
    return [x[i:i + batch_size] for i in range(0, len(x), batch_size)]


def deploy(model: nn.Module, precision: Precision | str, calibration: Sequence[torch.Tensor],
           ) -> nn.Module:
    """The model as it would run deployed at `precision` (FP16 rounding or NNCF INT8).

    Shared by every technique so that "deployed" means the same thing in all of them.
    """
    model = model.cpu().eval()
    if Precision(precision) is Precision.INT8:
        return quantize_int8(model, calibration, subset_size=len(calibration))
    return simulate_precision(model, precision)
