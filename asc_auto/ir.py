"""The deployed model as an OpenVINO IR: write it, size it from its own constants, run it.

Retrain writes the IR of every seed (so export never rebuilds pruned architectures); export
re-checks it; predict runs it. OpenVINO folds BatchNorm into the preceding convolution when it
saves the IR (the BN scale multiplies the conv weights, the BN shift becomes the conv's bias
`Add`), and an NNCF INT8 model is stored with int8 weight constants plus float scales.
"""

from __future__ import annotations

import copy
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asc_auto.compress.size import Precision, SizeRule
from asc_auto.errors import AscError

IR_FILE = "model.xml"
WEIGHT_OPS = frozenset({"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData"})
# Ops between a stored constant and the layer reading it: weight decompression (int8/fp16 ->
# f32: Convert, Subtract zero point, Multiply scale) and layout changes.
_PASS_THROUGH = frozenset({"Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze",
                           "Squeeze"})


class CeilMaxPool2d(nn.Module):
    """`MaxPool2d(k, ceil_mode=True)` as edge-replicating pad then floor pooling: the same output
    (a partial window's copies of its last row/column cannot raise its max), but convertible where
    OpenVINO rejects a ceil-mode kernel larger than its input (a 1-high map, which small mel counts
    reach in the gcc CNN). Not a -inf pad: OpenVINO's INT8 pad transformation cannot quantize
    -inf, so an INT8 log-mel model could not be compiled."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h = -x.shape[-2] % self.kernel
        pad_w = -x.shape[-1] % self.kernel
        if pad_h or pad_w:
            x = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return nn.functional.max_pool2d(x, self.kernel)


def _convertible(model: nn.Module) -> nn.Module:
    """A copy with ceil-mode max-pools replaced by `CeilMaxPool2d` (same outputs)."""
    model = copy.deepcopy(model).cpu().eval()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (isinstance(child, nn.MaxPool2d) and child.ceil_mode and child.padding == 0
                    and child.kernel_size == child.stride and isinstance(child.kernel_size, int)
                    and child.dilation == 1):
                setattr(parent, name, CeilMaxPool2d(child.kernel_size))
    return model


def write_ir(model: nn.Module, precision: Precision, example: torch.Tensor, folder: Path) -> Path:
    """Convert the deployed model to `folder`/model.xml(+.bin): FP16 weights for fp16, int8 ones
    for an NNCF int8 model, FP32 otherwise. The feature shape is fixed (any batch size)."""
    import openvino as ov

    # OpenVINO traces with torch.jit (deprecated in torch 2.14: FutureWarning), and the trace
    # check of an NNCF model differs by quantization noise (TracerWarning); export re-checks
    # the written IR's accuracy itself.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        ir = ov.convert_model(_convertible(model), example_input=example,
                              input=[ov.PartialShape([-1, *example.shape[1:]])])
    path = folder / IR_FILE
    ov.save_model(ir, str(path), compress_to_fp16=precision is Precision.FP16)
    return path


@dataclass(frozen=True)
class IrSize:
    """Values the IR stores for its layers, counted from its constants."""

    weights: int  # values of conv/matmul weight constants (BatchNorm scales folded in)
    biases: int  # values of the bias constants added to their outputs (BatchNorm shifts too)
    nonzero: int  # non-zero values among weights + biases
    size_bytes: int  # counted values x their stored element size, under the rule
    size_kb: float
    limit_kb: float
    fits: bool
    element_types: tuple[str, ...]  # element types of the counted constants


def _source_constants(output: Any) -> Iterator[Any]:
    """Constants feeding an op input through decompression/layout ops."""
    node = output.get_node()
    if node.get_type_name() == "Constant":
        yield node
    elif node.get_type_name() in _PASS_THROUGH:
        for value in node.input_values():
            yield from _source_constants(value)


def _stored_constant(output: Any) -> Any | None:
    """The largest constant behind an input: the stored tensor (scales and shapes are smaller)."""
    found = list(_source_constants(output))
    return max(found, key=lambda c: int(np.prod(c.get_output_shape(0)))) if found else None


def ir_size(model_xml: Path, rule: SizeRule) -> IrSize:
    """Size of an IR under `rule`, counting how the DCASE rule counts a deployed model.

    Counted: the weight constant of every Convolution/GroupConvolution/MatMul (input 1, behind
    its decompression ops) and the constant of an `Add` right after such a layer (its bias),
    each value at its stored element size (int8 = 1 byte, f16 = 2, f32 = 4). Not counted:
    quantization scales and zero points, shape constants. BatchNorm is folded: its scale is in
    the weights and its shift is a bias, so under `dcase2020` (BN free) this counts one value per
    BN channel more than the PyTorch count; under `params` (BN counted) two fewer.
    """
    import openvino as ov

    model = ov.Core().read_model(str(model_xml))
    seen: set[str] = set()
    weights = biases = nonzero = nbytes = 0
    types: set[str] = set()
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in WEIGHT_OPS:
            const, is_bias = _stored_constant(op.input_value(1)), False
        elif kind == "Add" and op.input_value(0).get_node().get_type_name() in WEIGHT_OPS:
            const, is_bias = _stored_constant(op.input_value(1)), True
        else:
            continue
        if const is None or const.get_friendly_name() in seen:
            continue
        seen.add(const.get_friendly_name())
        data = const.get_data()
        n, nz = int(data.size), int(np.count_nonzero(data))
        weights, biases = weights + (0 if is_bias else n), biases + (n if is_bias else 0)
        nonzero += nz
        nbytes += (n if rule.count_zeros else nz) * data.dtype.itemsize
        types.add(const.get_element_type().get_type_name())
    if weights == 0:
        raise AscError(f"{model_xml}: no convolution or matmul weights found; fix: re-export")
    return IrSize(weights, biases, nonzero, nbytes, nbytes / rule.kb_bytes, rule.limit_kb,
                  nbytes <= rule.limit_bytes, tuple(sorted(types)))


# OpenVINO's CPU plugin runs an IR in bf16 where the CPU has bf16 units (this AMD EPYC has
# AVX-512 BF16: logits of an FP32 IR off by 1.5e-3, decisions flipped), and there it finds no
# kernel for a static-shape INT8 graph (`executor_factory.hpp:117 '!implementations.empty()'`,
# the failure issue 8 reported from an EPYC guest). f32 inference is what the export check needs
# anyway; with it both compile and match PyTorch to 1e-6. On CPUs without AVX2 (QEMU's
# EPYC,-avx2 and SandyBridge models) INT8 IRs compiled at every setting; their int8 kernels
# match PyTorch only with 7-bit weights (see `quantize_int8`).
COMPILE_CONFIG: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
# Where even that finds no INT8 kernel: the plugin's low-precision transformations off, so the
# IR's FakeQuantize ops run as f32 arithmetic: the same INT8 model, its int8 arithmetic simulated.
SIMULATED_INT8: dict[str, Any] = {**COMPILE_CONFIG, "LP_TRANSFORMS_MODE": False}
SIMULATE_ENV = "ASC_AUTO_SIMULATE_INT8"  # "1": use the simulation at once (tests, bug reports)
_noticed: set[str] = set()


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _first_inference(compiled: Any) -> None:
    """Run one all-zero item: a dynamic-batch IR (what `write_ir` writes) gets its kernels at its
    first inference, so a setting that compiles can still fail there (measured: the simulation
    under a oneDNN ISA limit), and only this way is that failure seen while a fallback exists."""
    dims = []
    for i, dim in enumerate(compiled.input(0).get_partial_shape()):
        if dim.is_static:
            dims.append(dim.get_length())
        elif i == 0:
            dims.append(1)
        else:
            return  # a free feature dimension: no example to run
    compiled(np.zeros(dims, dtype=np.float32))


def compile_ir(model_xml: Path, notice: Callable[[str], None] = _stderr) -> Any:
    """Compile an IR for the CPU at f32 and run it once; an INT8 IR the CPU has no kernels for
    runs with simulated int8 arithmetic and a one-line notice (once per process), not a crash."""
    import openvino as ov

    core = ov.Core()
    try:
        model = core.read_model(str(model_xml))
    except (RuntimeError, OSError) as err:
        raise AscError(f"{model_xml}: OpenVINO cannot read it ({_first_line(err)}); fix: "
                       "re-export") from None
    quantized = any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
    forced = quantized and os.environ.get(SIMULATE_ENV) == "1"
    settings = ([] if forced else [COMPILE_CONFIG]) + ([SIMULATED_INT8] if quantized else [])
    errors: list[RuntimeError] = []
    for config in settings:
        try:
            compiled = core.compile_model(model, "CPU", config)
            _first_inference(compiled)
        except RuntimeError as err:
            errors.append(err)
            continue
        if config is SIMULATED_INT8:
            reason = f"forced by {SIMULATE_ENV}=1" if forced else \
                f"OpenVINO has no INT8 kernel for it on this CPU, {_cpu_name(core)}: " \
                f"{_first_line(errors[0])}"
            if reason not in _noticed:
                _noticed.add(reason)
                notice(f"notice: INT8 model runs with simulated int8 arithmetic in f32 ({reason})"
                       ": same results, slower")
        return compiled
    if not quantized:
        raise AscError(f"{model_xml}: OpenVINO cannot run it on this CPU "
                       f"({_first_line(errors[0])}); fix: re-export")
    raise AscError(f"{model_xml}: OpenVINO cannot run this INT8 model on this CPU, not even with "
                   f"simulated int8 arithmetic ({_first_line(errors[0])}); fix: export the study "
                   "at fp16 or fp32")


def _first_line(err: BaseException) -> str:
    """The telling line of an OpenVINO error: its failed check, else the first line that is not
    one of the "Exception from <file>:<line>:" lines it is wrapped in."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    checks = [ln for ln in lines if "Check" in ln or "No suitable" in ln]
    told = [ln for ln in lines if not ln.startswith("Exception from")]
    return (checks or told or lines or [type(err).__name__])[0]


def _cpu_name(core: Any) -> str:
    try:
        return str(core.get_property("CPU", "FULL_DEVICE_NAME"))
    except RuntimeError:  # pragma: no cover - the property exists on every CPU plugin
        return "CPU"


class IrModel:
    """A compiled IR on the CPU: features (N, ...) -> class probabilities (N, n_classes)."""

    def __init__(self, model_xml: Path, notice: Callable[[str], None] = _stderr) -> None:
        self.compiled = compile_ir(model_xml, notice)

    def logits(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Logits of output 0 (the models return (logits, embedding)), batch by batch."""
        out = []
        for start in range(0, len(x), batch_size):
            result = self.compiled(np.ascontiguousarray(x[start:start + batch_size],
                                                        dtype=np.float32))
            out.append(np.asarray(result[self.compiled.output(0)], dtype=np.float64))
        return np.concatenate(out)

    def probabilities(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Softmax of the logits (`softmax`)."""
        return softmax(self.logits(x, batch_size))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the maximum so that exp cannot overflow."""
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)
