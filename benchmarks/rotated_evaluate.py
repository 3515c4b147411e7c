"""More evaluate clips from a small dataset: the same configurations scored on K disjoint evaluate
folds, each trained on the remaining clips. Prints numbers, asserts nothing.

Why: a difference between two models on office16's 66 evaluate clips carries about 4-5 points of
noise from which clips the fold holds, whatever the seeds (docs/BENCHMARKS.md, "The evaluate
fold's own noise"). Fold 1 is the official one; folds 2..K are drawn from fold1_train, whole
identifiers (recordings, speakers) at a time, with the official fold's clips of each label, so
every fold trains on as many clips as the official fold1_train. Three disjoint folds of 66 cut
the clips' part by about sqrt(3).

    # 1. the K datasets (audio linked, not copied; fold 1 keeps the official CSVs verbatim)
    .venv/bin/python benchmarks/rotated_evaluate.py split --data ../shared/datasets/office16 \
        --folds 3 --out /tmp/rot
    # 2. the arms on each fold with ablation.py: the same arms, epochs, seeds and threads
    for f in /tmp/rot/fold-*; do .venv/bin/python benchmarks/ablation.py --technique baseline \
        --data $f --arm paper --epochs 27 --seeds 3 --threads 2 --out $f-baseline.json; done
    # 3. each arm over all folds' clips, against a reference arm, paired clip by clip
    .venv/bin/python benchmarks/rotated_evaluate.py pool /tmp/rot/fold-*.json \
        --reference "baseline paper"

`pool` joins, per arm and seed, the clips each fold's run got right (ablation.py keeps them in
each run's `correct`), so a seed's accuracy is over every fold's clips, and reports the mean ±
its standard error over seeds and clips (`stats.evaluate_se`) and each arm's difference from the
reference ± the seeds' SE, then with the clips (`stats.paired_clip_se`).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from asc_auto.against_baseline import difference, points_with_clips_text
from asc_auto.data.tau import EVALUATE_CSV, SETUP, Clip, load_dataset
from asc_auto.io import write_text_atomic
from asc_auto.stats import evaluate_se, paired_clip_se

TRAIN_CSV = f"{SETUP}/fold1_train.csv"
TEST_CSV = f"{SETUP}/fold1_test.csv"


def rotated_folds(train: tuple[Clip, ...], evaluate: tuple[Clip, ...], folds: int,
                  seed: int = 0) -> list[list[Clip]]:
    """The evaluate clips of each fold: the official ones, then `folds` - 1 disjoint draws from
    `train`, whole identifiers at a time (a recording's clips never straddle train and
    evaluate), each filled up to the official fold's clips of every label and no further
    (short of it where the identifiers left do not add up: `split` prints each fold's counts)."""
    target = Counter(c.label for c in evaluate)
    groups: dict[str, list[Clip]] = {}
    for clip in train:
        groups.setdefault(clip.identifier, []).append(clip)
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    drawn: list[list[Clip]] = [list(evaluate)]
    for k in range(2, folds + 1):
        fold: list[Clip] = []
        have: Counter[str] = Counter()
        for ident in list(order):
            need = Counter(c.label for c in groups[ident])
            if all(have[lab] + n <= target[lab] for lab, n in need.items()):
                fold += groups[ident]
                have += need
                order.remove(ident)
        if not fold:
            raise SystemExit(f"fold {k}: no identifier of fold1_train is left to draw; fix: "
                             "fewer --folds")
        drawn.append(sorted(fold, key=lambda c: c.filename))
    return drawn


def _csv(clips: list[Clip], labelled: bool = True) -> str:
    head = "filename\tscene_label\n" if labelled else "filename\n"
    return head + "".join(f"{c.filename}\t{c.label}\n" if labelled else f"{c.filename}\n"
                          for c in clips)


def write_folds(data: Path, folds: int, out: Path, seed: int = 0) -> list[Path]:
    """One TAU-layout dataset per fold under `out` (fold-1 .. fold-K): meta.csv copied, audio/
    a link to the original's, its own evaluation_setup. Refuses an `out` that holds anything."""
    data, out = data.resolve(), Path(out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out}: not empty; fix: pass a new --out folder")
    ds = load_dataset(data)
    drawn = rotated_folds(ds.train, ds.evaluate, folds, seed)
    everyone = ds.all_clips()
    roots = []
    for k, evaluate in enumerate(drawn, start=1):
        root = out / f"fold-{k}"
        (root / SETUP).mkdir(parents=True)
        shutil.copy2(data / "meta.csv", root / "meta.csv")
        (root / "audio").symlink_to(data / "audio", target_is_directory=True)
        if k == 1:  # the official fold as it is: its order is the batches' order
            for name in (TRAIN_CSV, EVALUATE_CSV, TEST_CSV):
                shutil.copy2(data / name, root / name)
        else:
            held = {c.filename for c in evaluate}
            write_text_atomic(root / TRAIN_CSV,
                              _csv([c for c in everyone if c.filename not in held]))
            write_text_atomic(root / EVALUATE_CSV, _csv(evaluate))
            write_text_atomic(root / TEST_CSV, _csv(evaluate, labelled=False))
        roots.append(root)
    return roots


@dataclass
class Pooled:
    """One arm over every fold: per seed, the clips it got right in fold order, joined."""

    label: str
    folds: list[str]
    seeds: list[int]
    correct: list[str]  # per seed

    @property
    def accuracies(self) -> list[float]:
        return [c.count("1") / len(c) for c in self.correct]


def pool(docs: list[dict[str, Any]]) -> list[Pooled]:
    """Arms of ablation.py outputs (one per fold), pooled per technique, arm, settings and
    epochs over the folds (their `--data`, in name order): only seeds every fold has, and only
    runs that kept their clips."""
    runs: dict[tuple[Any, ...], dict[str, dict[int, str]]] = {}
    for doc in docs:
        args = doc["args"]
        for name, r in doc["results"].items():
            key = (args["technique"], name, tuple(r["settings"]), r["epochs"])
            by_seed = runs.setdefault(key, {}).setdefault(str(args["data"]), {})
            for run in r["runs"]:
                if run.get("correct"):
                    by_seed.setdefault(int(run["seed"]), run["correct"])
    pooled = []
    for (technique, name, _, _), folds in runs.items():
        names = sorted(folds)
        seeds = sorted(set.intersection(*(set(folds[f]) for f in names)))
        if seeds:
            pooled.append(Pooled(f"{technique} {name}", names, seeds,
                                 ["".join(folds[f][s] for f in names) for s in seeds]))
    return pooled


def table(rows: list[Pooled], reference: str | None) -> Table:
    """Each arm's accuracy over all folds' clips, and its difference from the reference."""
    ref = next((r for r in rows if r.label == reference), None) if reference else (
        rows[0] if rows else None)
    if reference and ref is None:
        raise SystemExit(f"--reference {reference!r}: no such arm; the arms are "
                         + ", ".join(repr(r.label) for r in rows))
    out = Table(title="evaluate accuracy % over every fold's clips (mean ± SE of seeds and "
                "clips); differences ± the seeds' SE (with the clips, paired clip by clip)",
                title_justify="left")
    for col in ("arm", "folds", "clips", "seeds", "accuracy", "per seed",
                f"vs {ref.label}" if ref else "vs"):
        out.add_column(col, justify="right")
    for r in rows:
        accs, n = r.accuracies, len(r.correct[0])
        se = evaluate_se(accs, n, r.correct).total or 0.0
        gap = "-"
        if ref is not None and r is not ref:
            points, seeds_se = difference(r.accuracies, ref.accuracies)
            # the clips' part pairs the two arms clip by clip: only on the same folds
            clips = paired_clip_se(r.correct, ref.correct) if r.folds == ref.folds else None
            gap = points_with_clips_text(100 * points, None if seeds_se is None
                                         else 100 * seeds_se, None if clips is None
                                         else 100 * clips)
        out.add_row(r.label, str(len(r.folds)), str(n), str(len(accs)),
                    f"{100 * statistics.fmean(accs):.1f} ± {100 * se:.1f}",
                    ", ".join(f"{100 * a:.1f}" for a in accs), gap)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    split = sub.add_parser("split", help="write the K datasets")
    split.add_argument("--data", type=Path, required=True)
    split.add_argument("--folds", type=int, default=3)
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--out", type=Path, required=True)
    joined = sub.add_parser("pool", help="each arm over every fold's clips")
    joined.add_argument("files", type=Path, nargs="+", help="ablation.py --out files")
    joined.add_argument("--reference", default=None, help="the arm the others are against "
                        "[default: the first], e.g. 'baseline paper'")
    args = parser.parse_args()
    if args.command == "split":
        for root in write_folds(args.data, args.folds, args.out, args.seed):
            ds = load_dataset(root)
            per_label = Counter(c.label for c in ds.evaluate)
            print(f"{root}: {len(ds.train)} train, {len(ds.evaluate)} evaluate clips ("
                  + ", ".join(f"{lab} {per_label[lab]}" for lab in ds.labels) + ")")
        return
    docs = []
    for file in args.files:
        try:
            docs.append(json.loads(file.read_text()))
        except (OSError, ValueError) as err:
            raise SystemExit(f"{file}: not an ablation.py --out file ({err}); fix: pass the "
                             "--out files of the folds' runs") from err
    Console(width=200).print(table(pool(docs), args.reference))


if __name__ == "__main__":
    main()
