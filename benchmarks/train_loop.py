"""Time `train_model` alone on prepared data: prints one JSON line, asserts nothing.

    .venv/bin/python benchmarks/train_loop.py PAYLOAD.pt [--mode student|teacher|kd|aclnet]
        [--epochs 1] [--device cpu] [--amp auto|on|off] [--compile]

PAYLOAD.pt is written by benchmarks/throughput.py (the demo data's features, the paper student's
and the teacher's configurations, teacher outputs for kd, the training settings). This script
uses only what older versions of asc_auto have too, so `throughput.py --compare REF` can run it
under REF's code (PYTHONPATH) and under this checkout, alternately, and print both side by side:
clips/s through forward+backward, wall seconds and CPU seconds (all threads: on a shared machine
the CPU time is the steadier measure of the work done) of the whole run, validation accuracy and
a digest of the trained weights (equal digests: bit-identical training).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from asc_auto.console import run_script
from asc_auto.train import TrainConfig, evaluate, train_model


def _kd(payload: dict[str, Any]) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """The paper student inside DistillNet with the kd loss, as techniques/kd.py trains it."""
    from asc_auto.compress.kd import DistillationLoss
    from asc_auto.models.cnn import CnnStudent, Projection, StudentConfig
    from asc_auto.techniques.kd import DistillNet

    torch.manual_seed(0)
    student = CnnStudent(StudentConfig(**payload["student"]))
    dims = payload["embed_dims"]  # (student's, teacher's)
    net = DistillNet(student, nn.Identity() if dims[0] == dims[1] else Projection(*dims))
    loss = DistillationLoss(*payload["kd_weights"], payload["temperature"])

    def loss_fn(outputs: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor,
                extras: Sequence[torch.Tensor]) -> torch.Tensor:
        return loss(outputs[0].float(), outputs[1].float(), extras[0], extras[1], targets)[0]

    return net, student, {"loss_fn": loss_fn, "extras": (payload["t_logits"], payload["t_emb"])}


def _aclnet(payload: dict[str, Any]) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """The int8/lt paper AclNet on random crops (WaveAugment), as aclnet_common trains it."""
    from asc_auto.models.aclnet import AclNet, AclNetConfig, SegmentAverage
    from asc_auto.techniques.aclnet_common import AugmentSettings, WaveAugment

    torch.manual_seed(0)
    model = SegmentAverage(AclNet(AclNetConfig(**payload["aclnet"])), payload["segment"])
    transform = WaveAugment(AugmentSettings(**payload["augment"]), payload["segment"])
    return model, model, {"transform": transform}


def build(mode: str, payload: dict[str, Any]) -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """(what trains, what is evaluated, extra train_model arguments) for a mode."""
    if mode == "kd":
        return _kd(payload)
    if mode == "aclnet":
        return _aclnet(payload)
    torch.manual_seed(0)
    if mode == "teacher":
        from asc_auto.models.vgg import VggConfig, VggTeacher

        model: nn.Module = VggTeacher(VggConfig(**payload["teacher"]))
    else:
        from asc_auto.models.cnn import CnnStudent, StudentConfig

        model = CnnStudent(StudentConfig(**payload["student"]))
    return model, model, {}


def digest(model: nn.Module) -> str:
    """sha256 (first 12 hex digits) of every parameter's bytes, in order."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("payload", type=Path)
    parser.add_argument("--mode", choices=("student", "teacher", "kd", "aclnet"),
                        default="student")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    payload = torch.load(args.payload, weights_only=True)
    data = payload["aclnet_data"] if args.mode == "aclnet" else payload["data"]
    train = payload["aclnet_train"] if args.mode == "aclnet" else payload["train"]
    cfg = TrainConfig(**{**train, "epochs": args.epochs, "device": args.device})
    model, scored, kwargs = build(args.mode, payload)
    if args.amp != "auto":  # only versions with the `amp` argument
        kwargs["amp"] = args.amp == "on"
    if args.compile:  # only versions with the `compile_model` argument
        kwargs["compile_model"] = True
    n_classes = int(payload["n_classes"])
    t0, c0 = time.perf_counter(), time.process_time()
    res = train_model(model, data["x"], data["y"], cfg, n_classes, val=(data["xv"], data["yv"]),
                      **kwargs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    acc = evaluate(scored, data["xv"], data["yv"], n_classes, cfg.eval_batch_size,
                   args.device).accuracy
    print(json.dumps({"mode": args.mode, "clips_per_second": res.clips_per_second,
                      "seconds_forward_backward": res.seconds_forward_backward,
                      "seconds_total": wall, "cpu_seconds": cpu, "clips_seen": res.clips_seen,
                      "val_accuracy": acc, "digest": digest(model),
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    run_script(main)
