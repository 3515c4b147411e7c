"""benchmarks/rotated_evaluate.py: disjoint evaluate folds of a small dataset, and each arm's
accuracy pooled over them with its SE of seeds and clips."""

from __future__ import annotations

import math
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from asc_auto.data.tau import EVALUATE_CSV, Clip, load_dataset
from asc_auto.stats import evaluate_se, paired_clip_se

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "rotated_evaluate.py"


def test_folds_are_disjoint_whole_identifiers_with_the_official_labels(load_benchmark) -> None:
    rot = load_benchmark("rotated_evaluate")
    # 4 labels x 5 official evaluate clips; 20 training identifiers of one clip and 5 of two
    evaluate = tuple(Clip(f"e{i}.wav", f"L{i % 4}", f"e{i}") for i in range(20))
    train = tuple(Clip(f"t{i}.wav", f"L{i % 4}", f"t{i}") for i in range(40)) + tuple(
        Clip(f"p{i}{j}.wav", "L0", f"pair{i}") for i in range(5) for j in range(2))
    folds = rot.rotated_folds(train, evaluate, 3, seed=1)
    assert folds[0] == list(evaluate)  # the official fold first, as it is
    names = [{c.filename for c in f} for f in folds]
    assert not names[0] & names[1] and not names[0] & names[2] and not names[1] & names[2]
    for fold in folds[1:]:
        assert Counter(c.label for c in fold) == Counter(c.label for c in evaluate)
        held = {c.identifier for c in fold}
        # a pair's two clips are drawn together or not at all
        assert all((f"p{i}0.wav" in {c.filename for c in fold})
                   == (f"p{i}1.wav" in {c.filename for c in fold})
                   for i in range(5) if f"pair{i}" in held)
    assert rot.rotated_folds(train, evaluate, 3, seed=1) == folds  # seeded
    with pytest.raises(SystemExit, match="fold 3: no identifier of fold1_train is left"):
        rot.rotated_folds(train[:12], evaluate, 5)


def test_split_writes_datasets_that_train_on_the_rest(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "rot"
    done = subprocess.run([sys.executable, str(SCRIPT), "split", "--data", str(tiny_dataset),
                           "--folds", "2", "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    official = load_dataset(tiny_dataset)
    first, second = load_dataset(out / "fold-1"), load_dataset(out / "fold-2")
    # fold 1 is the official split, its CSV verbatim (its order is the batches' order)
    assert (out / "fold-1" / EVALUATE_CSV).read_text() == (tiny_dataset / EVALUATE_CSV).read_text()
    assert first.train == official.train and first.evaluate == official.evaluate
    # fold 2 evaluates clips of the official training fold and trains on all the others
    assert {c.filename for c in second.evaluate} <= {c.filename for c in official.train}
    assert len(second.train) + len(second.evaluate) == len(official.all_clips())
    assert not {c.identifier for c in second.evaluate} & {c.identifier for c in second.train}
    assert (out / "fold-2" / "audio").resolve() == (tiny_dataset / "audio").resolve()
    assert f"{out / 'fold-2'}: {len(second.train)} train, {len(second.evaluate)} evaluate" \
        in done.stdout
    again = subprocess.run([sys.executable, str(SCRIPT), "split", "--data", str(tiny_dataset),
                            "--out", str(out)], capture_output=True, text=True)
    assert again.returncode != 0 and f"{out}: not empty; fix: pass a new --out" in again.stderr


def _doc(fold: str, technique: str, arm: str, correct: list[str]) -> dict[str, Any]:
    return {"args": {"technique": technique, "data": fold},
            "results": {arm: {"settings": [], "epochs": 27, "evaluate_clips": len(correct[0]),
                              "runs": [{"seed": s, "accuracy": c.count("1") / len(c),
                                        "correct": c} for s, c in enumerate(correct)]}}}


def test_pool_joins_each_seed_s_clips_over_the_folds(load_benchmark) -> None:
    rot = load_benchmark("rotated_evaluate")
    docs = [_doc("f2", "int8", "pick", ["0111", "1011"]), _doc("f1", "int8", "pick", ["11", "10"]),
            _doc("f1", "baseline", "paper", ["11", "11"]),
            _doc("f2", "baseline", "paper", ["1100", "1110"]),
            _doc("f2", "lt", "pick", ["1111"])]  # lt has no fold f1: nothing to pool over both
    rows = {r.label: r for r in rot.pool(docs)}
    pick, base = rows["int8 pick"], rows["baseline paper"]
    assert pick.folds == ["f1", "f2"] and pick.seeds == [0, 1]
    assert pick.correct == ["110111", "101011"]  # fold f1's clips, then f2's
    assert pick.accuracies == pytest.approx([5 / 6, 4 / 6])
    assert rows["lt pick"].folds == ["f2"]
    out = rot.table([pick, base], "baseline paper")
    cells = {c.header: list(c.cells) for c in out.columns}
    se = evaluate_se(pick.accuracies, 6, pick.correct).total
    assert cells["accuracy"][0] == f"{100 * (9 / 12):.1f} ± {100 * se:.1f}"
    assert cells["clips"] == ["6", "6"]
    # base: 111100, 111110 -> 4/6, 5/6; the pick - base = 0 over seeds, paired over clips
    clips = 100 * paired_clip_se(pick.correct, base.correct)
    seeds = 100 * math.sqrt(2 * ((1 / 6) ** 2 / 2) / 2)
    assert cells["vs baseline paper"] == [
        f"+0.0 ± {seeds:.1f} (with clips ± {math.hypot(seeds, clips):.1f})", "-"]
    with pytest.raises(SystemExit, match="no such arm"):
        rot.table([pick], "kd pick")
