"""The benchmarks' arms (benchmarks/transfer.py `run_seeds`, which ablation.py runs) train what
`retrain` trains for a seed: the README's real-data rows compare numbers from both paths."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import torch

from asc_auto.retrain import retrain
from asc_auto.search import SearchOptions, run_search
from asc_auto.techniques.base import get_technique

SPACE = Path(__file__).parent / "spaces" / "baseline.toml"


@pytest.mark.slow
def test_an_arm_trains_the_same_model_as_retrain(tmp_path: Path, tiny_dataset: Path,
                                                 load_benchmark, monkeypatch) -> None:
    """Same configuration, seed, epochs and thread count: the same deployed weights, bit for
    bit. (office16's baseline at 27 epochs differed by up to 4.5 points a seed between a
    one-thread arm and a two-thread retrain; at two threads both gave 86.4, 84.8, 83.3 %: the
    thread count, not the path.)"""
    technique = get_technique("baseline")
    trained: list[dict[str, torch.Tensor]] = []
    fit = type(technique).fit

    def spy(self, *args: Any, **kwargs: Any):
        outcome = fit(self, *args, **kwargs)
        trained.append({k: v.detach().clone() for k, v in outcome.deployed.state_dict().items()})
        return outcome

    monkeypatch.setattr(type(technique), "fit", spy)
    home, url = tmp_path / "home", f"sqlite:///{tmp_path / 'asc.db'}"
    study = run_search(SearchOptions(technique="baseline", data=tiny_dataset, space=SPACE,
                                     trials=1, epochs=2, cv=0, confirm_seeds=0, storage=url,
                                     home=home, progress=False), status=lambda m: None)
    trained.clear()  # the search's trial
    result = retrain(study, seeds=2, epochs=3, trial_number=0, home=home, progress=False,
                     status=lambda m: None)

    transfer = load_benchmark("transfer")
    args = argparse.Namespace(space=SPACE, home=tmp_path / "arm-home", epochs=3)
    ctx = transfer.context(technique, tiny_dataset, args)
    arm = transfer.run_seeds(technique, ctx, 2)

    assert len(trained) == 4
    for by_retrain, by_arm in zip(trained[:2], trained[2:], strict=True):
        assert by_retrain.keys() == by_arm.keys()
        assert all(torch.equal(by_retrain[k], by_arm[k]) for k in by_retrain)
    assert not all(torch.equal(trained[0][k], trained[1][k]) for k in trained[0])  # seeds differ
    assert [r["accuracy"] for r in arm["runs"]] == [s.accuracy for s in result.seeds]  # as scored
    # clip by clip too: what the arms' and the studies' paired clip SEs read
    assert [r["correct"] for r in arm["runs"]] == [s.correct for s in result.seeds]
    assert [tuple(r["per_class"]) for r in arm["runs"]] == [s.per_class for s in result.seeds]


@pytest.mark.parametrize(("seconds", "seeds", "text"), [
    ([600.0], 3, "; about 20.0 min for the 2 seeds left"),
    ([500.0, 700.0], 3, "; about 10.0 min for the 1 seed left"),  # the mean of the seeds so far
    ([3000.0], 4, "; about 2.5 h for the 3 seeds left"),
    ([600.0, 600.0, 600.0], 3, ""),  # the last seed says nothing more
])
def test_each_seed_line_says_how_long_the_arm_has_left(load_benchmark, seconds: list[float],
                                                       seeds: int, text: str) -> None:
    transfer = load_benchmark("transfer")
    runs = [{"seconds": s} for s in seconds]
    assert transfer.seeds_left_text(runs, seeds) == text
