"""Knowledge-distillation loss of the seed paper: embeddings KL + soft-score KL + cross-entropy.

The paper writes the three terms as a product but means a weighted sum with weights on the
simplex (its point: 0.25, 0.25, 0.50). KL terms compare temperature-softened distributions and
are scaled by T^2 so their gradients keep the same magnitude whatever the temperature (Hinton).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn


def _softened_kl(teacher: torch.Tensor, student: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(teacher/T) || softmax(student/T)) * T^2, averaged over the batch."""
    if teacher.shape != student.shape:
        raise ValueError(
            f"teacher {tuple(teacher.shape)} and student {tuple(student.shape)} differ in shape; "
            "project the student embedding with asc_auto.models.cnn.Projection"
        )
    log_p_teacher = F.log_softmax(teacher.detach() / temperature, dim=-1)
    log_p_student = F.log_softmax(student / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")
    return kl * temperature**2


class DistillationLoss(nn.Module):
    """alpha * KL(embeddings) + beta * KL(logits) + gamma * CE(student, targets)."""

    def __init__(
        self, alpha: float = 0.25, beta: float = 0.25, gamma: float = 0.5, temperature: float = 1.0
    ) -> None:
        super().__init__()
        weights = (alpha, beta, gamma)
        if min(weights) < 0 or not math.isclose(sum(weights), 1.0, abs_tol=1e-4):
            raise ValueError(f"alpha, beta, gamma must be >= 0 and sum to 1, got {weights}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.temperature = temperature

    def forward(
        self,
        student_logits: torch.Tensor,
        student_emb: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        teacher_emb: torch.Tensor | None,
        targets: torch.Tensor,
    ) -> tuple[torch.Tensor, Mapping[str, float]]:
        """Return (weighted total, unweighted terms {"embed", "soft", "ce"}, read as floats when
        looked at).

        `targets` are class indices (B,) or class probabilities (B, C), e.g. from mixup.
        Teacher outputs are treated as constants; they may be None when their weight is 0.
        `student_emb` must already have the teacher's embedding size (see Projection).
        """
        zero = student_logits.new_zeros(())
        embed = soft = zero
        if self.alpha > 0:
            if teacher_emb is None:
                raise ValueError("teacher_emb is required when alpha > 0")
            embed = _softened_kl(teacher_emb, student_emb, self.temperature)
        if self.beta > 0:
            if teacher_logits is None:
                raise ValueError("teacher_logits is required when beta > 0")
            soft = _softened_kl(teacher_logits, student_logits, self.temperature)
        ce = F.cross_entropy(student_logits, targets)
        total = self.alpha * embed + self.beta * soft + self.gamma * ce
        return total, LazyFloats({"embed": embed, "soft": soft, "ce": ce})


class LazyFloats(Mapping[str, float]):
    """Scalar tensors read as floats only when looked at: the training loop never looks, and on
    a GPU each read would make the host wait for the device (three times per step)."""

    def __init__(self, terms: dict[str, torch.Tensor]) -> None:
        self._terms = {k: v.detach() for k, v in terms.items()}

    def __getitem__(self, key: str) -> float:
        return float(self._terms[key].item())

    def __iter__(self) -> Iterator[str]:
        return iter(self._terms)

    def __len__(self) -> int:
        return len(self._terms)

    def __repr__(self) -> str:
        return repr(dict(self))
