"""Transfer learning and external teachers on real data (issue 13). Prints numbers, asserts
nothing.

    # AclNet (the int8 technique's model) pretrained on fsdd, then trained on office16, against
    # the same from scratch: the paper configuration, all of fold1_train, evaluate fold
    .venv/bin/python benchmarks/transfer.py aclnet --pretrain-data ../shared/datasets/fsdd \
        --data ../shared/datasets/office16 --pretrain-epochs 30 --epochs 150 --seeds 3

    # kd on office16: the student distilled from an ensemble of M teachers read from stored
    # outputs (--teacher-logits files this script writes from M VGGs of seeds 1..M), against the
    # single trained teacher (seed 0) that a kd search trains by default
    .venv/bin/python benchmarks/transfer.py kd --data ../shared/datasets/office16 \
        --members 3 --teacher-epochs 30 --epochs 130 --seeds 3

Both run what `retrain` runs for one seed (train on all of fold1_train with the shipped space's
settings and the paper configuration, compress, score the evaluate fold), without a search: a
search would add its own noise and cost to the comparison, which is about where training starts.
`--epochs` replaces the space's budget (its min_clips_seen included) so both arms get the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from asc_auto.console import run_script
from asc_auto.context import ContextSettings, TrialContext, build_context
from asc_auto.cost import count_text, duration_text
from asc_auto.pretrain import PretrainOptions, card_path, pretrain
from asc_auto.retrain import correct_clips, per_identifier
from asc_auto.space import default_space_file
from asc_auto.stats import binomial_se
from asc_auto.teacher import ensure_teacher, ensure_teachers, teacher_settings
from asc_auto.teacher_logits import write_teacher_logits
from asc_auto.techniques.base import Technique, get_technique
from asc_auto.train import resolve_device
from asc_auto.transfer import FileRef, Sources, resolve_sources


def context(technique: Technique, data: Path, args: argparse.Namespace,
            sources: Sources = Sources(), overrides: dict[str, Any] | None = None
            ) -> TrialContext:
    """All of fold1_train to train on, the evaluate fold to score (retrain's context)."""
    return build_context(technique, ContextSettings(
        data=data, space_file=args.space or default_space_file(technique.name),
        rule="dcase2020", budget_kb=500.0, home=args.home, epochs=args.epochs,
        overrides=overrides or {}, progress=False, val_fraction=None, sources=sources),
        status=lambda msg: print(f"  {msg}", flush=True))


def run_seeds(technique: Technique, ctx: TrialContext, seeds: int, first_seed: int = 0,
              params: dict[str, Any] | None = None,
              on_seed: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The paper configuration (with `params` over it) trained with each seed: deployed and FP32
    evaluate accuracy. `first_seed` lets a stopped or short run be extended with the seeds it
    lacks; `on_seed` gets the result so far after each seed (to be saved: a default-budget seed
    can take an hour)."""
    config = {**ctx.space.paper, **(params or {})}
    runs = []
    for seed in range(first_seed, first_seed + seeds):
        t0 = time.perf_counter()
        ctx.train_cfg = dataclasses.replace(ctx.train_cfg, seed=seed)
        torch.manual_seed(seed)
        cand = technique.build(config, ctx)
        technique.initialise(cand, ctx)
        outcome = technique.fit(cand, config, ctx)
        device = "cpu" if cand.precision.value == "int8" else resolve_device(ctx.train_cfg.device)
        scores = technique.evaluate(outcome.deployed, *ctx.val_xy, ctx, device=device)
        acc = scores.accuracy
        labels = ctx.val_xy[1].cpu().numpy()
        by_source = per_identifier(ctx, scores.probs, labels)
        runs.append({"seed": seed, "accuracy": acc, "accuracy_fp32": outcome.accuracy_fp32,
                     "precision": cand.precision.value, "per_identifier": by_source,
                     # each evaluate clip right or wrong: arms compared clip by clip (ablation)
                     "correct": correct_clips(scores.probs, labels),
                     # which classes a seed got wrong: office16's kd seeds spanned 68-94 %
                     "per_class": [round(p, 4) for p in scores.per_class],
                     # int8 with QAT epochs: the same network right after PTQ, before QAT
                     **({"accuracy_ptq": outcome.info["accuracy_ptq"]}
                        if "accuracy_ptq" in outcome.info else {}),
                     "seconds": round(time.perf_counter() - t0, 1)})
        sources = "".join(f", {k} {v:.4f}" for k, v in by_source.items())
        ptq = f", before QAT {runs[-1]['accuracy_ptq']:.4f}" if "accuracy_ptq" in runs[-1] else ""
        print(f"  seed {seed}: {cand.precision.value} {acc:.4f}, fp32 "
              f"{outcome.accuracy_fp32:.4f}{ptq}{sources} ({runs[-1]['seconds']:.0f} s"
              f"{seeds_left_text(runs, seeds)})", flush=True)
        if on_seed is not None:
            on_seed(_seeds_result(runs, ctx))
    return _seeds_result(runs, ctx)


def _seeds_result(runs: list[dict[str, Any]], ctx: TrialContext) -> dict[str, Any]:
    return {"runs": list(runs), "epochs": ctx.train_cfg.epochs,
            "train_clips": len(ctx.train_files), "evaluate_clips": len(ctx.val_files)}


def seeds_left_text(runs: list[dict[str, Any]], seeds: int) -> str:
    """"; about 20.0 min for the 2 seeds left": hours-long arms say when they end (the seeds so
    far at their mean time; nothing after the last seed)."""
    left = seeds - len(runs)
    if left <= 0:
        return ""
    per_seed = statistics.fmean(run["seconds"] for run in runs)
    return f"; about {duration_text(left * per_seed)} for the {count_text(left, 'seed')} left"


def mean_std(values: list[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if len(values) > 1 else f"{100 * mean:.1f}"


def aclnet(args: argparse.Namespace) -> dict[str, Any]:
    technique = get_technique("int8")
    if args.pretrained:  # a checkpoint an earlier run wrote: its card says how good it is
        out = args.pretrained
        card = json.loads(card_path(out).read_text())
        acc = card["accuracy"]
        print(f"pretrained checkpoint {out} (its card: evaluate {acc['evaluate']:.4f} on "
              f"{acc['clips']} clips of {card['dataset']['path']})", flush=True)
        result: dict[str, Any] = {"pretrain": {
            "accuracy": acc["evaluate"], "seconds": card["seconds"],
            "evaluate_clips": acc["clips"], "dataset": Path(card["dataset"]["path"]).name,
            "checkpoint": str(out)}}
    else:
        out = args.home / f"{args.pretrain_data.name}-aclnet.safetensors"
        print(f"pretraining AclNet on {args.pretrain_data} ({args.pretrain_epochs} epochs)",
              flush=True)
        pre = pretrain(PretrainOptions(technique="int8", data=args.pretrain_data, out=out,
                                       space=args.space, epochs=args.pretrain_epochs,
                                       home=args.home, progress=False),
                       status=lambda msg: print(f"  {msg}", flush=True))
        print(f"  pretrained: evaluate {pre.accuracy:.4f} on {pre.evaluate_clips} clips, "
              f"{pre.seconds:.0f} s", flush=True)
        result = {"pretrain": {"accuracy": pre.accuracy, "seconds": pre.seconds,
                               "evaluate_clips": pre.evaluate_clips,
                               "dataset": args.pretrain_data.name}}
    for arm in ("scratch", "pretrained"):
        print(f"{args.data.name}: AclNet from {arm}", flush=True)
        sources = (resolve_sources("int8", technique.shape_params, False, init_from=out)
                   if arm == "pretrained" else Sources())
        result[arm] = run_seeds(technique, context(technique, args.data, args, sources),
                                args.seeds, args.first_seed)
    return result


def kd(args: argparse.Namespace) -> dict[str, Any]:
    technique = get_technique("kd")
    teacher = {"epochs": args.teacher_epochs, "min_clips_seen": 0}
    if args.teacher_width is not None:
        teacher["width"] = args.teacher_width
    single_ctx = context(technique, args.data, args, overrides={"teacher": teacher})
    settings = teacher_settings(single_ctx.space.tables["teacher"], str(single_ctx.space.file))
    single = ensure_teachers(single_ctx, settings)
    print(f"single teacher (seed 0): evaluate {single.val_accuracy:.4f}", flush=True)
    files = []
    for k in range(1, args.members + 1):  # the ensemble's members, stored as teacher outputs
        member = ensure_teacher(single_ctx, settings, seed_offset=k)
        path = args.home / f"{args.data.name}-vgg-seed{k}.npz"
        write_teacher_logits(path, member.filenames, member.logits, member.embeddings,
                             labels=single_ctx.dataset.labels)
        files.append(path)
        print(f"member seed {k}: evaluate {member.val_accuracy:.4f} -> {path.name}", flush=True)
    ens_ctx = context(technique, args.data, args, overrides={"teacher": teacher},
                      sources=Sources(teacher_logits=tuple(FileRef.of(p, "logits")
                                                           for p in files)))
    ensemble = ensure_teachers(ens_ctx, settings)
    print(f"ensemble of {args.members} from stored logits: evaluate "
          f"{ensemble.val_accuracy:.4f}", flush=True)
    result: dict[str, Any] = {
        "teachers": {"single": single.val_accuracy, "ensemble": ensemble.val_accuracy,
                     "members": [m.val_accuracy for m in ensemble.members],
                     "params_each": single.params}}
    for arm, ctx in (("single teacher", single_ctx), ("ensemble (stored logits)", ens_ctx)):
        print(f"{args.data.name}: kd student from the {arm}", flush=True)
        result[arm] = run_seeds(technique, ctx, args.seeds, args.first_seed)
    return result


def show(kind: str, result: dict[str, Any], args: argparse.Namespace, wall: float) -> None:
    table = Table(title=f"{kind} on {args.data.name}: evaluate accuracy % (mean ± std over "
                  f"{args.seeds} seeds; one seed's SE in brackets), {platform.machine()}, "
                  f"{os.cpu_count()} CPUs, {wall / 60:.0f} min", title_justify="left")
    for col in ("start", "epochs", "deployed", "fp32", "s per seed"):
        table.add_column(col, justify="right")
    for arm, r in result.items():
        if not isinstance(r, dict) or "runs" not in r:
            continue
        accs = [x["accuracy"] for x in r["runs"]]
        table.add_row(arm, str(r["epochs"]),
                      f"{mean_std(accs)} (±{100 * binomial_se(accs[0], r['evaluate_clips']):.1f})",
                      mean_std([x["accuracy_fp32"] for x in r["runs"]]),
                      f"{statistics.fmean(x['seconds'] for x in r['runs']):.0f}")
    Console(width=140).print(table)
    if "teachers" in result:
        t = result["teachers"]
        print(f"teachers (evaluate): single {100 * t['single']:.1f}, ensemble "
              f"{100 * t['ensemble']:.1f}, members "
              f"{', '.join(f'{100 * m:.1f}' for m in t['members'])}")
    if "pretrain" in result:
        p = result["pretrain"]
        print(f"pretraining: evaluate {100 * p['accuracy']:.1f} on {p['evaluate_clips']} clips "
              f"of {p['dataset']}, {p['seconds']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["aclnet", "kd"])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pretrain-data", type=Path, help="aclnet: the other dataset")
    parser.add_argument("--pretrain-epochs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs on --data (default: the space's budget)")
    parser.add_argument("--members", type=int, default=3, help="kd: ensemble members")
    parser.add_argument("--teacher-epochs", type=int, default=30)
    parser.add_argument("--teacher-width", type=float, default=None)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first..first+seeds-1 (to add seeds to an earlier run)")
    parser.add_argument("--pretrained", type=Path, default=None,
                        help="aclnet: reuse a checkpoint an earlier run wrote (its .json card "
                             "beside it) instead of pretraining again")
    parser.add_argument("--space", type=Path, default=None, help="default: the shipped space")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--home", type=Path, default=None, help="caches (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="results as JSON")
    args = parser.parse_args()
    if args.kind == "aclnet" and args.pretrain_data is None and args.pretrained is None:
        parser.error("aclnet needs --pretrain-data or --pretrained")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.home = args.home or Path(tempfile.mkdtemp(prefix="asc-transfer-"))
    t0 = time.perf_counter()
    result = aclnet(args) if args.kind == "aclnet" else kd(args)
    wall = time.perf_counter() - t0
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "result": result, "wall_seconds": wall}, indent=1))
    show(args.kind, result, args, wall)


if __name__ == "__main__":
    run_script(main)
