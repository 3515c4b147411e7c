"""Fault corpus: a diverged training fails with its reason, never scores (issue 8 item 7).

A NaN/inf loss raises TrainingDiverged naming the epoch (and the step where reading it is free:
the CPU), as do NaN/inf outputs on the validation clips; a search records such a trial FAIL with
the reason in its `fail_reason` attribute, never COMPLETE with a meaningless accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState

import asc_auto.techniques.kd as kd_mod
import asc_auto.train as train_mod
from asc_auto.errors import TrainingDiverged
from asc_auto.search import SearchOptions, run_search
from asc_auto.train import TrainConfig, evaluate, train_model

SPACE = Path(__file__).parents[1] / "spaces" / "kd.toml"
CFG = TrainConfig(epochs=2, batch_size=4, mixup_alpha=0.0, freq_masks=0, time_masks=0,
                  device="cpu")


class Pair(torch.nn.Module):
    """A tiny model with the (logits, embedding) interface of every model here."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(x)
        return out, out


def _poisoned_at(call: int):  # type: ignore[no-untyped-def]
    """Cross-entropy whose `call`-th evaluation (1-based) is NaN."""
    calls = {"n": 0}

    def loss(outputs: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor,
             extras: Sequence[torch.Tensor]) -> torch.Tensor:
        calls["n"] += 1
        value = torch.nn.functional.cross_entropy(outputs[0], targets)
        return value * float("nan") if calls["n"] == call else value

    return loss


DATA = (torch.randn(16, 1, 2, 2), torch.arange(16) % 2)  # 4 steps per epoch at batch size 4


def test_a_nan_loss_stops_training_at_that_step_on_the_cpu() -> None:
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 3 \(nan\)") as err:
        train_model(Pair(), *DATA, CFG, 2, loss_fn=_poisoned_at(3))
    assert "lower learning rate than 0.001" in str(err.value)


def test_where_reading_the_loss_costs_a_sync_it_is_checked_once_per_epoch(monkeypatch) -> None:
    """The CUDA path, run on the CPU: no per-step read, the epoch's count read at its end."""
    monkeypatch.setattr(train_mod, "_checks_each_step", lambda device: False)
    steps: list[int] = []
    epochs: list[int] = []
    # the 6th loss (epoch 2, step 2) is NaN; its gradient poisons the weights, so steps 3 and 4
    # are NaN too
    with pytest.raises(TrainingDiverged, match=r"epoch 2, 3 of 4 steps") as err:
        train_model(Pair(), *DATA, CFG, 2, val=DATA, loss_fn=_poisoned_at(6),
                    on_step=lambda done, total: steps.append(done),
                    on_epoch=lambda epoch, acc: epochs.append(epoch))
    assert steps == list(range(1, 9))  # epoch 2 ran to its end: no step was cut short
    assert epochs == [0]  # ... and was never scored
    assert "step 6" not in str(err.value)


def test_nan_outputs_on_the_validation_clips_are_not_scored() -> None:
    model = Pair()
    with torch.no_grad():
        model.net[1].weight.fill_(float("inf"))  # inf - inf: NaN logits
        model.net[1].bias.fill_(float("-inf"))
    with pytest.raises(TrainingDiverged, match="outputs are NaN or infinite"):
        evaluate(model, *DATA, n_classes=2, device="cpu")


def test_a_diverged_trial_is_failed_with_its_reason(tiny_dataset: Path, tmp_path: Path,
                                                    monkeypatch) -> None:
    real = kd_mod.DistillationLoss

    class Diverging(real):  # type: ignore[misc, valid-type]
        def forward(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            total, parts = super().forward(*args, **kwargs)
            return total * float("inf"), parts

    monkeypatch.setattr(kd_mod, "DistillationLoss", Diverging)
    study = run_search(SearchOptions(technique="kd", data=tiny_dataset, space=SPACE, trials=1,
                                     epochs=1, storage=f"sqlite:///{tmp_path / 'd.db'}",
                                     home=tmp_path, progress=False), status=lambda m: None)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL  # not COMPLETE with a meaningless accuracy
    assert "TrainingDiverged: training diverged" in trial.user_attrs["fail_reason"]
    assert "epoch 1, step" in trial.user_attrs["fail_reason"]
