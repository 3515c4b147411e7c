"""Which quantization-aware fine-tuning (QAT) helps the `int8` technique, on the same networks?
Prints numbers, asserts nothing.

On office16's three rotated evaluate folds the int8 pick's 3 QAT epochs (a tenth of the searched
peak rate, the searched mixup, BatchNorm frozen) cost 2.2 ± 0.6 points against plain PTQ
(docs/BENCHMARKS.md, "QAT against plain PTQ"). This script asks whether a gentler QAT does
better: each seed trains the FP32 network once (what `retrain` trains: all of fold1_train, the
evaluate fold scored), quantizes it with NNCF as the technique does, then fine-tunes a fresh
PTQ copy once per variant (`--variant NAME lr_factor=F mixup=A epochs=E`), so every variant is
paired with plain PTQ on the same network, clip by clip.

    .venv/bin/python benchmarks/qat_variants.py --data R/fold-1 --epochs 27 --seeds 3 \
        --threads 2 --out fold-1-qat-variants.json \
        --params width=1.0 llf1=9 llf2=77 depth=4 crops=content llf_compress=log1p \
                 lr=0.008236 mixup_alpha=0.2609 calibration_clips=154 \
        --variant shipped lr_factor=0.1 mixup=0.2609 epochs=3 \
        --variant gentle lr_factor=0.01 mixup=0 epochs=3

`--show FILE ...` pools the variants of earlier --out files (folds as further seeds) against
PTQ: mean difference ± its standard error over seeds, and clip-level counts. The --out files
also hold the arms as ablation.py writes them (`ptq` and each variant), so
`rotated_evaluate.py pool` scores them over rotated folds against the baseline CNN's runs.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import parse_arm
from transfer import context

from asc_auto.console import run_script
from asc_auto.io import write_text_atomic
from asc_auto.retrain import correct_clips
from asc_auto.techniques.base import get_technique
from asc_auto.techniques.int8 import fine_tune, quantize_aclnet

VARIANT_KEYS = {"lr_factor", "mixup", "epochs"}
OPTIONAL_KEYS = {"before_ptq"}


def parse_variant(words: list[str]) -> tuple[str, dict[str, float]]:
    """`NAME lr_factor=F mixup=A epochs=E [before_ptq=1]` -> (name, settings); the first three
    required. `before_ptq=1`: the same fine-tuning on the FP32 network, then PTQ (the control
    that tells a gain from quantization awareness from one of the fine-tuning alone)."""
    name, tables, values = parse_arm(words)
    if tables or not VARIANT_KEYS <= set(values) <= VARIANT_KEYS | OPTIONAL_KEYS:
        raise SystemExit(f"--variant {name}: give lr_factor=, mixup=, epochs= and optionally "
                         f"before_ptq=1 (got {' '.join(words[1:]) or 'nothing'})")
    return name, {k: float(v) for k, v in values.items()}


def score(technique: Any, model: torch.nn.Module, ctx: Any) -> tuple[float, str]:
    """Evaluate-fold accuracy and the clip-by-clip right/wrong string, on the CPU."""
    scores = technique.evaluate(model, *ctx.val_xy, ctx, device="cpu")
    return scores.accuracy, correct_clips(scores.probs, ctx.val_xy[1].cpu().numpy())


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every seed: FP32 training, PTQ, then each variant's QAT on a fresh PTQ copy."""
    technique = get_technique("int8")
    _, tables, params = parse_arm(["params", *args.params])
    variants = [parse_variant(words) for words in args.variant]
    ctx = context(technique, args.data, args, overrides=tables)
    config = {**ctx.space.paper, **params, "qat_epochs": 0}
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        t0 = time.perf_counter()
        ctx.train_cfg = dataclasses.replace(ctx.train_cfg, seed=seed)
        torch.manual_seed(seed)
        cand = technique.build(config, ctx)
        technique.initialise(cand, ctx)
        outcome = technique.fit(cand, config, ctx)  # qat_epochs 0: FP32 training + PTQ
        fp32 = outcome.accuracy_fp32
        ptq, ptq_clips = score(technique, outcome.deployed, ctx)
        row: dict[str, Any] = {"seed": seed, "fp32": fp32, "ptq": ptq, "ptq_correct": ptq_clips,
                               "variants": {}}
        print(f"  seed {seed}: fp32 {fp32:.4f}, ptq {ptq:.4f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        for name, v in variants:
            t1 = time.perf_counter()
            how = {"epochs": int(v["epochs"]), "lr_factor": v["lr_factor"],
                   "mixup_alpha": v["mixup"]}
            extra: dict[str, Any] = {}
            if v.get("before_ptq"):  # fine-tune a copy of the FP32 network, then quantize it
                fp32_copy = copy.deepcopy(cand.model)
                fine_tune(fp32_copy, config, ctx, **how)
                extra["fp32"] = score(technique, fp32_copy.eval(), ctx)[0]
                deployed = quantize_aclnet(fp32_copy, config, ctx)
            else:
                # cand.model is the trained FP32 network (fit trains in place): a fresh PTQ of it
                deployed = quantize_aclnet(cand.model, config, ctx)
                fine_tune(deployed, config, ctx, **how)
            acc, clips = score(technique, deployed.eval(), ctx)
            row["variants"][name] = {"accuracy": acc, "correct": clips, **v, **extra}
            print(f"    {name}: {acc:.4f} ({acc - ptq:+.4f} against PTQ, "
                  f"{time.perf_counter() - t1:.0f} s)", flush=True)
        runs.append(row)
        if args.out:
            write_text_atomic(args.out, json.dumps(
                {"args": {"technique": "int8", **{k: str(v) for k, v in vars(args).items()}},
                 "runs": runs, "results": as_arms(runs, args)}, indent=1))
    return {"runs": runs}


def as_arms(runs: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """The runs as ablation.py's arms (`ptq` and each variant), so that
    `rotated_evaluate.py pool` scores them over several folds against another technique's arm
    (the baseline CNN's), clip by clip."""
    epochs = args.epochs if args.epochs is not None else "space"
    arms: dict[str, Any] = {"ptq": {"settings": args.params, "epochs": epochs, "runs": [
        {"seed": r["seed"], "accuracy": r["ptq"], "correct": r["ptq_correct"]} for r in runs]}}
    for name in dict.fromkeys(n for r in runs for n in r["variants"]):
        arms[name] = {"settings": args.params, "epochs": epochs, "runs": [
            {"seed": r["seed"], "accuracy": r["variants"][name]["accuracy"],
             "correct": r["variants"][name]["correct"]} for r in runs if name in r["variants"]]}
    return arms


def show(files: list[Path]) -> None:
    Console().print(table(files))


def table(files: list[Path]) -> Table:
    """Each variant against PTQ over every seed of every file (a fold's seeds are its own)."""
    runs = []
    for file in files:
        try:
            runs += json.loads(file.read_text())["runs"]
        except (OSError, ValueError, KeyError) as err:
            raise SystemExit(f"{file}: not a qat_variants.py --out file ({err}); fix: pass "
                             "files this script wrote") from err
    names = list(dict.fromkeys(n for r in runs for n in r["variants"]))
    out = Table(title=f"QAT variants against plain PTQ, {len(runs)} seeds "
                        f"({', '.join(f.name for f in files)})")
    for col in ("variant", "accuracy", "minus PTQ (± se over seeds)", "clips gained / lost",
                "seeds better / worse"):
        out.add_column(col, justify="left" if col == "variant" else "right")
    ptq = [r["ptq"] for r in runs]
    fp32 = [r["fp32"] for r in runs]
    out.add_row("FP32", f"{statistics.mean(fp32):.1%}", "", "", "")
    out.add_row("PTQ", f"{statistics.mean(ptq):.1%}", "", "", "")
    for name in names:
        pairs = [(r["ptq"], r["variants"][name]) for r in runs if name in r["variants"]]
        diffs = [v["accuracy"] - p for p, v in pairs]
        se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
        gained = lost = 0
        for r in runs:
            if name in r["variants"]:
                for a, b in zip(r["ptq_correct"], r["variants"][name]["correct"], strict=True):
                    gained += a == "0" and b == "1"
                    lost += a == "1" and b == "0"
        tuned = [v["fp32"] for _, v in pairs if "fp32" in v]  # before_ptq: FP32 after tuning
        label = f"{name} (FP32 tuned {statistics.mean(tuned):.1%})" if tuned else name
        out.add_row(label, f"{statistics.mean(v['accuracy'] for _, v in pairs):.1%}",
                      f"{statistics.mean(diffs) * 100:+.1f} ± {se * 100:.1f}",
                      f"{gained} / {lost}",
                      f"{sum(d > 0 for d in diffs)} / {sum(d < 0 for d in diffs)}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--params", nargs="*", default=[], metavar="KEY=VALUE",
                        help="over the space's paper configuration (table.key= for tables)")
    parser.add_argument("--variant", nargs="+", action="append", default=[],
                        metavar="NAME lr_factor=F mixup=A epochs=E")
    parser.add_argument("--epochs", type=int, default=None,
                        help="FP32 training epochs (default: the space's budget)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--space", type=Path, default=None, help="default: the shipped space")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--home", type=Path, default=None, help="caches (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="results as JSON, after each seed")
    parser.add_argument("--show", type=Path, nargs="+", metavar="JSON",
                        help="train nothing: pool the variants of earlier --out files")
    args = parser.parse_args()
    if args.show:
        show(args.show)
        return
    if not (args.data and args.variant):
        parser.error("--data and at least one --variant are required (or --show)")
    for words in args.variant:  # said before the first seed's training, not after it
        parse_variant(words)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.home = args.home or Path(tempfile.mkdtemp(prefix="asc-qat-"))
    t0 = time.perf_counter()
    run(args)
    print(f"wall time {(time.perf_counter() - t0) / 60:.1f} min")
    if args.out:
        show([args.out])


if __name__ == "__main__":
    run_script(main)
