"""AclNet, its segment averaging, the raw-waveform cache and the shared waveform augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from asc_auto.data.tau import load_dataset
from asc_auto.features.cache import build_features
from asc_auto.features.config import WaveformConfig, frontend_config_from_dict
from asc_auto.features.frontends import load_waveform
from asc_auto.models.aclnet import PAPER_PARAMS, AclNet, AclNetConfig, SegmentAverage
from asc_auto.models.registry import create_model
from asc_auto.techniques.aclnet_common import AugmentSettings, WaveAugment


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
