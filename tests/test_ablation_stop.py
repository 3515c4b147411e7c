"""benchmarks/ablation.py saves after every seed: a default-budget seed can take an hour, and a
run stopped after its first seed keeps it (`--show` reads it, `--first-seed` adds the rest)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "ablation.py"
SPACE = Path(__file__).parent / "spaces" / "baseline.toml"


def test_a_run_stopped_after_a_seed_keeps_it(load_benchmark, monkeypatch, tmp_path: Path,
                                              tiny_dataset: Path) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # it imports transfer.py beside it
    ablation = load_benchmark("ablation")
    real = ablation.run_seeds

    def stopped_after_one(*args: Any, on_seed, **kwargs: Any) -> dict[str, Any]:
        def after(so_far: dict[str, Any]) -> None:
            on_seed(so_far)
            raise KeyboardInterrupt  # Ctrl-C while the second seed would train

        return real(*args, on_seed=after, **kwargs)

    monkeypatch.setattr(ablation, "run_seeds", stopped_after_one)
    out = tmp_path / "out.json"
    monkeypatch.setattr(sys, "argv", [
        str(SCRIPT), "--technique", "baseline", "--data", str(tiny_dataset), "--space",
        str(SPACE), "--epochs", "1", "--seeds", "3", "--threads", "1", "--home",
        str(tmp_path / "home"), "--out", str(out), "--arm", "plain"])
    with pytest.raises(KeyboardInterrupt):
        ablation.main()
    saved = json.loads(out.read_text())["results"]["plain"]
    assert [run["seed"] for run in saved["runs"]] == [0]
    assert 0.0 <= saved["runs"][0]["accuracy"] <= 1.0
    assert saved["settings"] == [] and saved["epochs"] == 1
    rows = ablation.merged_rows(ablation.ablation_outputs(json.loads(out.read_text())))
    assert [len(row.runs) for row in rows] == [1]  # what --show pools with later seeds
