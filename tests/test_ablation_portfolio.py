"""benchmarks/ablation.py `portfolio=NAME`: an arm that starts from a shipped `[[portfolio]]`
entry of the space, so scripts name a configuration instead of copying its values."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from asc_auto.space import default_space_file, load_technique_space
from asc_auto.techniques.base import get_technique

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "ablation.py"


def _space(name: str):
    return load_technique_space(default_space_file(name), get_technique(name))


@pytest.fixture
def ablation(load_benchmark, monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # it imports transfer.py beside it
    return load_benchmark("ablation")


def test_an_arm_naming_an_entry_trains_that_entry_with_its_own_settings_over_it(
        ablation) -> None:
    space = _space("lt")
    _, _, params = ablation.parse_arm(["unfinished", "portfolio=wide-shallow", "finish_epochs=0"])
    got = ablation.from_portfolio("unfinished", params, space)
    # the entry's own values (lt.toml), the paper's for what it leaves out, the arm's over both
    assert got["sparsity"] == 0.3317 and got["llf2"] == 77 and got["crops"] == "content"
    assert got["finish_epochs"] == 0
    assert "portfolio" not in got
    assert set(got) == set(space.paper)
    entry = next(e for e in space.portfolio if e.name == "wide-shallow")
    assert entry.point["finish_epochs"] == 3  # what the arm's setting replaced
    assert {k: v for k, v in got.items() if k != "finish_epochs"} == {
        k: v for k, v in entry.point.items() if k != "finish_epochs"}


def test_an_arm_without_an_entry_keeps_its_settings(ablation) -> None:
    params = {"lr": 0.01}
    assert ablation.from_portfolio("paper", params, _space("int8")) == {"lr": 0.01}


def test_a_misspelt_entry_fails_naming_the_entries(ablation) -> None:
    with pytest.raises(SystemExit, match=r"portfolio=wide: .*int8.toml has no such "
                                         r"\[\[portfolio\]\] entry; fix: .*\(wide-shallow\)"):
        ablation.from_portfolio("pick", {"portfolio": "wide"}, _space("int8"))


def test_the_script_refuses_a_misspelt_entry_before_it_reads_any_data(tmp_path: Path) -> None:
    """Before the dataset, the features or a teacher: not an hour into a run."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--technique", "lt", "--data",
                           str(tmp_path / "no-such-data"), "--home", str(tmp_path / "h"),
                           "--arm", "ok", "--arm", "bad", "portfolio=wide_shallow"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "arm bad: portfolio=wide_shallow" in done.stderr
    assert "no-such-data" not in done.stderr  # the data was never opened
    assert not (tmp_path / "h").exists()


def test_the_gpu_script_names_entries_the_shipped_spaces_have() -> None:
    """benchmarks/gpu_office16.sh runs on a lent GPU with minutes to spend: an entry renamed in a
    space file would cost its arm there, so the names it passes are checked here."""
    script = (SCRIPT.parent / "gpu_office16.sh").read_text()
    rows = re.findall(r"^\s*([\w|-]+)\)\s*echo \"\w+ portfolio=([\w-]+)[ \"]", script, re.MULTILINE)
    named = [(row.split("-")[0], row, entry) for alts, entry in rows for row in alts.split("|")]
    assert {row for _, row, _ in named} == {"int8", "lt", "kd", "int8-distil", "lt-distil"}
    for technique, row, entry in named:
        assert entry in {e.name for e in _space(technique).portfolio}, (row, entry)
