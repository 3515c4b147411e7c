"""One contract every registered technique must meet (Optuna-style shared test suite).

A technique added to the registry is tested the day it is added: it needs only a tiny space
file in tests/spaces/<name>.toml whose [paper] point is small enough to train in seconds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import pytest
import torch

from asc_auto.compress.size import Precision, get_rule, model_size
from asc_auto.search import SearchOptions, prepare_search, run_search
from asc_auto.space import load_space
from asc_auto.techniques import TECHNIQUES, Technique

SPACES = Path(__file__).parent / "spaces"
NAMES = sorted(TECHNIQUES)


@pytest.fixture(scope="module", params=NAMES)
def setup(request: pytest.FixtureRequest, tiny_dataset: Path,
          tmp_path_factory: pytest.TempPathFactory):
    name = request.param
    home = tmp_path_factory.mktemp(f"home-{name}")
    opts = SearchOptions(technique=name, data=tiny_dataset, space=SPACES / f"{name}.toml",
                         home=home, progress=False, epochs=1)
    return prepare_search(opts, status=lambda m: None)


def test_every_technique_ships_a_space_and_a_test_space() -> None:
    for name in NAMES:
        tech = TECHNIQUES[name]
        assert issubclass(tech, Technique) and tech.name == name
        assert (SPACES / f"{name}.toml").is_file(), f"tests/spaces/{name}.toml missing"
        load_space(SPACES / f"{name}.toml", name, set(tech.tables))


def test_build_is_sized_before_training_and_fit_reports_the_deployed_model(setup) -> None:
    tech, ctx = setup.technique, setup.context
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(setup.space.paper_trial_params())
    config = setup.space.suggest(study.ask())

    cand = tech.build(config, ctx)
    assert isinstance(cand.precision, Precision)
    before = tech.size(cand, ctx.rule)
    assert before.size_bytes > 0 and before.counted_params > 0
    x = ctx.example_input()
    logits, emb = cand.model(x)
    assert logits.shape == (1, ctx.n_classes) and emb.dim() == 2

    tech.prepare(ctx)
    outcome = tech.fit(cand, config, ctx)
    assert 0.0 <= outcome.accuracy <= 1.0 and 0.0 <= outcome.accuracy_fp32 <= 1.0
    assert len(outcome.train.val_history) == ctx.train_cfg.epochs
    assert outcome.train.seconds_forward_backward > 0
    after = tech.size(cand, ctx.rule)
    assert after.size_bytes <= before.size_bytes  # training never grows the deployed size
    with torch.no_grad():
        out = outcome.deployed(ctx.val_xy[0][:2].float())
    assert out[0].shape == (2, ctx.n_classes) and torch.isfinite(out[0]).all()


def test_size_follows_the_rule_and_precision(setup) -> None:
    tech, ctx = setup.technique, setup.context
    study = optuna.create_study()
    study.enqueue_trial(setup.space.paper_trial_params())
    cand = tech.build(setup.space.suggest(study.ask()), ctx)
    as_params = model_size(cand.model, get_rule("params"), Precision.FP32)
    fp16 = dataclasses.replace(cand, precision=Precision.FP16)
    assert tech.size(fp16, get_rule("params")).size_bytes <= as_params.size_bytes


def test_two_trial_search_end_to_end(setup, tmp_path: Path, tiny_dataset: Path) -> None:
    name = setup.technique.name
    study = run_search(SearchOptions(
        technique=name, data=tiny_dataset, space=SPACES / f"{name}.toml", trials=2, epochs=1,
        storage=f"sqlite:///{tmp_path / 'asc.db'}", home=setup.context.cache_root.parent,
        progress=False), status=lambda m: None)
    trials = study.get_trials()
    assert len(trials) == 2
    assert trials[0].user_attrs["source"] == "paper"
    for t in trials:
        assert t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        assert {"size_kb", "params", "macs", "precision", "feasible"} <= set(t.user_attrs)
        assert "size_bytes_over_budget" in t.constraints
