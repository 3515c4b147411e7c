"""Distillation from stored teacher logits for the techniques without a teacher of their own.

The seed paper pretrained AclNet on AudioSet; on a small dataset a raw-waveform AclNet started
from nothing lands below a log-mel CNN of the same size. A stronger model's outputs, computed once
and stored (`--teacher-logits FILE`, repeatable: an ensemble; `asc-auto predict --logits` writes
them from any exported model), can teach it what the labels alone do not: which classes a clip
resembles. `int8` and `lt` then train with

    loss = w * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - w) * CE(student, y)

(Hinton's soft targets; the kd technique's beta and gamma terms without its embedding term, which
needs the teacher's embedding space). `w` (`distill_weight`) and `T` (`distill_temperature`) are
searched: a search given such files gets both params unless its space file defines them, and its
paper trial keeps the paper's training (w = 0), so the pick replaces the hand configuration only
by beating it; the portfolio's entries start at w = 0.5, T = 4 (`PORTFOLIO_START`). Each
training crop is taught its whole clip's teacher outputs (mixed by mixup as the clips are).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from asc_auto.compress.kd import DistillationLoss
from asc_auto.context import TrialContext
from asc_auto.space import ParamSpec, SearchSpace
from asc_auto.teacher import TeacherOutputs, average_teachers, logits_teacher
from asc_auto.train import LossFn
from asc_auto.transfer import Sources

WEIGHT = "distill_weight"
TEMPERATURE = "distill_temperature"
# The ranges a search gets when its space file leaves them out. The weight stops short of 1 so
# the labels always take part (a teacher that is wrong on a clip is not copied whole); the
# temperature spans the kd space's: at T = 1 the stored outputs of a model that trained on these
# clips are nearly one-hot (median top probability 0.97 on office16, docs/BENCHMARKS.md "Design
# measurements: transfer learning").
PARAMS = (ParamSpec(WEIGHT, "float", low=0.0, high=0.9),
          ParamSpec(TEMPERATURE, "float", low=1.0, high=8.0, log=True))
PAPER = {WEIGHT: 0.0, TEMPERATURE: 1.0}  # the paper trained without a teacher
# Where a [[portfolio]] entry (measured without a teacher, so naming neither param) starts: the
# usual soft-target setting (Hinton et al.'s; weight 0.5, T 4 is the common default), rather
# than a random draw. On office16 the 12-trial int8 pick's network at 40 epochs took 86.9 +- 1.3
# % from the baseline CNN's outputs at this setting, 84.8 +- 1.5 % at weight 0.8 / T 2 and 82.3
# +- 1.8 % alone (INT8 evaluate, 3 seeds, docs/BENCHMARKS.md), while two searches' random draws
# near T 1 taught little. The search still tunes both from there (and may not pick it: in a
# 6-trial office16 search 3-fold validation put this entry 2.6 points under a design row that
# then scored 75.3 % on evaluate, inside the noise of 154 clips).
PORTFOLIO_START = {WEIGHT: 0.5, TEMPERATURE: 4.0}
RANGES = {WEIGHT: (0.0, 1.0), TEMPERATURE: (1e-3, 1e3)}  # what a space file may set


def with_distill_params(space: SearchSpace, sources: Sources) -> SearchSpace:
    """The space with `distill_weight` and `distill_temperature` searched when the search has
    stored teacher logits (each kept as the space file defines it, if it does); unchanged
    without any, so studies and digests made without a teacher stay as they were."""
    if not sources.teacher_logits:
        return space
    have = {p.name for p in space.params}
    added = tuple(p for p in PARAMS if p.name not in have)
    paper = {**{k: v for k, v in PAPER.items() if k not in space.paper}, **space.paper}
    start = {p.name: PORTFOLIO_START[p.name] for p in added}
    portfolio = tuple(dataclasses.replace(e, point={**start, **e.point}) for e in space.portfolio)
    return dataclasses.replace(space, params=space.params + added, paper=paper,
                               portfolio=portfolio)


_TEACHERS: dict[tuple[str, tuple[str, ...]], TeacherOutputs] = {}


def stored_teacher(ctx: TrialContext) -> TeacherOutputs | None:
    """The context's --teacher-logits files as one teacher (an ensemble when several), read
    and checked once per process and split; None without any."""
    refs = ctx.sources.teacher_logits
    if not refs:
        return None
    key = (ctx.split_digest(), tuple(r.sha256 for r in refs))
    if key not in _TEACHERS:
        members = [logits_teacher(ctx, ref) for ref in refs]
        _TEACHERS[key] = members[0] if len(members) == 1 else average_teachers(members, ctx)
    return _TEACHERS[key]


@dataclasses.dataclass(frozen=True)
class Distillation:
    """What one training distils: the teacher's logits for its training clips (in their order),
    the soft-target weight and the temperature."""

    logits: torch.Tensor  # (N, n_classes)
    weight: float
    temperature: float

    def loss_fn(self) -> LossFn:
        """A `train_model` loss over (logits, embedding) outputs with the teacher's logits as
        the batch's extra."""
        loss = DistillationLoss(0.0, self.weight, 1.0 - self.weight, self.temperature)

        def fn(outputs: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor,
               extras: Sequence[torch.Tensor]) -> torch.Tensor:
            logits = outputs[0].float()  # also as the embedding: weight 0, never read
            return loss(logits, logits, extras[0].float(), None, targets)[0]

        return fn


def distillation(config: dict[str, Any], ctx: TrialContext) -> Distillation | None:
    """The trial's distillation, or None: no stored teacher, or a weight of 0 (the paper's
    training, exactly as without a teacher)."""
    weight = float(config.get(WEIGHT, 0.0))
    teacher = stored_teacher(ctx)
    if teacher is None or weight <= 0:
        return None
    logits, _ = teacher.select(ctx.train_files)
    return Distillation(logits, weight, float(config.get(TEMPERATURE, 1.0)))
