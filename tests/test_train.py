"""The training loop: learns a separable task, is reproducible on CPU, and scores correctly."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from asc_auto.errors import ConfigError
from asc_auto.models.cnn import CnnStudent, StudentConfig
from asc_auto.train import (
    CPU_BF16_ENV,
    TrainConfig,
    default_amp,
    freeze_batchnorm,
    score,
    train_config,
    train_model,
)


def _task(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes told apart by which third of the mel axis carries energy."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = 0.3 * torch.randn(n, 1, 12, 16, generator=g)
    for c in range(3):
        x[y == c, :, 4 * c:4 * c + 4, :] += 1.5
    return x, y


def _model(seed: int = 0) -> CnnStudent:
    torch.manual_seed(seed)
    return CnnStudent(StudentConfig(channels=(4, 8, 8), n_classes=3))


CFG = TrainConfig(epochs=4, batch_size=16, lr=1e-2, mixup_alpha=0.2, freq_width=2, time_width=2,
                  device="cpu")


def test_learns_a_separable_task_and_reports_every_epoch() -> None:
    x, y = _task()
    xv, yv = _task(48, seed=1)
    seen: list[tuple[int, float]] = []
    res = train_model(_model(), x, y, CFG, 3, val=(xv, yv),
                      on_epoch=lambda e, a: seen.append((e, a)))
    assert [e for e, _ in seen] == [0, 1, 2, 3]
    assert res.val_history == [a for _, a in seen]
    assert res.val_history[-1] >= 0.9
    assert res.clips_seen == 4 * 96 and res.clips_per_second > 0


def _bn_state(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
            for t in (m.running_mean, m.running_var)]


def test_frozen_batchnorm_keeps_the_running_statistics_while_the_weights_learn() -> None:
    """Fine-tuning a trained network (int8's QAT) must not re-estimate its BatchNorm statistics
    from a few augmented batches: frozen, they stay as they were; unfrozen, they move."""
    x, y = _task()
    trained = _model()
    train_model(trained, x, y, CFG, 3)
    before = _bn_state(trained)
    weights = [p.detach().clone() for p in trained.parameters()]
    frozen = copy.deepcopy(trained)
    free = copy.deepcopy(trained)
    shifted = (x * 3.0 + 1.0, y)  # other statistics than the ones the network trained on
    train_model(frozen, *shifted, CFG, 3, frozen_batchnorm=True)
    train_model(free, *shifted, CFG, 3)
    assert all(torch.equal(a, b) for a, b in zip(before, _bn_state(frozen), strict=True))
    assert not all(torch.allclose(a, b) for a, b in zip(before, _bn_state(free), strict=True))
    assert not all(torch.equal(a, b.detach())
                   for a, b in zip(weights, frozen.parameters(), strict=True))
    model = _model()
    model.train()
    freeze_batchnorm(model)
    modes = {type(m).__name__: m.training for m in model.modules()}
    assert modes["BatchNorm2d"] is False and modes["Conv2d"] is True


def test_same_seed_same_result_on_cpu_and_other_seed_differs() -> None:
    x, y = _task()
    runs = []
    for seed in (0, 0, 1):
        m = _model(0)
        train_model(m, x, y, TrainConfig(**{**CFG.__dict__, "seed": seed}), 3)
        runs.append(torch.cat([p.detach().flatten() for p in m.parameters()]))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


def _strides(shape: torch.Size, fmt: torch.memory_format) -> tuple[int, ...]:
    return torch.empty(shape, memory_format=fmt).stride()


def test_a_waveform_model_trains_with_channels_last_2d_weights_reproducibly() -> None:
    """AclNet takes (B, 1, samples) but runs 2-D convs: those weights go channels_last (faster on
    CPU), its 1-D convs keep their layout, and a seed still gives the same weights."""
    from asc_auto.models.aclnet import AclNet, AclNetConfig

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 1, 1600, generator=g), torch.arange(24) % 3
    cfg = AclNetConfig(width=0.25, llf_channels=(4, 8), depth=2, n_classes=3, sample_rate=1600)
    cfg_train = TrainConfig(epochs=2, batch_size=8, mixup_alpha=0.0, freq_masks=0, time_masks=0,
                            device="cpu")
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = AclNet(cfg)
        train_model(model, x, y, cfg_train, 3)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        conv2d = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        conv1d = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
        # strides, not is_contiguous(): 1x1 and one-input-channel weights pass both layouts' test
        assert conv2d and all(w.stride() == _strides(w.shape, torch.channels_last) for w in conv2d)
        assert conv1d and all(w.stride() == _strides(w.shape, torch.contiguous_format)
                              for w in conv1d)
    assert torch.equal(weights[0], weights[1])


@pytest.mark.parametrize(("setting", "expected"), [
    (None, False), ("", False), ("0", False), ("off", False), ("1", True), ("on", True),
    ("YES", True)])
def test_cpu_bf16_autocast_only_when_asked(monkeypatch: pytest.MonkeyPatch,
                                           setting: str | None, expected: bool) -> None:
    if setting is None:
        monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    else:
        monkeypatch.setenv(CPU_BF16_ENV, setting)
    assert default_amp(torch.device("cpu")) is expected
    assert default_amp(torch.device("cuda")) is True  # a GPU always, as before
    assert default_amp(torch.device("meta")) is False


@pytest.mark.parametrize("setting", ["0", "1"])
def test_train_model_runs_its_convolutions_in_the_dtype_the_setting_says(
        monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    """ASC_AUTO_CPU_BF16=1 trains under bf16 autocast (conv outputs bf16), =0 in float32; the
    weights stay float32 either way, and the model learns the task in both."""
    monkeypatch.setenv(CPU_BF16_ENV, setting)
    x, y = _task()
    model = _model()
    seen: set[torch.dtype] = set()
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_hook(lambda m, i, o: seen.add(o.dtype) if m.training else None)
    res = train_model(model, x, y, CFG, 3, val=_task(48, seed=1))
    handle.remove()
    assert seen == ({torch.bfloat16} if setting == "1" else {torch.float32})
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert res.val_history[-1] >= 0.9


def test_score_accuracy_log_loss_and_per_class() -> None:
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    y = np.array([0, 1, 1, 2])
    r = score(probs, y, 3)
    assert r.accuracy == 0.75
    assert r.log_loss == pytest.approx(-(math.log(0.8) + math.log(0.7) + math.log(0.25)
                                         + math.log(0.8)) / 4)
    assert r.per_class == (1.0, 0.5, 1.0)
    assert r.per_class_log_loss == pytest.approx(
        (-math.log(0.8), -(math.log(0.7) + math.log(0.25)) / 2, -math.log(0.8)))


def test_train_config_rejects_unknown_keys_and_wrong_types() -> None:
    assert train_config({"epochs": 3, "lr": 1}).lr == 1.0
    with pytest.raises(ConfigError, match=r"train\.epoch'"):
        train_config({"epoch": 3})
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        train_config({"epochs": "3"})
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        train_config({"epochs": True})


@pytest.mark.parametrize("n", [2, 5, 9, 35])
def test_very_short_runs_train_without_scheduler_errors(n: int) -> None:
    x, y = _task(n)
    res = train_model(_model(), x, y, TrainConfig(epochs=1, batch_size=8, device="cpu"), 3)
    assert res.clips_seen >= n - 1


def test_a_budget_in_clips_seen_raises_the_epochs_of_small_datasets() -> None:
    from asc_auto.train import epochs_for

    assert epochs_for(12, 0, 150) == 12  # off
    assert epochs_for(12, 24_000, 150) == 160  # 150 clips: 160 epochs to see 24,000
    assert epochs_for(12, 24_000, 9_185) == 12  # TAU-sized: the epochs already see more
    assert epochs_for(3, 10, 4) == 3


def test_search_derives_its_epochs_from_min_clips_seen(tiny_dataset, tmp_path) -> None:
    import math
    from pathlib import Path

    from asc_auto.search import SearchOptions, prepare_search

    space = Path(__file__).parent / "spaces" / "kd.toml"
    edited = tmp_path / "kd.toml"
    edited.write_text(space.read_text().replace("[train]\n", "[train]\nmin_clips_seen = 100\n", 1))
    setup = prepare_search(SearchOptions(technique="kd", data=tiny_dataset, space=edited,
                                         home=tmp_path, progress=False), status=lambda m: None)
    n_train = len(setup.context.train_files)
    assert setup.context.train_cfg.epochs == max(2, math.ceil(100 / n_train)) > 2
    explicit = prepare_search(SearchOptions(technique="kd", data=tiny_dataset, space=edited,
                                            home=tmp_path, progress=False, epochs=1),
                              status=lambda m: None)
    assert explicit.context.train_cfg.epochs == 1  # --epochs wins
