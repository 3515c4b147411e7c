"""The DCASE size rules of 2020-2024 pinned against the numbers their organisers published.

The baselines are rebuilt here layer by layer from their published descriptions, and counted with
this tool's rules and MACs counters; every expected number below is quoted from the source named
beside it (the rule's `source` field says where each rule was looked up).
"""

from __future__ import annotations

import math

import optuna
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from asc_auto.compress.macs import count_macs, count_macs_torchinfo, rule_macs, window_input
from asc_auto.compress.size import (
    RULES,
    get_rule,
    model_size,
    model_size_from_tensors,
    sized_rule,
)
from asc_auto.features.config import LogMelConfig, frontend_config_from_dict
from asc_auto.models.cnn import CnnStudent
from asc_auto.space import default_space_file, load_space
from asc_auto.techniques.kd import student_config

# ---------------------------------------------------------------- the DCASE2024 Task 1 baseline
# CPJKU/dcase2024_task1_baseline: a simplified CP-Mobile (models/baseline.py) with base_channels
# 32, channels_multiplier 1.8, expansion_rate 2.1, n_blocks (3, 2, 1), strides b2 (1, 1),
# b3 (1, 2), b4 (2, 1); channels made divisible by 8 (MobileNet's make_divisible): stages of
# 32, 56 (32 * 1.8 = 57.6) and 104 (32 * 1.8^2 = 103.7) channels, expansions of 64 (32 * 2.1) and
# 120 (56 * 2.1). Its README: "61,148 parameters and 29,419,156 MACs", counted with NeSsi on a
# [1, 1, 256, 65] input (256 mel bands, one second), "61,148 * 2 B = 122,296 B <= 128 kB".


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int | tuple[int, int] = 1,
             groups: int = 1, relu: bool = True) -> nn.Sequential:
    """torchvision's Conv2dNormActivation: conv without bias, BatchNorm, optional ReLU."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, padding=(kernel - 1) // 2, groups=groups,
                  bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Block(nn.Module):
    """Inverted bottleneck: 1x1 expand, 3x3 depthwise (maybe strided), 1x1 project."""

    def __init__(self, c_in: int, c_out: int, c_exp: int, stride: tuple[int, int]) -> None:
        super().__init__()
        self.block = nn.Sequential(_conv_bn(c_in, c_exp, 1), _conv_bn(c_exp, c_exp, 3, stride,
                                                                      groups=c_exp),
                                   _conv_bn(c_exp, c_out, 1, relu=False))
        self.shortcut: nn.Module | None = None
        if c_in == c_out:
            self.shortcut = (nn.Sequential() if stride == (1, 1)
                             else nn.AvgPool2d(3, stride=stride, padding=1))
        self.after = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return self.after(y + self.shortcut(x) if self.shortcut is not None else y)


class Dcase2024Baseline(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.in_c = nn.Sequential(_conv_bn(1, 8, 3, 2), _conv_bn(8, 32, 3, 2))
        one = (1, 1)
        self.stages = nn.Sequential(
            Block(32, 32, 64, one), Block(32, 32, 64, one), Block(32, 32, 64, (1, 2)),
            Block(32, 56, 64, (2, 1)), Block(56, 56, 120, one),
            Block(56, 104, 120, one),
        )
        self.ff = nn.Sequential(nn.Conv2d(104, 10, 1, bias=False), nn.BatchNorm2d(10),
                                nn.AdaptiveAvgPool2d((1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(self.stages(self.in_c(x))).flatten(1)


def test_dcase2024_baseline_parameters_and_memory_as_published() -> None:
    model = Dcase2024Baseline()
    fp16 = model_size(model, "dcase2024", "fp16")
    assert fp16.params == fp16.counted_params == 61_148
    assert fp16.size_bytes == 122_296 and fp16.fits  # "61,148 * 2 B = 122,296 B <= 128 kB"
    assert not model_size(model, "dcase2024", "fp32").fits  # why the baseline converts to fp16


def test_dcase2024_baseline_macs_as_nessi_counts_them() -> None:
    model = Dcase2024Baseline()
    x = torch.zeros(1, 1, 256, 65)
    assert count_macs_torchinfo(model, x) == 29_419_156
    # per-layer rows of the published table: in_c[0] (conv 72 weights x 128 x 33 positions +
    # BatchNorm's 16 parameters) and stages[0].b3.block[1] (the strided depthwise conv + BN)
    assert count_macs_torchinfo(model.in_c[0], x) == 304_144
    b3_depthwise = model.stages[2].block[1]
    assert count_macs_torchinfo(b3_depthwise, torch.zeros(1, 64, 64, 17)) == 331_904
    # torch's own flop counter sees only the convolutions: fewer than NeSsi counts
    assert count_macs(model, x) < 29_419_156


def test_dcase2024_baseline_is_feasible_under_the_rule_counted_per_second() -> None:
    # A frontend with the baseline's framing (32 kHz, 500-sample hop, 256 bands) gives the
    # published [1, 1, 256, 65] input for one second, whatever clip length features are cached at.
    cfg = LogMelConfig(sample_rate=32000, n_mels=256, win_ms=96.0, hop_ms=15.625,
                       clip_seconds=10.0)
    assert tuple(window_input(cfg, 1.0).shape) == (1, 1, 256, 65)
    rule = get_rule("dcase2024")

    def whole_clip() -> torch.Tensor:
        raise AssertionError("a rule with a 1 s window must not count the cached clip")

    macs = rule_macs(Dcase2024Baseline(), rule, whole_clip, cfg)
    assert macs == 29_419_156 and rule.macs_fit(macs)
    assert not sized_rule("dcase2024", max_mmacs=29.0).macs_fit(macs)


# ----------------------------------------------------------- the DCASE2021 / 2022 Task 1 baseline
# marmoi/dcase2021_task1a_baseline README: conv 16 7x7 - BN - ReLU, conv 16 7x7 - BN - ReLU -
# maxpool 5x5, conv 32 7x7 - BN - ReLU - maxpool (4, 100), flatten, dense 100, dense 10; Keras
# summary 46,246 parameters (BatchNorm's 4 arrays each), and with float16 weights and float32
# BatchNorm "Total 46246 | 46246 | 93,004 bytes (90.82 KB)". The 2022 baseline
# (marmoi/dcase2022_task1_baseline README) is the same network on 1 s (40 x 51): "Total MACs:
# 29,234,920", "Total weight size: 46,512", with per-layer MACs 1,599,360 / 25,589,760 /
# 2,007,040 for the three convolutions.


class Dcase2021Baseline(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 7, padding=3), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 7, padding=3), nn.BatchNorm2d(16), nn.ReLU(),
            nn.MaxPool2d(5), nn.Dropout(0.3),
            nn.Conv2d(16, 32, 7, padding=3), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveMaxPool2d((2, 1)), nn.Dropout(0.3),
        )
        self.dense = nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Dropout(0.3),
                                   nn.Linear(100, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.features(x).flatten(1))


def _trained_statistics(model: nn.Module) -> nn.Module:
    """Fresh BatchNorm biases and running means are zeros; trained ones (as in the published
    model, whose non-zero count is its full count) are not. Weights are kept at least 1e-3 from
    zero, so none rounds to 0 at float16 (about 3 % of random initialisations had one)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.fill_(0.1)
                m.bias.fill_(0.1)
        for p in model.parameters():
            p.copy_(torch.where(p.abs() < 1e-3, torch.full_like(p, 1e-3), p))
    return model


def test_dcase2021_baseline_counts_batchnorm_statistics_as_published() -> None:
    model = _trained_statistics(Dcase2021Baseline())
    report = model_size(model, "dcase2021", "fp32")
    assert report.params == report.nonzero == 46_246  # the Keras summary's "Total params"
    # The published size: float16 weights, BatchNorm kept at float32 (its 256 values x 4 bytes).
    bn = {n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    tensors = {k: (v if k.rsplit(".", 1)[0] in bn else v.half())
               for k, v in model.state_dict().items()}
    mixed = model_size_from_tensors(tensors, "dcase2021", excluded_prefixes=bn)
    assert mixed.size_bytes == 93_004 and mixed.fits
    assert round(mixed.size_bytes / 1024, 2) == 90.82  # as dcase_util prints it
    # the same tensors under rules that do not count running statistics
    assert model_size_from_tensors(tensors, "params", excluded_prefixes=bn).params == 46_118


def test_dcase2021_counts_only_non_zero_values() -> None:
    model = _trained_statistics(Dcase2021Baseline())
    conv = model.features[8]
    prune.l1_unstructured(conv, "weight", amount=0.5)
    report = model_size(model, "dcase2021", "fp16")
    assert report.nonzero == 46_246 - 25_088 // 2
    assert report.size_bytes == 2 * report.nonzero


def test_dcase2022_baseline_convolutions_and_weights_as_published() -> None:
    model = Dcase2021Baseline()
    x = torch.zeros(1, 1, 40, 51)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    shapes = [x.shape, (1, 16, 40, 51), (1, 16, 8, 10)]
    bias_macs = 0
    for conv, shape in zip(convs, shapes, strict=True):
        positions = math.prod(conv(torch.zeros(shape)).shape[2:])
        bias_macs += conv.out_channels * positions
    published_conv_macs = 1_599_360 + 25_589_760 + 2_007_040
    for conv, shape, published in zip(convs, shapes, (1_599_360, 25_589_760, 2_007_040),
                                      strict=True):
        weight_only = nn.Conv2d(conv.in_channels, conv.out_channels, 7, padding=3, bias=False)
        assert count_macs_torchinfo(weight_only, torch.zeros(shape)) == published
    # NeSsi's PyTorch path (torchinfo) adds conv biases, BatchNorm and both dense layers; its
    # TFLite path, which the 2022 figure comes from, counted pooling instead: both under 30 M.
    total = count_macs_torchinfo(model, x)
    assert total == published_conv_macs + bias_macs + 2 * (16 + 16 + 32) + 6_500 + 1_010
    assert abs(total - 29_234_920) / 29_234_920 < 0.002
    assert get_rule("dcase2022").macs_fit(total)
    # 46,512 bytes in the TFLite model: int8 weights and int32 biases (3 extra bytes each)
    report = model_size(model, "dcase2022", "int8")
    n_bias = sum(m.bias.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    non_bn = report.counted_params - 2 * (16 + 16 + 32)
    assert non_bn == 45_990 and non_bn + 3 * n_bias == 46_512
    assert report.size_bytes == 46_118 and report.fits


# ------------------------------------------------------------------------------- the rules table


def test_rules_table() -> None:
    table = {name: (r.limit_bytes, r.max_macs, r.macs_window_seconds, r.count_zeros,
                    r.exclude_batchnorm, r.batchnorm_statistics) for name, r in RULES.items()}
    assert table == {
        "dcase2020": (512_000, None, None, False, True, False),
        "params": (512_000, None, None, True, False, False),
        "dcase2021": (128_000, None, None, False, False, True),
        "dcase2022": (128_000, 30_000_000, 1.0, True, False, False),
        "dcase2023": (128_000, 30_000_000, 1.0, True, False, False),
        "dcase2024": (128_000, 30_000_000, 1.0, True, False, False),
    }
    for rule in RULES.values():
        assert rule.source and rule.description  # each says where it was looked up
        assert (rule.macs_counter == "torchinfo") == (rule.max_macs is not None)
    assert get_rule("dcase2024").limit_kb == 128.0 and get_rule("dcase2024").max_mmacs == 30.0


def test_sized_rule_overrides_budget_and_macs_only_when_given() -> None:
    assert sized_rule("dcase2024") == get_rule("dcase2024")
    tighter = sized_rule("dcase2024", budget_kb=64.0, max_mmacs=10.0)
    assert (tighter.limit_bytes, tighter.max_macs) == (64_000, 10_000_000)
    assert sized_rule("dcase2020", budget_kb=100.0).limit_bytes == 102_400
    added = sized_rule("dcase2020", max_mmacs=5.0)
    assert added.max_macs == 5_000_000 and added.macs_counter == "flop_counter"
    assert added.macs_fit(5_000_000) and not added.macs_fit(5_000_001)


# ----------------------------------------------------------------- the torchinfo counter itself


def test_torchinfo_counter_rules_on_small_layers() -> None:
    x = torch.zeros(1, 2, 6, 5)
    conv = nn.Conv2d(2, 3, 3, padding=1)  # 54 weights + 3 biases, at 30 positions each
    assert count_macs_torchinfo(conv, x) == (54 + 3) * 30
    assert count_macs_torchinfo(nn.BatchNorm2d(2), x) == 4  # weight + bias, once per sample
    assert count_macs_torchinfo(nn.MaxPool2d(2), x) == 0  # no parameters, no MACs
    assert count_macs_torchinfo(nn.Linear(5, 4), x) == 24  # (20 + 4) x batch, not x positions

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, v: torch.Tensor) -> torch.Tensor:
            return self.fc(self.fc(v))

    assert count_macs_torchinfo(Twice(), torch.zeros(1, 4)) == 2 * 20  # each call counts

    pruned = nn.Conv2d(1, 2, 3, bias=False)
    prune.l1_unstructured(pruned, "weight", amount=0.5)  # 9 of 18 weights kept
    assert count_macs_torchinfo(pruned, torch.zeros(1, 1, 5, 5)) == 9 * 9


def test_counter_restores_training_mode_and_removes_its_hooks() -> None:
    model = Dcase2021Baseline().train()
    count_macs_torchinfo(model, torch.zeros(1, 1, 40, 51))
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


def test_window_input_follows_the_frontend_framing() -> None:
    kd = LogMelConfig(n_mels=64, win_ms=25.0, hop_ms=10.0, clip_seconds=10.0)
    assert tuple(window_input(kd, 1.0).shape) == (1, 1, 64, 101)
    assert tuple(window_input(kd, 10.0).shape) == (1, *kd.feature_shape)


@pytest.mark.parametrize("name", ["dcase2020", "params", "dcase2021"])
def test_rules_without_window_count_the_cached_clip(name: str) -> None:
    clip = torch.zeros(1, 1, 40, 51)
    rule = get_rule(name)
    model = Dcase2021Baseline()
    assert rule_macs(model, rule, lambda: clip, None) == count_macs(model, clip)


# --------------------------------------------------- the shipped space for the 128 KB rules

SMALL_SPACE = default_space_file("kd-small")


def _sized(config: dict, space_features: dict, rule_name: str) -> tuple[int, int, bool]:
    """(parameters, MACs per the rule's window, feasible) of the kd student a config describes."""
    features = frontend_config_from_dict(space_features, "kd-small.toml")
    model = CnnStudent(student_config(config, in_channels=1, n_classes=3))
    rule = get_rule(rule_name)
    size = model_size(model, rule, config["precision"])
    macs = rule_macs(model, rule, lambda: torch.zeros(1, *features.feature_shape), features)
    return size.params, macs, size.fits and rule.macs_fit(macs)


def test_small_kd_space_reaches_the_limits_of_the_128k_rules() -> None:
    space = load_space(SMALL_SPACE, "kd", {"teacher"}).with_clip_seconds(lambda: 10.0)
    reference = {**space.paper}
    params, macs, feasible = _sized(reference, space.features, "dcase2024")
    assert (params, round(macs / 1e6, 1), feasible) == (93_283, 19.8, True)  # as its comment says

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    verdicts = {"dcase2021": [], "dcase2024": []}
    for _ in range(60):
        config = space.suggest(study.ask())
        for rule, seen in verdicts.items():
            seen.append(_sized(config, space.features, rule)[2])
    for rule, seen in verdicts.items():
        # the space is neither all over the limits nor all under them: both decide
        assert 0.25 < sum(seen) / len(seen) < 0.95, (rule, sum(seen))
    # the default kd space's reference point (the seed paper's student) is over these limits
    default = load_space(SMALL_SPACE.with_name("kd.toml"), "kd", {"teacher"}).with_clip_seconds(
        lambda: 10.0)  # "auto" on TAU's 10 s clips
    assert not _sized(dict(default.paper), default.features, "dcase2024")[2]
