"""Learning curves on a real dataset: evaluate accuracy against training budget. Prints numbers,
asserts nothing.

    .venv/bin/python benchmarks/learning_curve.py --data ../shared/datasets/office16 \
        --technique baseline --space SPACE.toml --epochs 25 50 100 200 [--seeds 1]

For each budget, the technique's paper configuration is searched alone (`--trials 1`, the given
epochs) and retrained on all of fold1_train (`retrain --trial 0`), and the evaluate fold's
accuracy is printed with the clips seen in training (epochs x training clips) and its standard
error, so budgets can be compared across datasets of any size.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from rich.console import Console
from rich.table import Table

from asc_auto.console import run_script
from asc_auto.storage import default_storage


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "asc_auto.cli", *args], check=True,
                   capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--technique", default="baseline")
    parser.add_argument("--space", type=Path, default=None)
    parser.add_argument("--epochs", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="asc-lc-"))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table = Table(title=f"{args.technique} on {args.data.name}: evaluate fold vs budget",
                  title_justify="left")
    for col in ("epochs", "clips seen", "evaluate acc", "± SE", "seeds", "wall s"):
        table.add_column(col, justify="right")
    for epochs in args.epochs:
        study = f"lc-{args.technique}-{epochs}"
        space = ["--space", str(args.space)] if args.space else []
        t0 = time.perf_counter()
        _cli("search", "--technique", args.technique, "--data", str(args.data), *space,
             "--trials", "1", "--epochs", str(epochs), "--study", study, "--home", str(home),
             "--cv", "0", "--confirm-seeds", "0")  # only retrain's number is read
        _cli("retrain", "--study", study, "--trial", "0", "--seeds", str(args.seeds),
             "--home", str(home))
        wall = time.perf_counter() - t0
        loaded = optuna.load_study(study_name=study, storage=default_storage(home))
        r = loaded.user_attrs["retrain"]
        n_eval = _n_evaluate(args.data)
        train_clips = int(loaded.user_attrs["train_clips"]) + int(loaded.user_attrs["val_clips"])
        se = math.sqrt(r["mean"] * (1 - r["mean"]) / n_eval) if n_eval else float("nan")
        table.add_row(str(epochs), f"{epochs * train_clips:,}", f"{r['mean']:.4f}",
                      f"{se:.3f}", str(r["seeds"]), f"{wall:.0f}")
        print(f"{epochs} epochs ({epochs * train_clips:,} clips seen): evaluate "
              f"{r['mean']:.4f} ± {se:.3f} over {r['seeds']} seed(s), {wall:.0f} s", flush=True)
    Console().print(table)


def _n_evaluate(data: Path) -> int:
    lines = (data / "evaluation_setup" / "fold1_evaluate.csv").read_text().splitlines()
    return max(0, len(lines) - 1)


if __name__ == "__main__":
    run_script(main)
