"""The one training/evaluation loop every technique uses.

Data sit in memory as tensors (a feature cache is small enough: the full TAU 3Class train fold at
64 x 1001 log-mels is ~1.2 GB in float16), so an epoch is a shuffled index walk with no DataLoader
workers to start. The device is picked automatically; on CUDA the forward pass runs under bfloat16
autocast. On CPU a run is reproducible for a seed.

On a GPU the step loop never waits for the device (asc_auto/staging.py): the training data
(features, labels, extras) are moved there once when they fit and batches are indexed there,
augmentation runs there, forward+backward is timed with CUDA events read once per epoch, and the
non-finite-loss count is read once per epoch. Evaluation runs in large batches and copies the
probabilities back once.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from asc_auto import epoch_state, stop
from asc_auto.allocator import keep_freed_memory
from asc_auto.errors import TrainingDiverged
from asc_auto.features.augment import SpecAugment, mixup
from asc_auto.staging import Staged, StepTimer, fits_on_device, nbytes, to_device
from asc_auto.tables import dataclass_from_table, ranged, settings_table

LossFn = Callable[[tuple[torch.Tensor, torch.Tensor], torch.Tensor, Sequence[torch.Tensor]],
                  torch.Tensor]
EpochHook = Callable[[int, float], None]


@settings_table("train")
@dataclass(frozen=True)
class TrainConfig:
    """Fixed training settings; a space file's [train] table overrides these defaults."""

    epochs: int = ranged(12, 1)  # passes over the training split (at least; see below)
    # Budget in clips seen, so a 150-clip dataset trains as long as a 10,000-clip one: the epochs
    # are raised to ceil(min_clips_seen / training clips) when that is more (0: epochs only).
    min_clips_seen: int = ranged(0, 0)
    batch_size: int = ranged(32, 2)  # BatchNorm needs two examples
    lr: float = ranged(1e-3, 0.0, 10.0, low_open=True)  # peak rate of AdamW (one-cycle schedule)
    weight_decay: float = ranged(1e-4, 0.0)
    mixup_alpha: float = ranged(0.2, 0.0)  # Beta(alpha, alpha) mixing; 0 turns mixup off
    freq_masks: int = ranged(2, 0)  # SpecAugment: masks per example and their maximum widths
    freq_width: int = ranged(8, 0)
    time_masks: int = ranged(2, 0)
    time_width: int = ranged(20, 0)
    eval_batch_size: int = ranged(128, 1)
    seed: int = ranged(0, 0, 2**63 - 1)  # what torch.manual_seed accepts
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...


def epochs_for(epochs: int, min_clips_seen: int, n_train: int) -> int:
    """`epochs`, or more when `n_train` clips per epoch would see fewer than `min_clips_seen`."""
    if min_clips_seen <= 0 or n_train <= 0:
        return epochs
    return max(epochs, math.ceil(min_clips_seen / n_train))


def epochs_to_see(clips_seen: int, n_train: int) -> int:
    """The epochs of `n_train` clips that see at least `clips_seen` clips (at least one).

    Why: a search validates each configuration trained on part of fold1_train (a fold, a
    split); retrain trains it on all of it. The same epochs there are more optimizer steps than
    the search measured, and a ranking can turn with the length of training (office16 int8, the
    same network distilled at T 4 and at T 1.14: 83.8 % and 86.4 % at the 27 epochs a 3-fold
    search's trainings see, 86.4 % and 80.8 % at 40; docs/BENCHMARKS.md). So retrain trains the
    clips seen the search validated, not its epochs."""
    return max(1, math.ceil(clips_seen / max(1, n_train)))


# The finish (a space's `finish_epochs` param): epochs after a fit's last training at a hundredth
# of its peak rate, without mixup (crops and other augmentation as in training), BatchNorm frozen.
# Why: a training with mixup ends its one-cycle schedule on mixed clips. On office16's three
# rotated evaluate folds (9 seeds) 3 such epochs lifted the int8 pick's FP32 AclNet by 3.5 +- 0.7
# points and the lt pick's ticket by 5.1 +- 0.8 (every seed), the baseline CNN (no mixup) by 0.2;
# as int8's QAT, a tenth of the rate moved seeds both ways and mixup kept lost points
# (docs/BENCHMARKS.md, "Which QAT helps" and "The finish, per technique").
FINISH_LR_FACTOR = 0.01


def finish_config(cfg: TrainConfig, epochs: int, lr_factor: float = FINISH_LR_FACTOR,
                  mixup_alpha: float = 0.0) -> TrainConfig:
    """The finish's settings from the training's own `cfg`: `epochs` at `lr_factor` of its
    peak rate, mixup at `mixup_alpha` (the caller trains with `frozen_batchnorm`). The one
    place for them: int8's QAT is the same with its own factor and mixup."""
    return dataclasses.replace(cfg, epochs=epochs, min_clips_seen=0,
                               lr=cfg.lr * lr_factor, mixup_alpha=mixup_alpha)


def train_config(values: dict[str, Any], file: str = "<config>") -> TrainConfig:
    """Build a TrainConfig from a [train] table, rejecting unknown keys and wrong types by name."""
    return dataclass_from_table(TrainConfig, values, file, "train")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' means the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def worker_device(device: str, index: int) -> str:
    """The device of process `index` of several (search workers, confirmation or retrain
    processes): GPUs round robin when `device` means all of them."""
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{index % torch.cuda.device_count()}"
    return device


@dataclass
class TrainResult:
    """What a training run measured: per-epoch validation accuracy and where the time went."""

    val_history: list[float] = field(default_factory=list)
    seconds_total: float = 0.0
    seconds_forward_backward: float = 0.0
    seconds_eval: float = 0.0
    clips_seen: int = 0

    @property
    def clips_per_second(self) -> float:
        fb = self.seconds_forward_backward
        return self.clips_seen / fb if fb else 0.0


@dataclass(frozen=True)
class EvalResult:
    """Clip-level evaluation: accuracy, log loss, per-class accuracy and the probabilities."""

    accuracy: float
    log_loss: float
    per_class: tuple[float, ...]
    probs: np.ndarray
    per_class_log_loss: tuple[float, ...] = ()


def cross_entropy_loss(outputs: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor,
                       extras: Sequence[torch.Tensor]) -> torch.Tensor:
    """Plain cross-entropy against (soft) targets: the default loss."""
    del extras
    return nn.functional.cross_entropy(outputs[0].float(), targets)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last for image-like (B, C, F, T) inputs: measured 1.3x faster training on CPU."""
    return torch.channels_last if x.dim() == 4 else torch.contiguous_format


# The model's 2-D conv weights go channels_last whatever its input: AclNet takes (B, 1, samples)
# but runs its HLF on 2-D frames, and with channels_last weights oneDNN keeps those activations
# channels_last too (benchmarks/throughput.py --compare, docs/BENCHMARKS.md). Module.to changes
# only 4-D tensors, so 1-D convs and linear layers are untouched.
MODEL_FORMAT = torch.channels_last


# bfloat16 autocast on the CPU, opt-in: ASC_AUTO_CPU_BF16=1. On a CPU with bf16 instructions
# (AVX512-BF16, AMX; `torch.cpu.get_capabilities()`) training steps ran 1.3-2x faster and two
# office16 checks kept their accuracy (docs/BENCHMARKS.md), but the kd student and teacher were
# not checked, and without those instructions bf16 is emulated and slower: so off by default.
# Like the device, it is in no cache key: it changes float rounding, not what is trained.
CPU_BF16_ENV = "ASC_AUTO_CPU_BF16"


def default_amp(device: torch.device) -> bool:
    """bfloat16 autocast on CUDA always, on the CPU when CPU_BF16_ENV is 1 (on, true, yes)."""
    if device.type == "cuda":
        return True
    on = os.environ.get(CPU_BF16_ENV, "").strip().lower() in ("1", "on", "true", "yes")
    return device.type == "cpu" and on


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm of `model` in eval mode: it normalises with the running statistics the
    trained network was scored with and stops updating them. Short fine-tuning (int8's QAT) in
    train mode re-estimated them from a few augmented, mixed batches: one office16 seed lost 9
    points that way (techniques/int8.py); torchvision's QAT recipe freezes them too."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def train_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    n_classes: int,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    loss_fn: LossFn = cross_entropy_loss,
    extras: Sequence[torch.Tensor] = (),
    on_epoch: EpochHook | None = None,
    on_step: Callable[[int, int], None] | None = None,
    transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    amp: bool | None = None,
    compile_model: bool = False,
    frozen_batchnorm: bool = False,
) -> TrainResult:
    """Train `model` (forward returns (logits, embedding)) in place.

    `extras` are per-example tensors mixed alongside the inputs (e.g. cached teacher outputs);
    `on_epoch(epoch, val_accuracy)` may raise optuna.TrialPruned to stop early;
    `on_step(done, total)` drives a progress bar; `transform(batch, generator)` augments each
    input batch before SpecAugment and mixup (e.g. random crops of raw audio): the batch is on
    the training device and `generator` is a CPU generator, for small draws only (see
    techniques/aclnet_common.py's WaveAugment). `amp`: bfloat16 autocast (None: `default_amp`);
    `compile_model`: train through `torch.compile(model)` (off: measured slower on CPU, see
    docs/GUIDE.md "GPU"); `frozen_batchnorm`: every BatchNorm normalises with its running
    statistics and keeps them (fine-tuning a trained network: `freeze_batchnorm`).
    """
    keep_freed_memory()  # 1.4-1.6x faster CPU steps: allocator.py says why
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    fmt = _memory_format(x)
    model.to(device, memory_format=MODEL_FORMAT)
    forward = torch.compile(model) if compile_model else model
    augment = SpecAugment(cfg.freq_masks, cfg.freq_width, cfg.time_masks, cfg.time_width).to(device)
    # The fused CUDA kernel updates every parameter in one launch instead of several per tensor.
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    n = len(x)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total_steps = cfg.epochs * steps_per_epoch
    sched: torch.optim.lr_scheduler.LRScheduler
    if total_steps >= 10:
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=total_steps, pct_start=0.2)
    else:  # OneCycleLR divides by zero when warm-up rounds to no step: keep the rate constant
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    use_amp = default_amp(device) if amp is None else amp
    result = TrainResult()
    t_start = time.perf_counter()
    data = Staged([x, y, *extras], device)  # on the device once, when they fit
    val_x = None if val is None else _resident(val[0], device)
    timer = StepTimer(device)
    # Non-finite losses are counted on the device and read once per epoch (on CUDA reading a
    # count every step would make the host wait for the device); on the CPU each step's is free.
    each_step = _checks_each_step(device)
    bad_steps = torch.zeros((), dtype=torch.int64, device=device)
    # Inside epoch_state.resumable (a retrain seed, a confirmation fold): continue from the last
    # epoch a stopped run of this same training finished, its hooks replayed.
    saved = epoch_state.for_training(model, x, y, extras, {
        "cfg": dataclasses.replace(cfg, device=""), "n_classes": n_classes, "amp": use_amp,
        "val": None if val is None else epoch_state.fingerprint(val[1]),
        "transform": transform is not None,
        **({"frozen_batchnorm": True} if frozen_batchnorm else {})})
    start, prior_fb = 0, 0.0
    if saved is not None and (state := saved.load()) is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        epoch_state.restore_random(state, gen, device)
        start, prior_fb = int(state["epoch"]), float(state["seconds_forward_backward"])
        result.val_history = [float(a) for a in state["val_history"]]
        result.clips_seen, result.seconds_eval = int(state["clips_seen"]), state["seconds_eval"]
        t_start -= float(state["seconds_total"])
        with epoch_state.replay():
            if on_step is not None:
                on_step(start * steps_per_epoch, cfg.epochs * steps_per_epoch)
            for epoch, acc in enumerate(result.val_history if on_epoch is not None else ()):
                on_epoch(epoch, acc)
    for epoch in range(start, cfg.epochs):
        model.train()
        if frozen_batchnorm:
            freeze_batchnorm(model)
        augment.train()
        order = data.order(torch.randperm(n, generator=gen))
        for step in range(steps_per_epoch):
            stop.check()  # a SIGTERM whose interrupt a garbage collection swallowed
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            if len(idx) < 2 and n >= 2:  # BatchNorm cannot train on a batch of one
                continue
            xb, yb, *eb = data.take(idx)
            xb = xb if transform is None else transform(xb, gen)
            xb = xb.float().contiguous(memory_format=fmt)
            eb = [e.float() for e in eb]
            xb = augment(xb)
            xb, soft, eb = mixup(xb, yb, n_classes, cfg.mixup_alpha, gen, extras=eb)
            timer.start()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                outputs = forward(xb)
                loss = loss_fn(outputs, soft, eb)
            bad_steps += (~torch.isfinite(loss.detach())).to(torch.int64)
            if each_step and bad_steps.item():
                raise _diverged(cfg, epoch, f"step {step + 1} ({loss.item()})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            timer.stop()
            result.clips_seen += len(idx)
            if on_step is not None:
                on_step(epoch * steps_per_epoch + step + 1, cfg.epochs * steps_per_epoch)
        result.seconds_forward_backward = prior_fb + timer.seconds()  # CUDA: the epoch's one wait
        if bad_steps.item():
            raise _diverged(cfg, epoch, f"{bad_steps.item()} of {steps_per_epoch} steps")
        if val is not None:
            t0 = time.perf_counter()
            assert val_x is not None
            acc = evaluate(model, val_x, val[1], n_classes, cfg.eval_batch_size, device).accuracy
            result.seconds_eval += time.perf_counter() - t0
            result.val_history.append(acc)
            if on_epoch is not None:
                on_epoch(epoch, acc)
        if saved is not None:
            saved.save({"epoch": epoch + 1, "model": model.state_dict(), "opt": opt.state_dict(),
                        "sched": sched.state_dict(), **epoch_state.random_states(gen, device),
                        "val_history": list(result.val_history),
                        "clips_seen": result.clips_seen, "seconds_eval": result.seconds_eval,
                        "seconds_forward_backward": result.seconds_forward_backward,
                        "seconds_total": time.perf_counter() - t_start})
    result.seconds_total = time.perf_counter() - t_start
    return result


def _resident(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`x` moved to `device` when it fits there (validation clips, read every epoch), else `x`."""
    return x.to(device) if fits_on_device(nbytes([x]), device) else x


def _checks_each_step(device: torch.device) -> bool:
    """Whether reading the loss every step is free: on the CPU yes; on CUDA it would wait for
    the device each step, so the non-finite count is read once per epoch."""
    return device.type == "cpu"


def _diverged(cfg: TrainConfig, epoch: int, where: str) -> TrainingDiverged:
    """The error that fails a run whose loss became NaN/inf (its result would be meaningless)."""
    return TrainingDiverged(f"training diverged: the loss became NaN or infinite in epoch "
                            f"{epoch + 1}, {where}; fix: a lower learning rate than {cfg.lr:g}, "
                            "or check the input features for extreme values")


# Evaluation batch on CUDA: at least this many clips (at the CPU's 128 a small model leaves the
# GPU idle), unless their float32 input would pass CUDA_EVAL_BYTES (10 s waveforms: 209 clips),
# so that the activations of long clips stay a few GB beside other workers' trials.
CUDA_EVAL_BATCH = 512
CUDA_EVAL_BYTES = 128 * 2**20


def eval_batch_size(batch_size: int, device: torch.device, clip_bytes: int = 0) -> int:
    """The evaluation batch on `device`: the configured one; on CUDA raised towards
    CUDA_EVAL_BATCH clips of `clip_bytes` (float32 input) each, within CUDA_EVAL_BYTES."""
    if device.type != "cuda":
        return batch_size
    fits = CUDA_EVAL_BYTES // clip_bytes if clip_bytes > 0 else CUDA_EVAL_BATCH
    return max(batch_size, min(CUDA_EVAL_BATCH, fits))


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 128,
                  device: torch.device | str | None = None) -> np.ndarray:
    """Class probabilities for every row of `x` (eval mode, no augmentation); `x` may be on the
    host or on the device. The probabilities stay on the device until all batches are done."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    model.to(device)
    dtype = next(model.parameters()).dtype
    step = eval_batch_size(batch_size, device, 4 * x[0].numel() if len(x) else 0)
    out = []
    for start in range(0, len(x), step):
        xb = to_device(x[start:start + step], device).to(dtype)
        logits = model(xb)[0]
        out.append(torch.softmax(logits.float(), dim=1))
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, 0), dtype=np.float32)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int,
             batch_size: int = 128, device: torch.device | str | None = None) -> EvalResult:
    """Accuracy, log loss and per-class accuracy of `model` on (x, y)."""
    probs = predict_proba(model, x, batch_size, device)
    if not np.isfinite(probs).all():
        raise TrainingDiverged("the model's outputs are NaN or infinite on the validation clips; "
                               "fix: a lower learning rate, or a higher precision than fp16")
    return score(probs, y.cpu().numpy(), n_classes)


def score(probs: np.ndarray, y: np.ndarray, n_classes: int) -> EvalResult:
    """Score clip-level probabilities against integer labels."""
    pred = probs.argmax(axis=1)
    acc = float((pred == y).mean()) if len(y) else 0.0
    nll = -np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0))
    ll = float(nll.mean()) if len(y) else 0.0
    present = [(y == c).any() for c in range(n_classes)]
    per_class = tuple(float((pred[y == c] == c).mean()) if present[c] else float("nan")
                      for c in range(n_classes))
    per_class_ll = tuple(float(nll[y == c].mean()) if present[c] else float("nan")
                         for c in range(n_classes))
    return EvalResult(acc, ll, per_class, probs, per_class_ll)
