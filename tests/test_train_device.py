"""The training loop's device side (asc_auto/staging.py, issue 12): data staged once, no host
reads per step, evaluation copied back once; the same weights whichever way batches arrive."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Sequence

import pytest
import torch

import asc_auto.staging as staging
import asc_auto.train as train_mod
from asc_auto.compress.kd import DistillationLoss
from asc_auto.gpuinfo import (
    UtilisationSampler,
    bf16_peak_tflops,
    share_of_peak,
    train_tflops,
)
from asc_auto.models.cnn import CnnStudent, StudentConfig
from asc_auto.staging import StepTimer, fits_on_device, to_device
from asc_auto.techniques.aclnet_common import AugmentSettings, WaveAugment
from asc_auto.train import TrainConfig, eval_batch_size, predict_proba, train_model

GiB = 2**30


def _task(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Separable 3-class features (float16, as the cache gives them) and fake teacher logits."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = 0.3 * torch.randn(n, 1, 12, 16, generator=g)
    for c in range(3):
        x[y == c, :, 4 * c:4 * c + 4, :] += 1.5
    logits = torch.nn.functional.one_hot(y, 3).float() * 2 + 0.1 * torch.randn(n, 3, generator=g)
    return x.half(), y, logits


def _model() -> CnnStudent:
    torch.manual_seed(0)
    return CnnStudent(StudentConfig(channels=(4, 8, 8), n_classes=3))


CFG = TrainConfig(epochs=2, batch_size=8, lr=1e-2, mixup_alpha=0.2, freq_width=2, time_width=2,
                  device="cpu")
KD = DistillationLoss(0.0, 0.5, 0.5, temperature=2.0)


def _kd_loss(outputs: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor,
             extras: Sequence[torch.Tensor]) -> torch.Tensor:
    return KD(outputs[0].float(), outputs[1].float(), extras[0], None, targets)[0]


def _weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_host_staged_batches_train_the_same_weights_as_resident_data(monkeypatch) -> None:
    x, y, logits = _task(40)
    xv, yv, _ = _task(21, seed=1)
    resident = _model()
    res_a = train_model(resident, x, y, CFG, 3, val=(xv, yv), loss_fn=_kd_loss, extras=(logits,))
    made: list[staging.Staged] = []
    real_init = staging.Staged.__init__

    def spy(self: staging.Staged, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        real_init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(staging, "fits_on_device", lambda size, device: False)
    monkeypatch.setattr(train_mod, "fits_on_device", lambda size, device: False)
    monkeypatch.setattr(staging.Staged, "__init__", spy)
    host = _model()
    res_b = train_model(host, x, y, CFG, 3, val=(xv, yv), loss_fn=_kd_loss, extras=(logits,))
    assert [s.resident for s in made] == [False]  # the per-batch copy path really ran
    assert torch.equal(_weights(resident), _weights(host))
    assert res_a.val_history == res_b.val_history and res_a.clips_seen == res_b.clips_seen == 80


def _count_item_calls(monkeypatch, n: int) -> int:
    calls = 0
    real_item = torch.Tensor.item

    def counting(self: torch.Tensor):  # type: ignore[no-untyped-def]
        # Reads by asc_auto's code only: torch.optim reads its CPU step counters, no device's.
        nonlocal calls
        calls += sys._getframe(1).f_globals.get("__name__", "").startswith("asc_auto")
        return real_item(self)

    x, y, logits = _task(n)
    cfg = TrainConfig(**{**CFG.__dict__, "mixup_alpha": 0.0})  # mixup's seed is a host draw
    with monkeypatch.context() as m:
        m.setattr(torch.Tensor, "item", counting)
        train_model(_model(), x, y, cfg, 3, loss_fn=_kd_loss, extras=(logits,))
    return calls


def test_the_step_loop_reads_nothing_back_per_step(monkeypatch) -> None:
    """As on CUDA (loss checked per epoch), asc_auto's host reads do not grow with the steps:
    4 or 16 steps per epoch read the same number of values (the kd loss's terms are never
    read)."""
    def no_sync(*args: object) -> None:
        raise AssertionError("torch.cuda.synchronize called in the training loop")

    monkeypatch.setattr(torch.cuda, "synchronize", no_sync)
    monkeypatch.setattr(train_mod, "_checks_each_step", lambda device: False)
    few, many = _count_item_calls(monkeypatch, 32), _count_item_calls(monkeypatch, 128)
    assert few == many == CFG.epochs  # the non-finite count, once per epoch


def test_fits_on_device_keeps_a_reserve_and_counts_the_allocators_spare(monkeypatch) -> None:
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10 * GiB, 80 * GiB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 0)
    assert fits_on_device(2 * GiB, cuda)  # 2 + 8 (10 % of 80) <= 10
    assert not fits_on_device(int(2.5 * GiB), cuda)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 3 * GiB)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 2 * GiB)
    assert fits_on_device(3 * GiB, cuda)  # a freed trial's cached GiB counts as free
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (10 * GiB, 16 * GiB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 0)
    assert fits_on_device(8 * GiB, cuda) and not fits_on_device(int(8.5 * GiB), cuda)  # 2 GiB
    assert fits_on_device(10**12, torch.device("cpu"))
    assert not fits_on_device(1, torch.device("mps"))


def test_to_device_returns_the_same_tensor_on_its_own_device() -> None:
    t = torch.arange(5)
    assert to_device(t, torch.device("cpu")) is t


def test_step_timer_on_cpu_sums_the_timed_spans() -> None:
    timer = StepTimer(torch.device("cpu"))
    for _ in range(3):
        timer.start()
        time.sleep(0.01)
        timer.stop()
        time.sleep(0.02)  # between steps: not counted
    assert 0.03 <= timer.seconds() < 0.09


def test_evaluation_copies_back_once_and_batches_do_not_change_results(monkeypatch) -> None:
    x, _, _ = _task(40)
    model = _model()
    whole = predict_proba(model, x, batch_size=40, device="cpu")
    copies = 0
    real_cpu = torch.Tensor.cpu

    def counting(self: torch.Tensor, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal copies
        copies += 1
        return real_cpu(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", counting)
    small = predict_proba(model, x, batch_size=4, device="cpu")
    assert copies == 1  # 10 batches, one copy of all the probabilities
    assert small.shape == (40, 3) and abs(small - whole).max() < 1e-5
    assert eval_batch_size(128, torch.device("cpu")) == 128
    assert eval_batch_size(128, torch.device("cuda", 0)) == train_mod.CUDA_EVAL_BATCH
    assert eval_batch_size(4096, torch.device("cuda", 0)) == 4096
    ten_seconds = 4 * 160_000  # float32 bytes of a 10 s clip at 16 kHz
    assert eval_batch_size(128, torch.device("cuda", 0), ten_seconds) == 209
    assert eval_batch_size(128, torch.device("cuda", 0), 4 * 64 * 401) == 512


def test_wave_augment_crops_float16_audio_exactly_as_float32() -> None:
    """The crop is gathered before widening to float32: the same numbers, less work."""
    x = torch.linspace(-0.5, 0.5, 4 * 1000).reshape(4, 1, 1000).half()
    aug = WaveAugment(AugmentSettings(gain_db=3.0, noise_prob=0.5), crop=250)
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x.float(), torch.Generator().manual_seed(3))
    assert a.dtype == torch.float32 and torch.equal(a, b)


def test_peaks_flops_and_utilisation_on_a_machine_without_gpu() -> None:
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert bf16_peak_tflops("NVIDIA L40S") == 362.0 and bf16_peak_tflops("NVIDIA L4") == 121.0
    assert bf16_peak_tflops("cpu") is None and share_of_peak(1.0, "cpu") == "unknown"
    # 1,000 clips/s of a 0.5 GMAC model: 0.5e12 MAC/s, x2 FLOPs, x3 fwd+bwd = 3 TFLOP/s
    assert train_tflops(1000.0, 500_000_000) == pytest.approx(3.0)
    assert share_of_peak(9.89, "NVIDIA H200") == "1.00 % of 989 TFLOP/s"
    with UtilisationSampler(torch.device("cpu"), interval=0.01) as util:
        time.sleep(0.03)
    assert util.mean is None and util.describe() == "n/a"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("resident", [True, False])
def test_on_cuda_synchronisations_do_not_grow_with_the_steps(monkeypatch, resident: bool
                                                             ) -> None:
    """torch's sync debug mode warns at every host-device synchronisation: a run of 16 steps
    per epoch must cause as many as a run of 4 (the per-epoch reads and the one-off copies)."""
    monkeypatch.setattr(train_mod, "fits_on_device", lambda size, device: resident)
    monkeypatch.setattr(staging, "fits_on_device", lambda size, device: resident)
    cfg = TrainConfig(**{**CFG.__dict__, "device": "cuda", "mixup_alpha": 0.2})
    wave = WaveAugment(AugmentSettings(), crop=8)

    def syncs(n: int, transform: bool) -> int:
        x, y, logits = _task(n)
        xs = x.flatten(1)[:, None, :] if transform else x  # (n, 1, 192) "audio"
        model: torch.nn.Module = _Wave1d() if transform else _model()
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                train_model(model, xs, y, cfg, 3, loss_fn=_kd_loss, extras=(logits,),
                            transform=wave if transform else None)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in seen)

    for transform in (False, True):
        syncs(16, transform)  # warm-up: one-off initialisations
        assert syncs(32, transform) == syncs(128, transform)


class _Wave1d(torch.nn.Module):
    """A tiny 1-D model for crops of (B, 1, samples) audio: (logits, embedding)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 4, 3)
        self.norm = torch.nn.BatchNorm1d(4)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = torch.relu(self.norm(self.conv(x))).mean(-1)
        return self.head(emb), emb


def test_several_workers_share_one_gpu(monkeypatch) -> None:
    from asc_auto.workers import per_device, worker_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    devices = [worker_device("auto", i) for i in range(4)]
    assert devices == ["cuda:0"] * 4 and per_device(devices) == "4 on cuda:0"
    assert per_device(["cuda:0", "cuda:1", "cuda:0"]) == "2 on cuda:0, 1 on cuda:1"


def test_feature_extraction_streams_with_a_bounded_look_ahead(monkeypatch) -> None:
    """However many clips (13,370 for TAU fold1), at most a batch plus two batches of look-ahead
    are decoded and held at any time; each batch is handed on before the next is awaited."""
    import asc_auto.features.cache as cache

    loaded = 0

    def fake_load(ds: object, clip: int, cfg: object) -> torch.Tensor:
        nonlocal loaded
        loaded += 1
        return torch.full((1, 8), float(clip))

    monkeypatch.setattr(cache, "_load_clip", fake_load)
    clips = list(range(203))
    seen = []
    stream = cache._batched_waveforms(None, clips, None, 16, 2)  # type: ignore[arg-type]
    for start, waves in stream:
        assert loaded - (start + len(waves)) <= 2 * 16  # decoded but not yet handed on
        seen += waves[:, 0, 0].int().tolist()
    assert seen == clips
    assert cache._loader_threads("cpu") <= 4 and cache._loader_threads("cuda") >= 1
