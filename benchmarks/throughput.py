"""Throughput benchmark on the built-in demo data: prints numbers, asserts nothing.

    .venv/bin/python benchmarks/throughput.py [--home DIR] [--epochs N] [--device auto]
        [--search-jobs 4] [--search-trials 8] [--compile] [--compare REF [--modes student kd]]

Measures on the device it names (a GPU's model, or the CPU):
(1) feature extraction (clips/s, cold cache, the frontend on the device);
(2) training throughput of the demo KD teacher and of the paper's student: clips/s through
    forward+backward, the TFLOP/s that is (asc_auto/compress/macs.py's MACs per clip x 2 FLOPs
    x 3 for forward+backward) and its share of the device's bf16 peak (asc_auto/gpuinfo.py);
(3) the share of one kd trial's wall time spent outside forward+backward (augmentation,
    batching, evaluation, FP16/INT8 conversion, bookkeeping);
(4) on CUDA: validation accuracy of the paper student trained with bf16 autocast and in fp32;
(5) on CUDA: GPU utilisation while `search --technique kd --jobs N` runs a few trials;
(6) with --compile: forward+backward clips/s of the student with and without torch.compile;
(7) with --compare REF: `train_model` of git revision REF against this checkout's, run
    alternately in fresh processes on the same data (benchmarks/train_loop.py), so the numbers
    are side by side from one run; equal weight digests mean bit-identical training.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from asc_auto.compress.macs import count_macs
from asc_auto.console import run_script
from asc_auto.data.demo import ensure_demo_dataset
from asc_auto.features.cache import build_features
from asc_auto.gpuinfo import UtilisationSampler, device_name, share_of_peak, train_tflops
from asc_auto.models.vgg import VggTeacher
from asc_auto.search import SearchOptions, SearchSetup, prepare_search
from asc_auto.teacher import teacher_settings
from asc_auto.train import evaluate, resolve_device, train_model

ROOT = Path(__file__).resolve().parent.parent
Row = tuple[str, str, str]


def _speed(label: str, clips_s: float, macs: int, name: str, detail: str) -> list[Row]:
    """A clips/s row and its TFLOP/s row."""
    tflops = train_tflops(clips_s, macs)
    return [(label, f"{clips_s:.1f} clips/s", detail),
            ("  achieved", f"{tflops:.3f} TFLOP/s",
             f"{macs / 1e6:.1f} MMACs/clip x 2 x 3; {share_of_peak(tflops, name)}")]


def _extraction(setup: SearchSetup, device: torch.device, n_clips: int) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_features(setup.dataset, setup.technique.feature_config(setup.space), Path(tmp),
                       progress=False, device=str(device))
        dt = time.perf_counter() - t0
    return ("feature extraction (cold cache)", f"{n_clips / dt:.1f} clips/s",
            f"{n_clips} clips in {dt:.1f} s, frontend on {device}")


def _amp_check(setup: SearchSetup, epochs: int) -> Row:
    """The paper student trained twice, bf16 autocast and fp32, same seed: validation accuracy."""
    ctx, tech = setup.context, setup.technique
    config = dict(setup.space.paper)
    cfg = dataclasses.replace(ctx.train_cfg, epochs=epochs, lr=float(config["lr"]),
                              mixup_alpha=float(config["mixup_alpha"]))
    accs = {}
    for amp in (True, False):
        model = tech.build(config, ctx).model
        train_model(model, *ctx.train_xy, cfg, ctx.n_classes, amp=amp)
        accs[amp] = evaluate(model, *ctx.val_xy, ctx.n_classes, device=cfg.device).accuracy
    return ("bf16 autocast vs fp32", f"{accs[True]:.4f} vs {accs[False]:.4f}",
            f"paper student (plain CE), {epochs} epochs, {len(ctx.val_files)} validation clips")


def _compile_check(setup: SearchSetup, epochs: int) -> list[Row]:
    ctx, tech = setup.context, setup.technique
    config = dict(setup.space.paper)
    cfg = dataclasses.replace(ctx.train_cfg, epochs=epochs)
    rows = []
    for flag in (False, True):
        model = tech.build(config, ctx).model
        t0 = time.perf_counter()
        res = train_model(model, *ctx.train_xy, cfg, ctx.n_classes, compile_model=flag)
        wall = time.perf_counter() - t0
        rows.append((f"student {'with' if flag else 'without'} torch.compile",
                     f"{res.clips_per_second:.1f} clips/s",
                     f"{epochs} epochs, {wall:.1f} s wall (compilation included)"))
    return rows


def _search_utilisation(home: Path, device: torch.device, jobs: int, trials: int, epochs: int
                        ) -> Row:
    if device.type != "cuda":
        return ("GPU utilisation, search --jobs", "n/a", "no GPU")
    cmd = [sys.executable, "-m", "asc_auto.cli", "search", "--technique", "kd", "--study",
           f"util-{int(time.time())}", "--trials", str(trials), "--epochs", str(epochs),
           "--jobs", str(jobs), "--home", str(home), "--device", str(device)]
    t0 = time.perf_counter()
    with UtilisationSampler(device) as util:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return (f"GPU utilisation, search --jobs {jobs}", util.describe(),
            f"{trials} kd trials x {epochs} epochs in {wall:.1f} s "
            f"({3600 * trials / wall:.0f} trials/hour)")


def _payload(setup: SearchSetup, modes: list[str], home: Path, device: str, epochs: int
             ) -> dict[str, Any]:
    """What benchmarks/train_loop.py trains on: demo features and the paper configurations.
    kd's teacher outputs come from an untrained, seeded teacher (the loop's cost is the same)."""
    from asc_auto.techniques.kd import loss_weights, student_config

    ctx = setup.context
    config = dict(setup.space.paper)
    x, y = ctx.train_xy
    settings = teacher_settings(setup.space.tables["teacher"], str(setup.space.file))
    vgg = settings.vgg_config(x.shape[1], ctx.n_classes)
    student = student_config(config, x.shape[1], ctx.n_classes)
    plain = {k: v for k, v in dataclasses.asdict(ctx.train_cfg).items()
             if k not in ("epochs", "device")}
    out: dict[str, Any] = {
        "n_classes": ctx.n_classes, "student": dataclasses.asdict(student),
        "teacher": dataclasses.asdict(vgg),
        "train": {**plain, "lr": float(config["lr"]), "mixup_alpha": float(config["mixup_alpha"])},
        "data": {"x": x, "y": y, "xv": ctx.val_xy[0], "yv": ctx.val_xy[1]},
        "kd_weights": loss_weights(config, has_embeddings=True),
        "temperature": float(config["temperature"]),
    }
    if "kd" in modes:
        torch.manual_seed(1)
        teacher = VggTeacher(vgg).eval()
        with torch.no_grad():
            outs = [teacher(x[i:i + 64].float()) for i in range(0, len(x), 64)]
            from asc_auto.models.cnn import CnnStudent

            student_dim = CnnStudent(student).eval()(x[:1].float())[1].shape[1]
        out["t_logits"] = torch.cat([o[0] for o in outs])
        out["t_emb"] = torch.cat([o[1] for o in outs])
        out["embed_dims"] = (int(student_dim), int(out["t_emb"].shape[1]))
    if "aclnet" in modes:
        from asc_auto.techniques.aclnet_common import (
            aclnet_config,
            aclnet_train_config,
            augment_settings,
            sample_rate,
            segment_samples,
        )

        wave = prepare_search(SearchOptions(technique="int8", home=home, epochs=epochs,
                                            device=device), status=lambda m: None)
        wctx, wconf = wave.context, dict(wave.space.paper)
        out["aclnet"] = dataclasses.asdict(aclnet_config(wconf, wctx.n_classes, sample_rate(wctx)))
        out["segment"] = segment_samples(wctx)
        out["augment"] = dataclasses.asdict(augment_settings(wctx))
        out["aclnet_train"] = {k: v for k, v in
                               dataclasses.asdict(aclnet_train_config(wconf, wctx)).items()
                               if k not in ("epochs", "device")}
        out["aclnet_data"] = {"x": wctx.train_xy[0], "y": wctx.train_xy[1],
                              "xv": wctx.val_xy[0], "yv": wctx.val_xy[1]}
    return out


def _extract(ref: str, dest: Path) -> str:
    """REF's asc_auto package into dest (git archive: no worktree, no checkout touched)."""
    sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    blob = subprocess.run(["git", "archive", "--format=tar", ref, "asc_auto"], cwd=ROOT,
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return sha


def _compare(setup: SearchSetup, args: argparse.Namespace, console: Console) -> None:
    """Before (REF) and after (this checkout), alternately (before first on even repeats, after
    first on odd ones, so a drift in the machine's load favours neither), `--repeats` times."""
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "ref"
        sha = _extract(args.compare, old)
        payload = Path(tmp) / "payload.pt"
        torch.save(_payload(setup, args.modes, args.home, args.device, args.epochs), payload)
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        versions = [(f"before ({sha})", old), ("after (this tree)", ROOT)]
        for rep in range(args.repeats):
            for mode in args.modes:
                for label, path in versions[::-1] if rep % 2 else versions:  # ABBA order
                    env = {**os.environ, "PYTHONPATH": str(path)}
                    out = subprocess.run(
                        [sys.executable, str(ROOT / "benchmarks" / "train_loop.py"), str(payload),
                         "--mode", mode, "--epochs", str(args.compare_epochs),
                         "--device", args.device], env=env, check=True, capture_output=True,
                        text=True, cwd=tmp).stdout
                    runs.setdefault((mode, label), []).append(json.loads(out.splitlines()[-1]))
    table = Table(title=f"train_model before/after, {args.compare_epochs} epoch(s) per run, "
                        f"{args.repeats} runs each, alternating ABBA (median)",
                  title_justify="left")
    for col in ("mode", "version", "fwd+bwd clips/s", "wall s", "CPU s", "val acc",
                "weights digest"):
        table.add_column(col)
    for (mode, label), rs in runs.items():
        speeds = [r["clips_per_second"] for r in rs]
        each = ", ".join(f"{v:.1f}" for v in speeds)
        cpu = [r["cpu_seconds"] for r in rs]
        table.add_row(mode, label, f"{statistics.median(speeds):.1f} ({each})",
                      f"{statistics.median(r['seconds_total'] for r in rs):.1f}",
                      f"{statistics.median(cpu):.1f} ({', '.join(f'{v:.0f}' for v in cpu)})",
                      f"{rs[0]['val_accuracy']:.4f}", ", ".join(sorted({r["digest"] for r in rs})))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("studies"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--search-jobs", type=int, default=4)
    parser.add_argument("--search-trials", type=int, default=8)
    parser.add_argument("--compile", action="store_true",
                        help="also time the student with torch.compile")
    parser.add_argument("--compare", metavar="REF", default=None,
                        help="time REF's train_model against this checkout's (git revision)")
    parser.add_argument("--modes", nargs="+", default=["student", "kd"],
                        choices=["student", "teacher", "kd", "aclnet"])
    parser.add_argument("--compare-epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only-compare", action="store_true",
                        help="skip (1)-(6): only the before/after table")
    args = parser.parse_args()
    console = Console(width=120)  # the tables stay whole in logs and pipes
    device = resolve_device(args.device)
    args.device = str(device)
    name = device_name(device)
    root = ensure_demo_dataset(args.home / "data")
    opts = SearchOptions(technique="kd", home=args.home, epochs=args.epochs, device=args.device)
    setup = prepare_search(opts, status=lambda m: None)  # warms the shared feature cache
    ctx = setup.context
    n_clips = len(ctx.features.filenames)
    console.print(f"device: {name}; {torch.get_num_threads()} CPU threads, "
                  f"{platform.processor() or platform.machine()}; torch {torch.__version__}")
    if args.compare:
        _compare(setup, args, console)
    if args.only_compare:
        return

    rows: list[Row] = [_extraction(setup, device, n_clips)]
    settings = teacher_settings(setup.space.tables["teacher"], str(setup.space.file))
    x, y = ctx.train_xy
    example = ctx.example_input()
    teacher = VggTeacher(settings.vgg_config(x.shape[1], ctx.n_classes))
    teacher_macs = count_macs(teacher, example)
    tcfg = dataclasses.replace(ctx.train_cfg, epochs=1, batch_size=settings.batch_size)
    res = train_model(teacher, x, y, tcfg, ctx.n_classes)
    rows += _speed("teacher training (fwd+bwd)", res.clips_per_second, teacher_macs, name,
                   f"{sum(p.numel() for p in teacher.parameters()):,} params, width "
                   f"{settings.width}")

    tech = setup.technique
    tech.prepare(ctx)
    config = dict(setup.space.paper)
    student_macs = count_macs(tech.build(config, ctx).model, example)  # not part of the trial
    t0 = time.perf_counter()
    cand = tech.build(config, ctx)
    outcome = tech.fit(cand, config, ctx)
    trial_s = time.perf_counter() - t0
    fb = outcome.train.seconds_forward_backward
    rows += _speed("student training (fwd+bwd)", outcome.train.clips_per_second, student_macs,
                   name, f"paper student, {sum(p.numel() for p in cand.model.parameters()):,} "
                         "params, kd loss")
    rows.append(("kd trial outside fwd+bwd", f"{100 * (1 - fb / trial_s):.1f} %",
                 f"{trial_s:.1f} s trial, {fb:.1f} s fwd+bwd, {outcome.train.seconds_eval:.1f} s"
                 f" eval, {args.epochs} epochs"))
    if device.type == "cuda":
        rows.append(_amp_check(setup, args.epochs))
    else:
        rows.append(("bf16 autocast vs fp32", "n/a", "autocast is used on CUDA only"))
    if args.compile:
        rows += _compile_check(setup, args.epochs)
    rows.append(_search_utilisation(args.home, device, args.search_jobs, args.search_trials,
                                    args.epochs))

    table = Table(title=f"asc-auto throughput on {root.name} ({n_clips} clips, "
                        f"{ctx.features.x.shape[-1]} frames), {name}", title_justify="left")
    for col in ("measure", "value", "detail"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    run_script(main)
