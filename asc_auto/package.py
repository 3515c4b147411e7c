"""The on-disk layout of a retrained seed and of an export package, in one place.

Retrain writes a seed folder (the trained weights, the deployed model, result.json), export
copies a seed's model files into a package and adds export.json, predict reads a package back:
all three take the file names and the deployed model's writing and reading from here, so they
cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from asc_auto.compress.size import Precision
from asc_auto.errors import AscError
from asc_auto.ir import IR_FILE, write_ir

IR_BIN = "model.bin"  # the IR's weights, beside IR_FILE (model.xml)
WEIGHTS = "weights.safetensors"  # the trained FP32 model (no pickle)
DEPLOYED = "deployed.safetensors"  # the deployed model's weights at its precision
RESULT_JSON = "result.json"  # a retrained seed: its key, configuration and evaluate scores
EXPORT_JSON = "export.json"  # a package: what predict needs (frontend, labels, input shape)
MODEL_CARD = "model_card.md"
# What an export copies from a retrained seed into its package.
FILES = (IR_FILE, IR_BIN, DEPLOYED, WEIGHTS)
SAFETENSORS = (DEPLOYED, WEIGHTS)


def state_tensors(model: nn.Module, half: bool = False) -> dict[str, torch.Tensor]:
    """A model's state dict as plain contiguous CPU tensors (floats as float16 when `half`)."""
    out = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if half and value.dtype == torch.float32:
            value = value.to(torch.float16)
        out[key] = value.contiguous().clone()
    return out


def write_weights(model: nn.Module, folder: Path) -> None:
    """The trained FP32 weights as WEIGHTS."""
    save_file(state_tensors(model), str(folder / WEIGHTS))


def write_deployed(deployed: Any, precision: Precision, example: Any, folder: Path) -> None:
    """The deployed model as it runs: an OpenVINO IR (model.xml/.bin) at its precision, and its
    weights as deployed.safetensors (no pickle).

    IR precision: FP32 as is; FP16 with float16 weight constants; INT8 from the NNCF model,
    whose quantized weights OpenVINO stores as int8 constants. deployed.safetensors holds
    float16 tensors for FP16 and float32 ones for FP32; for INT8 it holds NNCF's FP32 weights
    and quantizer parameters (the INT8 artifact is the IR), as its metadata says.
    """
    deployed = deployed.cpu().eval()
    write_ir(deployed, precision, example, folder)
    note = {Precision.FP16: "deployed FP16 weights",
            Precision.FP32: "deployed FP32 weights",
            Precision.INT8: "FP32 weights and NNCF quantizer parameters; the INT8 model is "
                            "model.xml/.bin"}[precision]
    save_file(state_tensors(deployed, half=precision is Precision.FP16),
              str(folder / DEPLOYED),
              metadata={"precision": precision.value, "contents": note})


def read_export(model_dir: Path) -> dict[str, Any]:
    """The package's export.json (technique, frontend, labels, precision, input shape)."""
    path = Path(model_dir) / EXPORT_JSON
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise AscError(f"{path}: not an asc-auto export ({err}); fix: pass a folder written "
                       "by `asc-auto export`") from None
    if not (Path(model_dir) / IR_FILE).exists():
        raise AscError(f"{model_dir}: {IR_FILE} is missing; fix: export the study again")
    return doc
