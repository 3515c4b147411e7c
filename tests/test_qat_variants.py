"""benchmarks/qat_variants.py: every QAT variant fine-tunes a fresh PTQ copy of the same trained
network, so it is paired with plain PTQ clip by clip; its files pool with rotated_evaluate.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

SPACE = Path(__file__).parent / "spaces" / "int8.toml"


def test_parse_variant_wants_the_three_settings(load_benchmark) -> None:
    qv = load_benchmark("qat_variants")
    assert qv.parse_variant(["g", "lr_factor=0.01", "mixup=0", "epochs=3"]) == (
        "g", {"lr_factor": 0.01, "mixup": 0.0, "epochs": 3.0})
    assert qv.parse_variant(["c", "lr_factor=0.01", "mixup=0", "epochs=3", "before_ptq=1"])[1][
        "before_ptq"] == 1.0
    with pytest.raises(SystemExit, match="--variant g: give lr_factor=, mixup=, epochs="):
        qv.parse_variant(["g", "lr_factor=0.01", "epochs=3"])
    with pytest.raises(SystemExit, match="--variant g"):
        qv.parse_variant(["g", "lr_factor=0.01", "mixup=0", "epochs=3", "rate=2"])


@pytest.mark.slow
def test_a_variant_that_does_not_learn_scores_as_plain_ptq(tiny_dataset, tmp_path,
                                                           load_benchmark) -> None:
    """At a rate of zero a variant leaves the network as PTQ made it: the same clips right, which
    holds only if each variant starts from a fresh PTQ copy of the seed's trained network, not
    from the learning variant run before it. The FP32 control (before_ptq) reports its tuned
    FP32 accuracy. The file's arms pool with the baseline's over folds, as ablation.py's do."""
    qv = load_benchmark("qat_variants")
    rot = load_benchmark("rotated_evaluate")
    out = tmp_path / "fold-1.json"
    args = argparse.Namespace(
        data=tiny_dataset, params=["lr=0.003"], epochs=2, seeds=1, first_seed=0, space=SPACE,
        threads=None, home=tmp_path / "home", out=out, variant=[
            ["learn", "lr_factor=1", "mixup=0", "epochs=1"],
            ["still", "lr_factor=0", "mixup=0", "epochs=1"],
            ["still-fp32", "lr_factor=0", "mixup=0", "epochs=1", "before_ptq=1"]])
    qv.run(args)
    doc = json.loads(out.read_text())
    (row,) = doc["runs"]
    still, control = row["variants"]["still"], row["variants"]["still-fp32"]
    assert len(row["ptq_correct"]) == 13  # the tiny dataset's evaluate clips
    assert still["correct"] == row["ptq_correct"] and still["accuracy"] == row["ptq"]
    assert control["correct"] == row["ptq_correct"] and control["fp32"] == row["fp32"]
    assert set(doc["results"]) == {"ptq", "learn", "still", "still-fp32"}
    base = {"args": {"technique": "baseline", "data": str(tiny_dataset)},
            "results": {"paper": {"settings": [], "epochs": 2, "runs": [
                {"seed": 0, "accuracy": 1.0, "correct": "1" * 13}]}}}
    pooled = {p.label: p for p in rot.pool([doc, base])}
    assert pooled["int8 still"].correct == [row["ptq_correct"]]
    assert pooled["baseline paper"].folds == pooled["int8 ptq"].folds
    cells = {c.header: list(c.cells) for c in qv.table([out]).columns}
    assert cells["variant"][2:] == ["learn", "still", f"still-fp32 (FP32 tuned {row['fp32']:.1%})"]
    assert cells["accuracy"][1] == f"{row['ptq']:.1%}"
    assert cells["minus PTQ (± se over seeds)"][3:] == ["+0.0 ± nan"] * 2  # one seed: no SE
    assert cells["clips gained / lost"][3:] == ["0 / 0"] * 2
