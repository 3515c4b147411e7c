"""Reduced precision: simulated and real fp16, and NNCF int8 post-training quantization."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from asc_auto.compress.precision import quantize_int8, simulate_precision, to_half
from asc_auto.compress.size import model_size
from asc_auto.models.registry import create_model


def small_student(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = create_model("cnn_student", channels=(8, 16, 32))
    with torch.no_grad():  # non-trivial BN statistics, as after training
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model.train()


def inputs(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 1, 32, 40, generator=torch.Generator().manual_seed(seed))


def test_fp16_simulation_rounds_every_float_tensor_once() -> None:
    model = small_student()
    sim = simulate_precision(model, "fp16")
    assert sim is not model and not sim.training and model.training
    original = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    for name, tensor in [*sim.named_parameters(), *sim.named_buffers()]:
        before = original[name].detach()
        assert tensor.dtype == before.dtype
        if tensor.dtype == torch.float32:
            assert torch.equal(tensor, before.half().float())
            # fp16 keeps 11 significant bits: relative rounding error at most 2^-11
            assert ((tensor - before).abs() <= before.abs() * 2.0**-11 + 1e-7).all()
    changed = sum(
        int((p != original[n]).sum()) for n, p in sim.named_parameters() if p.is_floating_point()
    )
    assert changed > 0  # random fp32 weights are not all representable in fp16


def test_fp16_simulation_keeps_predictions() -> None:
    model = small_student().eval()
    sim = simulate_precision(model, "fp16")
    x = inputs(64, seed=1)
    with torch.no_grad():
        logits, emb = model(x)
        sim_logits, sim_emb = sim(x)
    assert sim_logits.dtype == torch.float32
    assert (sim_logits - logits).abs().max() < 1e-3
    assert (sim_emb - emb).abs().max() < 1e-3
    assert (sim_logits.argmax(1) == logits.argmax(1)).float().mean() >= 0.95


def test_fp32_simulation_is_an_exact_copy_and_int8_needs_calibration() -> None:
    model = small_student()
    sim = simulate_precision(model, "fp32")
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), sim.state_dict().values(), strict=True)
    )
    with pytest.raises(ValueError, match="quantize_int8"):
        simulate_precision(model, "int8")


def test_to_half_is_a_real_fp16_copy() -> None:
    model = small_student()
    half = to_half(model)
    assert all(p.dtype == torch.float16 for p in half.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not half.training
    assert model_size(half, "dcase2020", "fp16") == model_size(model, "dcase2020", "fp16")


@pytest.fixture(scope="module")
def quantized() -> tuple[nn.Module, nn.Module]:
    """One NNCF run for the module: the first in a process compiles an extension."""
    model = small_student()
    # (inputs, targets) tuples from a one-shot generator, as a training loader would give them
    calibration = ((inputs(4, seed=s), torch.zeros(4, dtype=torch.long)) for s in range(100, 110))
    return model, quantize_int8(model, calibration, subset_size=10)


def test_int8_model_runs_and_stays_close_to_fp32(quantized: tuple[nn.Module, nn.Module]) -> None:
    model, q = quantized
    assert model.training  # the caller's model is untouched (NNCF quantizes a copy)
    assert not q.training
    model.eval()
    x = inputs(64, seed=2)
    with torch.no_grad():
        logits, emb = model(x)
        q_logits, q_emb = q(x)
    model.train()
    assert q_logits.shape == logits.shape and q_emb.shape == emb.shape
    assert not torch.equal(q_logits, logits)  # quantization really happened
    # measured: max |diff| = 0.98 % (logits) and 0.41 % (embedding) of the largest fp32 value,
    # all 64 argmax agree; allow 3 % and 90 %
    assert (q_logits - logits).abs().max() <= 0.03 * logits.abs().max()
    assert (q_emb - emb).abs().max() <= 0.03 * emb.abs().max()
    assert (q_logits.argmax(1) == logits.argmax(1)).float().mean() >= 0.9


def test_int8_model_size_ignores_nncf_quantizer_metadata(
    quantized: tuple[nn.Module, nn.Module],
) -> None:
    model, q = quantized
    assert any(type(m).__module__.startswith("nncf.") for m in q.modules())
    assert model_size(q, "dcase2020", "int8") == model_size(model, "dcase2020", "int8")
