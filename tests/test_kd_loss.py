"""Distillation loss: its terms, their weights, hard vs soft targets, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from asc_auto.compress.kd import DistillationLoss


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "student_logits": torch.randn(4, 3, generator=g),
        "student_emb": torch.randn(4, 8, generator=g),
        "teacher_logits": torch.randn(4, 3, generator=g),
        "teacher_emb": torch.randn(4, 8, generator=g),
        "targets": torch.tensor([0, 2, 1, 2]),
    }


def manual_kl(teacher: torch.Tensor, student: torch.Tensor, t: float) -> float:
    """sum_c p_t (log p_t - log p_s), mean over the batch, times T^2: written out by hand."""
    total = 0.0
    for row_t, row_s in zip(teacher.tolist(), student.tolist(), strict=True):
        z_t = sum(math.exp(v / t) for v in row_t)
        z_s = sum(math.exp(v / t) for v in row_s)
        for v_t, v_s in zip(row_t, row_s, strict=True):
            p_t, p_s = math.exp(v_t / t) / z_t, math.exp(v_s / t) / z_s
            total += p_t * (math.log(p_t) - math.log(p_s))
    return total / len(teacher) * t * t


def test_zero_when_student_equals_teacher_without_ce(batch: dict[str, torch.Tensor]) -> None:
    loss = DistillationLoss(alpha=0.5, beta=0.5, gamma=0.0, temperature=3.0)
    total, parts = loss(
        batch["teacher_logits"], batch["teacher_emb"], batch["teacher_logits"],
        batch["teacher_emb"], batch["targets"],
    )  # fmt: skip
    assert abs(total.item()) < 1e-6
    assert abs(parts["embed"]) < 1e-6 and abs(parts["soft"]) < 1e-6
    assert parts["ce"] > 0  # still computed and reported


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_each_term_isolated_by_its_weight(
    batch: dict[str, torch.Tensor], temperature: float
) -> None:
    b = batch
    args = (b["student_logits"], b["student_emb"], b["teacher_logits"], b["teacher_emb"])
    embed, _ = DistillationLoss(1.0, 0.0, 0.0, temperature)(*args, b["targets"])
    soft, _ = DistillationLoss(0.0, 1.0, 0.0, temperature)(*args, b["targets"])
    ce, _ = DistillationLoss(0.0, 0.0, 1.0, temperature)(*args, b["targets"])
    expect_embed = manual_kl(b["teacher_emb"], b["student_emb"], temperature)
    expect_soft = manual_kl(b["teacher_logits"], b["student_logits"], temperature)
    expect_ce = F.cross_entropy(b["student_logits"], b["targets"]).item()
    assert embed.item() == pytest.approx(expect_embed, rel=1e-5)
    assert soft.item() == pytest.approx(expect_soft, rel=1e-5)
    assert ce.item() == pytest.approx(expect_ce, rel=1e-5)
    assert expect_embed > 0.01 and expect_soft > 0.01  # the terms are not trivially zero

    total, parts = DistillationLoss(0.25, 0.25, 0.5, temperature)(*args, b["targets"])
    # float32 loss against a float64 reference: relative error up to ~1e-6 is rounding (a KL
    # term came out 1.08e-6 off on an AMD EPYC CPU), so the tolerance is float32's, not approx's
    # default 1e-6.
    assert parts == pytest.approx({"embed": expect_embed, "soft": expect_soft, "ce": expect_ce},
                                  rel=1e-5)
    weighted = 0.25 * expect_embed + 0.25 * expect_soft + 0.5 * expect_ce
    assert total.item() == pytest.approx(weighted, rel=1e-5)


def test_soft_one_hot_targets_equal_hard_targets(batch: dict[str, torch.Tensor]) -> None:
    b = batch
    args = (b["student_logits"], b["student_emb"], b["teacher_logits"], b["teacher_emb"])
    loss = DistillationLoss()
    hard, _ = loss(*args, b["targets"])
    soft, _ = loss(*args, F.one_hot(b["targets"], 3).float())
    assert soft.item() == pytest.approx(hard.item(), rel=1e-5)  # two float32 paths
    mixed = torch.full((4, 3), 1 / 3)  # mixup-style targets differ from any hard label
    assert loss(*args, mixed)[0].item() != pytest.approx(hard.item(), rel=1e-3)


def test_gradient_reaches_student_not_teacher(batch: dict[str, torch.Tensor]) -> None:
    s_logits = batch["student_logits"].clone().requires_grad_()
    s_emb = batch["student_emb"].clone().requires_grad_()
    t_logits = batch["teacher_logits"].clone().requires_grad_()
    total, _ = DistillationLoss(0.3, 0.3, 0.4, 2.0)(
        s_logits, s_emb, t_logits, batch["teacher_emb"], batch["targets"]
    )
    total.backward()
    assert s_logits.grad is not None and s_logits.grad.abs().sum() > 0
    assert s_emb.grad is not None and s_emb.grad.abs().sum() > 0
    assert t_logits.grad is None  # teacher outputs are constants


def test_teacher_outputs_optional_when_their_weight_is_zero(batch: dict[str, torch.Tensor]) -> None:
    total, parts = DistillationLoss(0.0, 0.0, 1.0)(
        batch["student_logits"], batch["student_emb"], None, None, batch["targets"]
    )
    assert parts["embed"] == parts["soft"] == 0.0
    assert total.item() == pytest.approx(parts["ce"], rel=1e-5)
    with pytest.raises(ValueError, match="teacher_emb is required"):
        DistillationLoss()(
            batch["student_logits"], batch["student_emb"], None, None, batch["targets"]
        )


def test_invalid_weights_and_shapes_are_rejected(batch: dict[str, torch.Tensor]) -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        DistillationLoss(0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match=">= 0"):
        DistillationLoss(-0.1, 0.6, 0.5)
    with pytest.raises(ValueError, match="temperature"):
        DistillationLoss(temperature=0.0)
    with pytest.raises(ValueError, match="Projection"):
        DistillationLoss()(
            batch["student_logits"], torch.randn(4, 5), batch["teacher_logits"],
            batch["teacher_emb"], batch["targets"],
        )  # fmt: skip
