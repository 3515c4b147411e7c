"""A study whose search space file is gone (another checkout, a GPU machine running from
source elsewhere, an upgrade) retrains with the shipped space of its technique when that is the
same space by digest, and otherwise refuses, naming the file to restore."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from asc_auto.errors import UsageError
from asc_auto.retrain import retrain
from asc_auto.search import SearchOptions, run_search
from asc_auto.space import default_space_file

pytestmark = pytest.mark.slow


def _search(tmp_path: Path, data: Path, space: Path, name: str):
    return run_search(SearchOptions(technique="baseline", data=data, space=space, trials=1,
                                    epochs=1, cv=0, confirm_seeds=0, study=name,
                                    storage=f"sqlite:///{tmp_path / 'asc.db'}",
                                    home=tmp_path / "home", progress=False),
                      status=lambda m: None)


def test_a_gone_space_file_falls_back_to_the_same_shipped_space(tmp_path: Path,
                                                                tiny_dataset: Path) -> None:
    checkout = tmp_path / "old-checkout" / "asc_auto" / "searchspace"
    checkout.mkdir(parents=True)
    space = checkout / "baseline.toml"
    shutil.copy(default_space_file("baseline"), space)
    study = _search(tmp_path, tiny_dataset, space, "moved")
    shutil.rmtree(tmp_path / "old-checkout")

    said: list[str] = []
    result = retrain(study, seeds=1, epochs=1, home=tmp_path / "home", progress=False,
                     status=said.append)
    assert len(result.seeds) == 1
    assert any(line.startswith(f"the study's search space file {space} is gone: using the "
                               f"shipped {default_space_file('baseline')}, the same space")
               for line in said), said


def test_a_gone_space_file_that_was_another_space_is_refused(tmp_path: Path,
                                                             tiny_dataset: Path) -> None:
    edited = tmp_path / "mine" / "baseline.toml"
    edited.parent.mkdir()
    text = default_space_file("baseline").read_text()
    edited.write_text(text.replace("high = 0.4", "high = 0.3", 1))
    assert edited.read_text() != text
    study = _search(tmp_path, tiny_dataset, edited, "edited")
    edited.unlink()
    with pytest.raises(UsageError, match=(
            rf"its search space file {edited} is gone, and the shipped .*baseline\.toml is not "
            rf"that space .*fix: restore {edited} as the search had it")):
        retrain(study, seeds=1, epochs=1, home=tmp_path / "home", progress=False,
                status=lambda m: None)
