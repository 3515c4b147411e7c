"""Fault corpus: INT8 inference on CPUs OpenVINO has no INT8 kernels for (issue 8 item 1).

Seen on an AMD EPYC guest (AVX-512 with BF16 here; AVX/FMA/F16C without AVX2 in the report):
`compile_model(int8_ir, "CPU")` failed with `executor_factory.hpp:117 ... No suitable
implementations`. Each case runs in a fresh process, so the CPU limits (oneDNN's
ONEDNN_MAX_CPU_ISA, read once when OpenVINO loads) apply to it alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_SCRIPT = r"""
import sys
from pathlib import Path
import numpy as np
import torch
from asc_auto.compress.precision import quantize_int8
from asc_auto.compress.size import Precision
from asc_auto.ir import IrModel, write_ir
from asc_auto.models.aclnet import AclNet, AclNetConfig

torch.manual_seed(0)
model = AclNet(AclNetConfig(width=0.25, llf_channels=(8, 16), depth=3, sample_rate=4000)).eval()
x = torch.randn(24, 1, 4000) * 0.1
int8 = quantize_int8(model, [x[:12], x[12:]], subset_size=2)
write_ir(int8, Precision.INT8, x[:1], Path(sys.argv[1]))
ir = IrModel(Path(sys.argv[1]) / "model.xml")
probs = ir.probabilities(x.numpy())
with torch.no_grad():
    ref = torch.softmax(int8(x)[0], 1).numpy()
err = float(np.abs(probs - ref).max())
print(f"max abs probability difference {err:.2e}")
assert err < 1e-3, err
assert (probs.argmax(1) == ref.argmax(1)).mean() >= 0.95
"""


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, **env}, check=False, timeout=300)


@pytest.mark.parametrize("isa", ["AVX", "SSE41"])
def test_int8_ir_runs_under_a_cpu_isa_limit(isa: str, tmp_path: Path) -> None:
    """oneDNN limited to AVX (no AVX2) or SSE4.1: the INT8 IR still compiles and matches torch
    (OpenVINO's default settings fail here: node.cpp 'getSupportedPrimitiveDescriptors')."""
    run = _run(tmp_path, ONEDNN_MAX_CPU_ISA=isa)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr


def test_simulated_int8_matches_torch_and_says_so_once(tmp_path: Path) -> None:
    """The fallback (low-precision transformations off: FakeQuantize in f32), forced."""
    run = _run(tmp_path, ASC_AUTO_SIMULATE_INT8="1")
    assert run.returncode == 0, run.stderr[-3000:]
    notices = [ln for ln in run.stderr.splitlines() if ln.startswith("notice: INT8 model runs")]
    assert len(notices) == 1 and "simulated int8 arithmetic" in notices[0]
