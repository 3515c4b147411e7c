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

    # earlier runs' arms as one table (an arm's seeds split over runs pooled, another thread
    # count another row), each against the reference with the SE of the difference
    .venv/bin/python benchmarks/ablation.py --show docs/results/office16-27ep-retrain-matched.json \
        --reference "baseline paper (1 thread)"

An arm is a name and `table.key=value` (a space table value) or `param=value` (the paper
configuration's value) settings; values are read as TOML, a bare word as a string.
`portfolio=NAME` starts the arm from that `[[portfolio]]` entry of the space instead of the paper
configuration (its other settings over it), so a shipped configuration is named, not copied:

    .venv/bin/python benchmarks/ablation.py --technique lt --data ../shared/datasets/office16 \
        --arm ticket portfolio=wide-shallow --arm unfinished portfolio=wide-shallow finish_epochs=0

Every arm
trains what `retrain` trains for one seed (all of fold1_train, the space's settings, compress,
evaluate fold), with the same seeds (bit-identical weights at one thread count:
tests/test_benchmark_arms.py); `--epochs` replaces the space's budget in every arm. Arms
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table
from transfer import context, run_seeds  # benchmarks/ is on sys.path when run as a script

from asc_auto.against_baseline import difference, points_with_clips_text
from asc_auto.console import run_script
from asc_auto.io import write_text_atomic
from asc_auto.space import SearchSpace, default_space_file, load_technique_space
from asc_auto.stats import binomial_se, mean_se, paired_clip_se
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


def from_portfolio(arm: str, params: dict[str, Any], space: SearchSpace) -> dict[str, Any]:
    """An arm's `param=value` settings with `portfolio=NAME` replaced by that entry's full point
    (the arm's other values over it): the space file stays the one place its values live, where a
    script's copy of them went stale (benchmarks/gpu_office16.sh's lt arm lacked the entry's
    finish epochs until 2026-12-06)."""
    if "portfolio" not in params:
        return params
    wanted = str(params["portfolio"])
    entry = next((e for e in space.portfolio if e.name == wanted), None)
    if entry is None:
        names = ", ".join(e.name for e in space.portfolio) or "none"
        raise SystemExit(f"arm {arm}: portfolio={wanted}: {space.file} has no such [[portfolio]] "
                         f"entry; fix: name one of its entries ({names})")
    return {**entry.point, **{k: v for k, v in params.items() if k != "portfolio"}}


def pm(values: list[float]) -> str:
    """Mean ± its standard error in %, the mean alone for one run."""
    mean = f"{100 * statistics.fmean(values):.1f}"
    return f"{mean} ± {100 * mean_se(values):.1f}" if len(values) > 1 else mean


@dataclass
class ArmRow:
    """One arm's runs, as a table row: the arm of one run, or one arm pooled over runs."""

    label: str
    settings: list[str]
    epochs: int
    evaluate_clips: int
    runs: list[dict[str, Any]]
    teacher: float | None = None


def run_rows(results: dict[str, dict[str, Any]]) -> list[ArmRow]:
    """This run's arms as rows."""
    return [ArmRow(name, r["settings"], r["epochs"], r["evaluate_clips"], r["runs"],
                   r.get("teacher_accuracy")) for name, r in results.items()]


def ablation_outputs(doc: Any) -> list[dict[str, Any]]:
    """The ablation outputs in a JSON document: an --out file, or a dict holding several of
    them (docs/results/office16-27ep-retrain-matched.json); anything else in it is left out."""
    def is_output(value: Any) -> bool:
        return isinstance(value, dict) and "args" in value and "results" in value
    if is_output(doc):
        return [doc]
    return [v for v in doc.values() if is_output(v)] if isinstance(doc, dict) else []


def merged_rows(docs: list[dict[str, Any]]) -> list[ArmRow]:
    """Arms of earlier runs, one row per technique, arm, settings, epochs and thread count: the
    seeds of one arm split over runs (`--first-seed`) are pooled, a seed twice kept once (the
    first). Another thread count is another row: the same seed trains another draw there
    (docs/GUIDE.md "Same seed, other threads")."""
    rows: dict[tuple[Any, ...], ArmRow] = {}
    for doc in docs:
        technique, threads = doc["args"]["technique"], doc["args"].get("threads", "None")
        for name, r in doc["results"].items():
            key = (technique, name, tuple(r["settings"]), r["epochs"], threads)
            plural = "" if threads == "1" else "s"
            count = "" if threads == "None" else f" ({threads} thread{plural})"
            label = f"{technique} {name}{count}"
            row = rows.setdefault(key, ArmRow(label, r["settings"], r["epochs"],
                                              r["evaluate_clips"], [], r.get("teacher_accuracy")))
            seen = {run["seed"] for run in row.runs}
            row.runs.extend(run for run in r["runs"] if run["seed"] not in seen)
    for row in rows.values():
        row.runs.sort(key=lambda run: run["seed"])
    return list(rows.values())


def show(title: str, rows: list[ArmRow], reference: str | None = None,
         here: bool = True) -> None:
    """The rows' accuracies, and each one's difference from the `reference` row (default: the
    first) in points ± its standard error over independent seeds (and, where both rows' runs
    kept which evaluate clips they got right, with the clips too, paired clip by clip).
    `here`: trained on this machine (its name in the title); rows read from files were not."""
    machine = f", {platform.machine()}, {os.cpu_count()} CPUs" if here else ""
    table = Table(title=f"{title}: evaluate accuracy % (mean ± SE over seeds; one run's binomial "
                  f"SE in brackets){machine}", title_justify="left")
    ref = next((r for r in rows if r.label == reference), None) if reference else (
        rows[0] if rows else None)
    if reference and ref is None:
        raise SystemExit(f"--reference {reference!r}: no such row; the rows are "
                         + ", ".join(repr(r.label) for r in rows))
    teachers = any(r.teacher is not None for r in rows)
    vs = f"vs {ref.label}" if ref else "vs"
    for col in ("arm", "settings", "epochs", "seeds", "deployed", "fp32", vs, "s per seed",
                *(("teacher",) if teachers else ())):
        table.add_column(col, justify="right")
    ref_accs = [x["accuracy"] for x in ref.runs] if ref else []
    for r in rows:
        accs = [x["accuracy"] for x in r.runs]
        fp32 = [x["accuracy_fp32"] for x in r.runs]
        one = binomial_se(statistics.fmean(accs), r.evaluate_clips)
        points, se = difference(accs, ref_accs) if ref_accs else (0.0, None)
        # runs that kept their clips (2026-12-05 on) add the clips' part
        clips = None if r is ref or ref is None else paired_clip_se(
            [x.get("correct", "") for x in r.runs], [x.get("correct", "") for x in ref.runs])
        gap = "-" if r is ref else points_with_clips_text(
            100 * points, None if se is None else 100 * se, None if clips is None else 100 * clips)
        table.add_row(r.label, " ".join(r.settings) or "-", str(r.epochs), str(len(accs)),
                      f"{pm(accs)} (±{100 * one:.1f})", pm(fp32), gap,
                      f"{statistics.fmean(x['seconds'] for x in r.runs):.0f}",
                      *((("-" if r.teacher is None else pm([r.teacher])),) if teachers else ()))
    Console(width=200).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--technique")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--arm", nargs="+", action="append", metavar="NAME [KEY=VALUE ...]")
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
    parser.add_argument("--show", type=Path, nargs="+", metavar="JSON",
                        help="train nothing: the arms of earlier --out files (or files holding "
                             "several), one arm's seeds from several runs pooled")
    parser.add_argument("--reference", default=None, metavar="ROW",
                        help="the row the others are compared with [default: the first]")
    args = parser.parse_args()
    if args.show:
        docs = []
        for file in args.show:
            try:
                found = ablation_outputs(json.loads(file.read_text()))
            except (OSError, ValueError) as err:
                raise SystemExit(f"{file}: not readable as JSON ({err}); fix: pass --out files "
                                 "of earlier ablation.py runs") from err
            if not found:
                raise SystemExit(f"{file}: holds no ablation.py output; fix: pass --out files "
                                 "of earlier ablation.py runs")
            docs += found
        show(", ".join(str(f) for f in args.show), merged_rows(docs), args.reference,
             here=False)
        return
    if not (args.technique and args.data and args.arm):
        parser.error("--technique, --data and --arm are required (or --show)")
    names = [words[0] for words in args.arm]
    if args.reference and args.reference not in names:  # said before hours of training
        parser.error(f"--reference {args.reference}: not one of the arms ({', '.join(names)})")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.home = args.home or Path(tempfile.mkdtemp(prefix="asc-ablation-"))
    technique = get_technique(args.technique)
    space = load_technique_space(args.space or default_space_file(technique.name), technique)
    arms = [(words, *parse_arm(words)) for words in args.arm]
    # portfolio names resolved before any training: a misspelt one fails now, not hours in
    arms = [(words, name, tables, from_portfolio(name, params, space))
            for words, name, tables, params in arms]
    sources = resolve_sources(technique.name, technique.shape_params, technique.teacher_files,
                              teacher_logits=args.teacher_logits)
    results: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for words, name, tables, params in arms:
        if args.only and name != args.only:
            continue
        print(f"{args.data.name}: {args.technique} arm {name} {' '.join(words[1:])}", flush=True)
        ctx = context(technique, args.data, args, overrides=tables, sources=sources)
        # What a search records once per study (kd: trains or loads the teacher, cached for the
        # seeds below); its evaluate accuracy is the "teacher >= baseline" target of issue 10.
        prepared = technique.prepare(ctx)
        named = any(w.startswith("portfolio=") for w in words[1:])
        head = {"settings": words[1:],
                **({"params": params} if named else {})}  # the entry's values written out
        if prepared.get("teacher_val_accuracy") is not None:
            head["teacher_accuracy"] = prepared["teacher_val_accuracy"]
            print(f"  teacher: evaluate {prepared['teacher_val_accuracy']:.4f}", flush=True)

        def save(so_far: dict[str, Any], name: str = name, head: dict[str, Any] = head) -> None:
            # after every seed: a stopped run keeps the seeds it finished (--show reads them)
            results[name] = {**head, **so_far}
            if args.out:
                write_text_atomic(args.out, json.dumps(
                    {"args": {k: str(v) for k, v in vars(args).items()}, "results": results,
                     "wall_seconds": time.perf_counter() - t0}, indent=1))

        save(run_seeds(technique, ctx, args.seeds, args.first_seed, params, on_seed=save))
    wall = time.perf_counter() - t0
    show(f"{args.technique} on {args.data.name}", run_rows(results), args.reference)
    print(f"wall time {wall / 60:.1f} min")


if __name__ == "__main__":
    run_script(main)
