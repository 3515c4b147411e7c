"""One change at a time, on real data: the paper configuration trained with and without it.
Prints numbers, asserts nothing.

    # AclNet crops from the recorded part of short clips vs from anywhere in the padded clip
    .venv/bin/python benchmarks/ablation.py --technique int8 --data ../shared/datasets/office16 \
        --epochs 60 --seeds 3 --arm padding augment.skip_padding=false --arm content

    # AclNet distilled from stored outputs of another model (predict --logits) vs alone
    .venv/bin/python benchmarks/ablation.py --technique int8 --data ../shared/datasets/office16 \
        --epochs 40 --teacher-logits baseline.npz --arm alone \
        --arm taught distill_weight=0.5 distill_temperature=4

    # the kd student's global pooling: the paper's average vs max over the padded time axis
    .venv/bin/python benchmarks/ablation.py --technique kd --data ../shared/datasets/office16 \
        --arm avg --arm max pool=max

An arm is a name and `table.key=value` (a space table value) or `param=value` (the paper
configuration's value) settings; values are read as TOML, a bare word as a string. Every arm
trains what `retrain` trains for one seed (all of fold1_train, the space's settings, compress,
evaluate fold), with the same seeds; `--epochs` replaces the space's budget in every arm. Arms
run one after the other; give each its own process (`--only`) to use more cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from transfer import context, run_seeds  # benchmarks/ is on sys.path when run as a script

from asc_auto.console import run_script
from asc_auto.io import write_text_atomic
from asc_auto.stats import binomial_se, mean_se
from asc_auto.techniques.base import get_technique
from asc_auto.transfer import resolve_sources


def parse_arm(words: list[str]) -> tuple[str, dict[str, dict[str, Any]], dict[str, Any]]:
    """`name table.key=value param=value ...` -> (name, table overrides, paper overrides)."""
    name, tables, params = words[0], {}, {}
    for word in words[1:]:
        key, sep, raw = word.partition("=")
        if not sep:
            raise SystemExit(f"arm {name}: {word!r} is not key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:  # a bare word: a string (pool=max)
            value = raw
        if "." in key:
            table, field = key.split(".", 1)
            tables.setdefault(table, {})[field] = value
        else:
            params[key] = value
    return name, tables, params


def pm(values: list[float]) -> str:
    """Mean ± its standard error in %, the mean alone for one run."""
    mean = f"{100 * statistics.fmean(values):.1f}"
    return f"{mean} ± {100 * mean_se(values):.1f}" if len(values) > 1 else mean


def show(args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    table = Table(title=f"{args.technique} paper configuration on {args.data.name}: evaluate "
                  f"accuracy % (mean ± SE over seeds; one run's binomial SE in brackets), "
                  f"{platform.machine()}, {os.cpu_count()} CPUs", title_justify="left")
    teachers = any("teacher_accuracy" in r for r in results.values())
    for col in ("arm", "settings", "epochs", "seeds", "deployed", "fp32", "s per seed",
                *(("teacher",) if teachers else ())):
        table.add_column(col, justify="right")
    for name, r in results.items():
        accs = [x["accuracy"] for x in r["runs"]]
        fp32 = [x["accuracy_fp32"] for x in r["runs"]]
        one = binomial_se(statistics.fmean(accs), r["evaluate_clips"])
        teacher = r.get("teacher_accuracy")
        table.add_row(name, " ".join(r["settings"]) or "-", str(r["epochs"]), str(len(accs)),
                      f"{pm(accs)} (±{100 * one:.1f})", pm(fp32),
                      f"{statistics.fmean(x['seconds'] for x in r['runs']):.0f}",
                      *((("-" if teacher is None else pm([teacher])),) if teachers else ()))
    Console(width=160).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--technique", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--arm", nargs="+", action="append", required=True,
                        metavar="NAME [KEY=VALUE ...]")
    parser.add_argument("--only", default=None, help="run only the arm of this name")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: the space's budget)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--space", type=Path, default=None, help="default: the shipped space")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--home", type=Path, default=None, help="caches (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="results as JSON")
    parser.add_argument("--teacher-logits", type=Path, action="append", default=[],
                        metavar="FILE", help="stored teacher outputs every arm may distil from "
                        "(int8, lt: arms set distill_weight / distill_temperature)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.home = args.home or Path(tempfile.mkdtemp(prefix="asc-ablation-"))
    technique = get_technique(args.technique)
    sources = resolve_sources(technique.name, technique.shape_params, technique.teacher_files,
                              teacher_logits=args.teacher_logits)
    results: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for words in args.arm:
        name, tables, params = parse_arm(words)
        if args.only and name != args.only:
            continue
        print(f"{args.data.name}: {args.technique} arm {name} {' '.join(words[1:])}", flush=True)
        ctx = context(technique, args.data, args, overrides=tables, sources=sources)
        # What a search records once per study (kd: trains or loads the teacher, cached for the
        # seeds below); its evaluate accuracy is the "teacher >= baseline" target of issue 10.
        prepared = technique.prepare(ctx)
        results[name] = {"settings": words[1:],
                         **run_seeds(technique, ctx, args.seeds, args.first_seed, params)}
        if prepared.get("teacher_val_accuracy") is not None:
            results[name]["teacher_accuracy"] = prepared["teacher_val_accuracy"]
            print(f"  teacher: evaluate {prepared['teacher_val_accuracy']:.4f}", flush=True)
        if args.out:  # after every arm: a stopped run keeps the arms it finished
            write_text_atomic(args.out, json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                 "wall_seconds": time.perf_counter() - t0}, indent=1))
    wall = time.perf_counter() - t0
    show(args, results)
    print(f"wall time {wall / 60:.1f} min")


if __name__ == "__main__":
    run_script(main)
