"""AclNet, its segment averaging, the raw-waveform cache and the shared waveform augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asc_auto.data.tau import load_dataset
from asc_auto.features.cache import build_features
from asc_auto.features.config import WaveformConfig, frontend_config_from_dict
from asc_auto.features.frontends import load_waveform
from asc_auto.models.aclnet import PAPER_PARAMS, AclNet, AclNetConfig, Log1p, SegmentAverage
from asc_auto.models.registry import create_model
from asc_auto.techniques.aclnet_common import AugmentSettings, WaveAugment, content_lengths


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_paper_configuration_is_within_11_percent_of_the_papers_count() -> None:
    count = n_params(create_model("aclnet"))  # width 0.5, LLF 16/128, 7 separable layers, 3 classes
    assert count == 283_443
    assert abs(count - PAPER_PARAMS) / PAPER_PARAMS < 0.11  # 317,038 in the seed paper
    narrower, deeper = AclNet(AclNetConfig(width=0.25)), AclNet(AclNetConfig(depth=8))
    assert n_params(narrower) < count < n_params(deeper)


def test_llf_gives_a_10_ms_frame_rate_and_outputs_logits_and_a_512_embedding() -> None:
    model = AclNet().eval()
    x = torch.randn(2, 1, 16000) * 0.1
    assert model.llf(x).shape == (2, 128, 100)  # 100 frames per second of 16 kHz audio
    logits, emb = model(x)
    assert logits.shape == (2, 3) and emb.shape == (2, 512)


def test_segment_average_averages_probabilities_of_1s_segments() -> None:
    torch.manual_seed(0)
    net = AclNet(AclNetConfig(width=0.125, llf_channels=(4, 8), depth=2, sample_rate=8000)).eval()
    wrapped = SegmentAverage(net, 8000)
    clip = torch.randn(2, 1, 3 * 8000 + 100) * 0.1  # a 100-sample tail is dropped
    with torch.no_grad():
        logits, emb = wrapped(clip)
        probs = [torch.softmax(net(clip[..., i * 8000:(i + 1) * 8000])[0], 1) for i in range(3)]
    assert torch.allclose(torch.softmax(logits, 1), sum(probs) / 3, atol=1e-5)
    assert emb.shape == (2, net.embed_dim)


def test_waveform_cache_stores_16khz_mono_float16(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = frontend_config_from_dict({"kind": "waveform", "clip_seconds": 1.0}, "t.toml")
    assert isinstance(cfg, WaveformConfig) and cfg.feature_shape == (1, 16000)
    ds = load_dataset(tiny_dataset)
    feats = build_features(ds, cfg, tmp_path, progress=False)
    assert feats.x.dtype == np.float16 and feats.x.shape == (48, 1, 16000)
    first = ds.all_clips()[0]
    direct = load_waveform(ds.path(first), cfg).numpy()
    cached = np.asarray(feats.x[feats.index[first.filename]], dtype=np.float32)
    assert np.abs(cached - direct).max() <= np.abs(direct).max() * 2.0**-11 + 1e-7
    assert np.abs(cached).max() <= 1.0


def test_wave_augment_crops_scales_and_is_seeded() -> None:
    x = torch.linspace(-0.5, 0.5, 4 * 1000).reshape(4, 1, 1000)
    aug = WaveAugment(AugmentSettings(gain_db=6.0, noise_prob=0.0), crop=250)
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    assert a.shape == (4, 1, 250) and torch.equal(a, b)
    step = x[0, 0, 1] - x[0, 0, 0]
    for crop in a:  # a linear ramp stays a ramp: its slope is the random gain, within +-6 dB
        gain = float((crop[0, 1:] - crop[0, :-1]).mean() / step)
        assert 10 ** (-6 / 20) - 1e-3 <= gain <= 10 ** (6 / 20) + 1e-3
    noisy = WaveAugment(AugmentSettings(gain_db=0.0, noise_prob=1.0, snr_db=20.0), crop=1000)
    out = noisy(x, torch.Generator().manual_seed(2))
    snr = 10 * torch.log10(x.pow(2).mean((1, 2)) / (out - x).pow(2).mean((1, 2)))
    assert (snr >= 19.0).all() and (snr <= 51.0).all()  # SNR drawn in [20, 50] dB


def test_content_lengths_end_at_the_last_recorded_sample() -> None:
    x = torch.zeros(3, 2, 100)
    x[0, 0, :40] = 0.1  # 40 samples of sound, then padding
    x[1, 1, 70] = -0.2  # the other channel counts too, and so does a sample after a gap
    x[1, 0, 5] = 0.3
    # clip 2 is all zeros
    assert content_lengths(x).tolist() == [40, 71, 0]


def test_skip_padding_crops_overlap_the_recorded_part_and_keep_full_clips_unchanged() -> None:
    x = torch.zeros(64, 1, 1000)
    x[:, :, :300] = torch.linspace(0.1, 0.4, 300)  # 300 samples of sound, 700 of padding
    x[:32, :, 300:] = 0.5  # the first half: full-length clips (no padding)
    plain = AugmentSettings(gain_db=0.0, noise_prob=0.0, skip_padding=False)
    skip = AugmentSettings(gain_db=0.0, noise_prob=0.0, skip_padding=True)
    a = WaveAugment(skip, crop=200)(x, torch.Generator().manual_seed(3))
    b = WaveAugment(plain, crop=200)(x, torch.Generator().manual_seed(3))
    assert torch.equal(a[:32], b[:32])  # no padding: exactly the crops drawn before
    assert (a[32:, 0, 0] > 0).all()  # every crop of a padded clip starts inside its sound
    assert (b[32:, 0, 0] == 0).sum() > 16  # without the option, most start in the padding
    short = WaveAugment(skip, crop=400)(x[32:], torch.Generator().manual_seed(4))
    sound = x[32, 0, :300]
    offsets = set()
    for crop in short[:, 0]:  # sound shorter than the crop: all of it, at a random offset
        first = int(crop.ne(0).int().argmax())
        assert torch.equal(crop[first:first + 300], sound) and crop.ne(0).sum() == 300
        offsets.add(first)
    assert len(offsets) > 10 and max(offsets) <= 100


def test_skip_silent_segment_average_leaves_padding_segments_out() -> None:
    torch.manual_seed(0)
    net = AclNet(AclNetConfig(width=0.125, llf_channels=(4, 8), depth=2, sample_rate=8000)).eval()
    with torch.no_grad():  # decisive outputs, so sound and silence get different probabilities
        net.classifier.weight.mul_(300)
    clip = torch.zeros(2, 1, 3 * 8000)
    clip[0, :, :8000] = torch.randn(8000) * 0.1  # one segment of sound, two of padding
    wrapped, plain = SegmentAverage(net, 8000, skip_silent=True), SegmentAverage(net, 8000)
    with torch.no_grad():
        first = torch.softmax(net(clip[:1, :, :8000])[0], 1)
        logits, _ = wrapped(clip)
        zeros = torch.softmax(net(clip[1:, :, :8000])[0], 1)
        plain_probs = torch.softmax(plain(clip)[0], 1)
    assert torch.allclose(torch.softmax(logits[:1], 1), first, atol=1e-5)
    assert not torch.allclose(plain_probs[:1], first, atol=1e-3)  # padding outvotes without it
    assert torch.allclose(torch.softmax(logits[1:], 1), zeros, atol=1e-5)  # all silent: all
    assert wrapped.wrap(net).skip_silent and wrapped.wrap(net).segment_samples == 8000


def test_calibration_crops_skip_all_zero_padding_segments() -> None:
    from types import SimpleNamespace

    from asc_auto.techniques.aclnet_common import calibration_crops

    x = torch.zeros(6, 1, 3 * 16000, dtype=torch.float16)
    x[:, :, :16000] = 0.25  # each clip: 1 s of sound, 2 s of padding
    x[:, :, 16000] = 0.5  # a segment with one recorded sample is sound too

    def ctx(skip: bool) -> SimpleNamespace:
        space = SimpleNamespace(file="int8.toml", features={"kind": "waveform"},
                                tables={"augment": {"skip_padding": skip}})
        return SimpleNamespace(space=space, features=SimpleNamespace(x=x), train_xy=(x, None))

    kept = torch.cat(calibration_crops(ctx(True), 9, batch_size=4))
    assert kept.shape == (9, 1, 16000) and kept.dtype == torch.float32
    assert (kept.abs().amax(dim=(1, 2)) > 0).all()  # 9 crops of sound from 5 clips
    plain = torch.cat(calibration_crops(ctx(False), 9, batch_size=4))
    assert (plain.abs().amax(dim=(1, 2)) == 0).sum() == 3  # every third segment is padding


def test_a_searched_crops_param_decides_over_the_augment_table() -> None:
    from types import SimpleNamespace

    from asc_auto.errors import ConfigError
    from asc_auto.techniques.aclnet_common import skips_padding

    def ctx(table: dict) -> SimpleNamespace:
        return SimpleNamespace(space=SimpleNamespace(file="int8.toml", tables={"augment": table}))

    assert skips_padding({}, ctx({})) is False  # spaces without either: the paper's crops
    assert skips_padding({}, ctx({"skip_padding": True})) is True
    assert skips_padding({"crops": "clip"}, ctx({"skip_padding": True})) is False
    assert skips_padding({"crops": "content"}, ctx({})) is True
    with pytest.raises(ConfigError, match=r"params\.crops.*use values from 'clip', 'content'"):
        skips_padding({"crops": "middle"}, ctx({}))


def test_log1p_llf_compress_takes_the_log_of_the_paper_frames_with_the_same_weights() -> None:
    torch.manual_seed(0)
    small = {"width": 0.125, "llf_channels": (4, 8), "depth": 2, "sample_rate": 8000}
    paper = AclNet(AclNetConfig(**small)).eval()
    compressed = AclNet(AclNetConfig(**small, llf_compress="log1p")).eval()
    compressed.load_state_dict(paper.state_dict(), strict=True)  # a checkpoint fits either
    x = torch.randn(2, 1, 8000) * 0.1
    with torch.no_grad():
        frames, logged = paper.llf(x), compressed.llf(x)
        assert torch.allclose(logged, torch.log1p(frames))
        assert frames.max() > logged.max() > 0  # loud frames are compressed
        assert torch.equal(logged == 0, frames == 0)  # silence stays 0
    with pytest.raises(ValueError, match="llf_compress must be one of"):
        AclNetConfig(llf_compress="log")


def test_a_trial_s_llf_compress_builds_that_network_and_a_typo_is_refused() -> None:
    from types import SimpleNamespace

    from asc_auto.errors import ConfigError
    from asc_auto.techniques.aclnet_common import build_aclnet

    ctx = SimpleNamespace(
        train_cfg=SimpleNamespace(seed=0), n_classes=3,
        space=SimpleNamespace(file="int8.toml", tables={},
                              features={"kind": "waveform", "sample_rate": 8000}),
        features=SimpleNamespace(x=torch.zeros(1, 1, 16000)))
    config = {"width": 0.125, "llf1": 4, "llf2": 8, "depth": 2}
    assert build_aclnet(config, ctx).model.config.llf_compress == "none"  # the paper's
    built = build_aclnet({**config, "llf_compress": "log1p"}, ctx).model
    assert built.config.llf_compress == "log1p" and isinstance(built.llf[-1], Log1p)
    with pytest.raises(ConfigError, match=r"params\.llf_compress.*'none', 'log1p'"):
        build_aclnet({**config, "llf_compress": "log"}, ctx)
