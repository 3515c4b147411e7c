"""Throughput benchmark on the built-in demo data: prints numbers, asserts nothing.

    .venv/bin/python benchmarks/throughput.py [--home DIR] [--epochs N] [--device auto]

Measures (1) feature extraction (clips/s, cold cache), (2) training throughput of the demo KD
teacher and of the paper's student (clips/s through forward+backward), and (3) the share of one
kd trial's wall time spent outside forward/backward (augmentation, batching, evaluation, INT8/FP16
conversion, bookkeeping).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from asc_auto.data.demo import ensure_demo_dataset
from asc_auto.features.cache import build_features
from asc_auto.search import SearchOptions, prepare_search
from asc_auto.teacher import teacher_settings
from asc_auto.train import resolve_device, train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("studies"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    console = Console()
    rows: list[tuple[str, str, str]] = []

    root = ensure_demo_dataset(args.home / "data")
    opts = SearchOptions(technique="kd", home=args.home, epochs=args.epochs, device=args.device)
    setup = prepare_search(opts, status=lambda m: None)  # warms the shared feature cache
    ctx = setup.context
    n_clips = len(ctx.features.filenames)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_features(setup.dataset, setup.technique.feature_config(setup.space), Path(tmp),
                       progress=False)
        dt = time.perf_counter() - t0
        shutil.rmtree(tmp, ignore_errors=True)
    rows.append(("feature extraction (cold cache)", f"{n_clips / dt:.1f} clips/s",
                 f"{n_clips} clips in {dt:.1f} s"))

    settings = teacher_settings(setup.space.tables["teacher"], str(setup.space.file))
    x, y = ctx.train_xy
    from asc_auto.models.vgg import VggTeacher

    teacher = VggTeacher(settings.vgg_config(x.shape[1], ctx.n_classes))
    tcfg = dataclasses.replace(ctx.train_cfg, epochs=1, batch_size=settings.batch_size)
    res = train_model(teacher, x, y, tcfg, ctx.n_classes)
    rows.append(("teacher training (fwd+bwd)", f"{res.clips_per_second:.1f} clips/s",
                 f"{sum(p.numel() for p in teacher.parameters()):,} params, width "
                 f"{settings.width}"))

    tech = setup.technique
    tech.prepare(ctx)
    config = dict(setup.space.paper)
    t0 = time.perf_counter()
    cand = tech.build(config, ctx)
    outcome = tech.fit(cand, config, ctx)
    trial_s = time.perf_counter() - t0
    fb = outcome.train.seconds_forward_backward
    rows.append(("student training (fwd+bwd)", f"{outcome.train.clips_per_second:.1f} clips/s",
                 f"paper student, {sum(p.numel() for p in cand.model.parameters()):,} params"))
    rows.append(("kd trial outside fwd/bwd", f"{100 * (1 - fb / trial_s):.1f} %",
                 f"{trial_s:.1f} s trial, {fb:.1f} s fwd+bwd, {outcome.train.seconds_eval:.1f} s"
                 f" eval, {args.epochs} epochs"))

    device = resolve_device(args.device)
    table = Table(title=f"asc-auto throughput on {root.name} ({n_clips} clips, "
                        f"{ctx.features.x.shape[-1]} frames), device {device}, "
                        f"{torch.get_num_threads()} threads, {platform.processor() or 'cpu'}")
    for col in ("measure", "value", "detail"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
