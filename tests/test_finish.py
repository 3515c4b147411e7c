"""The finish (`finish_epochs`): every technique ends its last training with that many epochs at
a hundredth of the peak rate, unmixed, BatchNorm frozen (train.finish_config), on the same step
scale as its training; a lottery ticket keeps its pruned weights at zero through it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from asc_auto.errors import ConfigError
from asc_auto.search import SearchOptions, prepare_search
from asc_auto.space import load_space
from asc_auto.techniques import TECHNIQUES, aclnet_common, base
from asc_auto.train import FINISH_LR_FACTOR, TrainConfig, finish_config

SPACES = Path(__file__).parent / "spaces"
FINISH = 2


def test_finish_config_is_the_training_s_at_a_hundredth_unmixed() -> None:
    cfg = TrainConfig(epochs=30, min_clips_seen=50_000, lr=4e-3, mixup_alpha=0.3, seed=7)
    tail = finish_config(cfg, 3)
    assert (tail.epochs, tail.min_clips_seen, tail.mixup_alpha) == (3, 0, 0.0)
    assert tail.lr == pytest.approx(4e-3 * FINISH_LR_FACTOR) and FINISH_LR_FACTOR == 0.01
    assert (tail.batch_size, tail.seed, tail.weight_decay) == (cfg.batch_size, 7, cfg.weight_decay)


def bn_stats(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t.detach().clone() for m in model.modules()
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            for t in (m.running_mean, m.running_var)]


@pytest.mark.parametrize("name", sorted(TECHNIQUES))
def test_every_technique_finishes_its_last_training(name: str, tiny_dataset: Path,
                                                    tmp_path: Path, monkeypatch) -> None:
    """With `finish_epochs` = 2 the fit's last `train_model` call is the finish: 2 epochs at a
    hundredth of the training's rate, no mixup, BatchNorm frozen (its statistics kept), the
    weights moved; the steps run on one scale to its end, and the epochs the pruner sees are
    the training's only. Without it (the spaces as shipped) no such call is made."""
    calls: list[dict[str, Any]] = []

    def spy(real):  # type: ignore[no-untyped-def]
        def recording(model, x, y, cfg, *args, **kwargs):  # type: ignore[no-untyped-def]
            frozen = kwargs.get("frozen_batchnorm", False)
            before = ([p.detach().clone() for p in model.parameters()], bn_stats(model))
            result = real(model, x, y, cfg, *args, **kwargs)
            calls.append({"epochs": cfg.epochs, "lr": cfg.lr, "mixup": cfg.mixup_alpha,
                          "frozen": frozen, "val": kwargs.get("val") is not None,
                          "moved": any(not torch.equal(a, b) for a, b in
                                       zip(before[0], model.parameters(), strict=True)),
                          "bn_kept": all(torch.equal(a, b) for a, b in
                                         zip(before[1], bn_stats(model), strict=True))})
            return result
        return recording

    monkeypatch.setattr(base, "train_model", spy(base.train_model))
    monkeypatch.setattr(aclnet_common, "train_model", spy(aclnet_common.train_model))
    setup = prepare_search(SearchOptions(technique=name, data=tiny_dataset,
                                         space=SPACES / f"{name}.toml", home=tmp_path,
                                         progress=False, epochs=2), status=lambda m: None)
    tech, ctx = setup.technique, setup.context
    tech.prepare(ctx)
    calls.clear()  # a teacher trained by prepare is not the fit's
    config = {**setup.space.paper, "finish_epochs": FINISH}
    if name == "lt":
        config["sparsity"] = 0.5  # a ticket: dense training, then the ticket's
    assert tech.fine_tune_epochs(config) == FINISH + int(config.get("qat_epochs", 0))
    cand = tech.build(config, ctx)
    trainings = tech.trainings(config, cand)
    steps: list[tuple[int, int]] = []
    epochs: list[int] = []
    outcome = tech.fit(cand, config, ctx, on_epoch=lambda e, acc: epochs.append(e),
                       on_step=lambda done, total: steps.append((done, total)))

    assert len(calls) == trainings + 1
    *trained, finish = calls
    assert [c["frozen"] for c in trained] == [False] * trainings
    assert finish["frozen"] and finish["epochs"] == FINISH and finish["mixup"] == 0.0
    assert finish["lr"] == pytest.approx(float(config["lr"]) * FINISH_LR_FACTOR)
    assert finish["moved"] and finish["bn_kept"] and not finish["val"]
    assert epochs == list(range(trainings * ctx.train_cfg.epochs))
    assert len(outcome.train.val_history) == ctx.train_cfg.epochs
    total = steps[0][1]
    assert {t for _, t in steps} == {total}
    assert total % (trainings * ctx.train_cfg.epochs + FINISH) == 0
    assert [done for done, _ in steps] == list(range(1, total + 1))


def test_a_ticket_s_pruned_weights_stay_zero_through_the_finish(tiny_dataset: Path,
                                                                 tmp_path: Path) -> None:
    """The finish trains the ticket before its masks are made permanent: the weights pruning
    zeroed are zero in the deployed model (trained after `make_permanent`, they would move)."""
    from asc_auto.compress import pruning

    setup = prepare_search(SearchOptions(technique="lt", data=tiny_dataset,
                                         space=SPACES / "lt.toml", home=tmp_path,
                                         progress=False, epochs=1), status=lambda m: None)
    tech, ctx = setup.technique, setup.context
    config = {**setup.space.paper, "finish_epochs": 1, "sparsity": 0.5, "precision": "fp32"}
    cand = tech.build(config, ctx)
    zeros = int(cand.info["pruned_weights"])
    assert zeros > 0
    tech.fit(cand, config, ctx)
    net = cand.model.model
    left = sum(int((m.weight == 0).sum())
               for m, _ in pruning.prunable_weights(net, [net.classifier]))
    assert left >= zeros


def test_a_space_with_a_negative_finish_is_refused(tmp_path: Path) -> None:
    text = (SPACES / "baseline.toml").read_text()
    bad = tmp_path / "baseline.toml"
    bad.write_text(text.replace("[paper]", "[params.finish_epochs]\ntype = \"int\"\nlow = -1\n"
                                "high = 3\n\n[paper]\nfinish_epochs = 0", 1))
    with pytest.raises(ConfigError, match="finish_epochs"):
        load_space(bad, "baseline", set(), ranges=TECHNIQUES["baseline"].ranges)
