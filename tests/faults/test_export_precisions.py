"""Fault corpus: every precision a shipped space offers exports, for every technique (issue 8
item 6: a log-mel model at INT8 could not be compiled by OpenVINO, and no test saw it because the
test spaces left INT8 out).

Each case trains the technique's paper configuration for one epoch on the tiny dataset at that
precision (its own `fit`, so its own compression path), writes the deployed model as retrain does,
reloads the IR as export and predict do, and compares it with the deployed torch model.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import numpy as np
import pytest

from asc_auto.compress.size import Precision
from asc_auto.ir import IR_FILE, IrModel, ir_size
from asc_auto.package import write_deployed
from asc_auto.search import SearchOptions, prepare_search
from asc_auto.space import default_space_file
from asc_auto.techniques import TECHNIQUES

pytestmark = pytest.mark.slow
SPACES = Path(__file__).parents[1] / "spaces"


def offered(technique: str) -> list[str]:
    """Precisions the shipped space of `technique` lets a search choose."""
    doc = tomllib.loads(default_space_file(technique).read_text())
    spec = doc.get("params", {}).get("precision")
    return list(spec["choices"]) if spec else [str(doc["paper"].get("precision", "int8"))]


CASES = [(t, p) for t in sorted(TECHNIQUES) for p in offered(t)]


def test_every_precision_of_every_shipped_space_is_covered() -> None:
    assert {p for _, p in CASES} == {"fp32", "fp16", "int8"}
    assert ("kd", "int8") in CASES and ("gcc", "int8") in CASES


@pytest.fixture(scope="module")
def setups(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("precisions")
    cache: dict[str, object] = {}

    def get(name: str):  # type: ignore[no-untyped-def]
        if name not in cache:
            opts = SearchOptions(technique=name, data=tiny_dataset, space=SPACES / f"{name}.toml",
                                 home=home, progress=False, epochs=1)
            cache[name] = prepare_search(opts, status=lambda m: None)
        return cache[name]

    return get


@pytest.mark.parametrize(("name", "precision"), CASES)
def test_export_round_trip_at_every_offered_precision(setups, name: str, precision: str,
                                                      tmp_path: Path) -> None:
    setup = setups(name)
    ctx, technique = setup.context, setup.technique
    technique.prepare(ctx)
    config = dict(setup.space.paper)
    if "precision" in config:
        config["precision"] = precision
    for spec in setup.space.params:  # simplex params are stored expanded in the paper point
        if spec.type == "simplex":
            total = sum(float(config[n]) for n in spec.names)
            config.update({n: float(config[n]) / total for n in spec.names})
    cand = technique.build(config, ctx)
    assert cand.precision is Precision(precision)
    outcome = technique.fit(cand, config, ctx)
    example = ctx.val_xy[0][:1].float()
    write_deployed(outcome.deployed, cand.precision, example, tmp_path)

    x, _ = ctx.val_xy
    probs_ir = IrModel(tmp_path / IR_FILE).probabilities(x.float().numpy())
    device = "cpu"
    probs_torch = technique.evaluate(outcome.deployed, *ctx.val_xy, ctx, device=device).probs
    assert probs_ir.shape == probs_torch.shape
    # FP32/FP16: the same arithmetic up to kernel rounding; INT8: OpenVINO's int8 kernels round
    # activations differently from NNCF's simulation, which moves probabilities a little.
    tol = {"fp32": 1e-4, "fp16": 5e-3, "int8": 0.05}[precision]
    assert np.abs(probs_ir - probs_torch).max() <= tol
    size = ir_size(tmp_path / IR_FILE, dataclasses.replace(ctx.rule))
    assert size.fits and size.size_bytes > 0
    expected_types = {"fp32": {"f32"}, "fp16": {"f16"}, "int8": {"i8"}}[precision]
    assert expected_types <= set(size.element_types)


@pytest.mark.parametrize(("h", "w"), [(7, 9), (1, 3), (8, 8), (5, 11), (2, 1)])
def test_ceil_pool_rewrite_is_exact_and_pads_with_finite_values(h: int, w: int,
                                                                tmp_path: Path) -> None:
    """The rewrite of ceil-mode max-pools that conversion needs: identical outputs, and no -inf
    in the graph (OpenVINO's INT8 pad transformation rejects it: `-inf ... out of range`)."""
    import openvino as ov
    import torch

    from asc_auto.ir import CeilMaxPool2d, write_ir

    x = torch.randn(2, 3, h, w)
    assert torch.equal(CeilMaxPool2d(2)(x), torch.nn.MaxPool2d(2, ceil_mode=True)(x))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.MaxPool2d(2, ceil_mode=True))
    write_ir(model.eval(), Precision.FP32, x[:1], tmp_path)
    ir = ov.Core().read_model(str(tmp_path / IR_FILE))
    for op in ir.get_ordered_ops():
        if op.get_type_name() == "Constant" and op.get_element_type().is_real():
            assert np.isfinite(op.get_data()).all(), op.get_friendly_name()
