"""benchmarks/ablation.py --show: earlier runs' arms as one table, an arm's seeds from several
runs pooled, each row against a reference with the SE of the difference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "ablation.py"


def _output(technique: str, threads: str, arms: dict[str, list[float]], first: int = 0,
            settings: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"args": {"technique": technique, "threads": threads},
            "results": {name: {"settings": list(settings), "epochs": 27, "evaluate_clips": 66,
                               "runs": [{"seed": first + i, "accuracy": a, "accuracy_fp32": a,
                                         "seconds": 10.0} for i, a in enumerate(accs)]}
                        for name, accs in arms.items()}}


def test_an_arm_s_seeds_from_two_runs_pool_and_other_threads_stay_apart(load_benchmark,
                                                                       monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # it imports transfer.py beside it
    ablation = load_benchmark("ablation")
    docs = [_output("kd", "1", {"pick": [0.94, 0.83, 0.68]}),
            _output("kd", "1", {"pick": [0.85, 0.74, 0.83]}, first=3),
            _output("kd", "1", {"pick": [0.50]}, first=2),  # seed 2 again: the first kept
            _output("baseline", "1", {"paper": [0.83, 0.83, 0.79]}),
            _output("baseline", "2", {"paper": [0.86, 0.85, 0.83]}),
            _output("kd", "1", {"pick": [0.1]}, settings=("lr=0.1",))]  # other settings
    rows = ablation.merged_rows(docs)
    assert [r.label for r in rows] == ["kd pick (1 thread)", "baseline paper (1 thread)",
                                       "baseline paper (2 threads)", "kd pick (1 thread)"]
    assert [run["seed"] for run in rows[0].runs] == [0, 1, 2, 3, 4, 5]
    assert [run["accuracy"] for run in rows[0].runs] == [0.94, 0.83, 0.68, 0.85, 0.74, 0.83]
    assert rows[3].settings == ["lr=0.1"] and len(rows[3].runs) == 1


def _kd_row_against_baseline(file: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    """`ablation.py --show FILE` against the baseline row: the run, and the kd pick's line."""
    proc = subprocess.run([sys.executable, str(SCRIPT), "--show", str(file), "--reference",
                           "baseline paper (1 thread)"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc, next(line for line in proc.stdout.splitlines() if "kd pick" in line)


def test_show_reads_a_file_of_several_outputs_and_compares_with_the_reference(
        tmp_path: Path) -> None:
    doc = {"what": "notes", "kd": _output("kd", "1", {"pick": [0.94, 0.83, 0.68]}),
           "baseline": _output("baseline", "1", {"paper": [0.83, 0.83, 0.79]}),
           "retrain": {"accuracy": [0.86]}}  # not an ablation output: left out
    file = tmp_path / "matched.json"
    file.write_text(json.dumps(doc))
    proc, row = _kd_row_against_baseline(file)
    # 81.7 - 81.7 = 0.0 points, SE sqrt(var(kd) / 3 + var(base) / 3) = 7.7 points
    assert "81.7 ± 7.5" in row and "+0.0 ± 7.7" in row, proc.stdout
    assert "x86_64" not in proc.stdout and "CPUs" not in proc.stdout  # not trained here

    # runs that kept which clips they got right: the difference's SE with the clips follows
    kept = {"kd": _output("kd", "1", {"pick": [0.75, 0.5]}),
            "baseline": _output("baseline", "1", {"paper": [0.5, 0.5]})}
    for out, correct in ((kept["kd"], ["1110", "1100"]), (kept["baseline"], ["1100", "0011"])):
        for run, c in zip(next(iter(out["results"].values()))["runs"], correct, strict=True):
            run["correct"] = c
    file.write_text(json.dumps(kept))
    proc, row = _kd_row_against_baseline(file)
    # as benchmarks/real_data.py's gap: seeds 12.5 points, clips 20.7, together 24.2
    assert "+12.5 ± 12.5 (with clips ± 24.2)" in row, proc.stdout

    wrong = subprocess.run([sys.executable, str(SCRIPT), "--show", str(file), "--reference",
                            "baseline"], capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 1 and "--reference 'baseline': no such row" in wrong.stderr
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    none = subprocess.run([sys.executable, str(SCRIPT), "--show", str(empty)],
                          capture_output=True, text=True, timeout=300)
    assert none.returncode != 0 and "holds no ablation.py output" in none.stderr


def test_a_reference_that_is_no_arm_is_refused_before_any_training(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--technique", "kd", "--data",
                           str(tmp_path / "none"), "--arm", "paper", "--arm", "pick", "c1=16",
                           "--reference", "baseline"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert "--reference baseline: not one of the arms (paper, pick)" in proc.stderr
