"""asc_auto/stop.py: a SIGTERM stops training and the search even where the KeyboardInterrupt it
raises lands in a garbage collection and is swallowed (a `search --jobs` worker, told to stop
by its parent, ran all 40 trials of a study that way)."""

from __future__ import annotations

import gc
import os
import signal
import weakref
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from asc_auto import stop
from asc_auto.models.cnn import CnnStudent, StudentConfig
from asc_auto.search import Objective, SearchOptions, run_search
from asc_auto.train import TrainConfig, train_model

# the swallowed interrupt is the point: pytest reports it as unraisable
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture
def sigterm() -> Iterator[None]:
    previous = stop.sigterm_as_interrupt()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop.clear()


class _Node:
    pass


def _sigterm_at_next_collection() -> None:
    """Leave a cycle whose weakref callback sends SIGTERM when a collection frees it, as
    Optuna's gc after a trial can: Python prints "Exception ignored" and carries on."""
    node = _Node()
    node.cycle = node  # only a collection frees it
    weakref.finalize(node, os.kill, os.getpid(), signal.SIGTERM)


def _swallowed_sigterm() -> None:
    """Deliver SIGTERM inside a weakref callback run by a collection, now."""
    _sigterm_at_next_collection()
    gc.collect()


def test_a_swallowed_sigterm_is_raised_again_by_check(sigterm: None) -> None:
    _swallowed_sigterm()  # no exception reaches here: the first raise was lost
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        stop.check()
    stop.clear()
    stop.check()  # handled and cleared: nothing to raise


def test_training_stops_at_its_next_step_after_a_swallowed_sigterm(sigterm: None) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 1, 12, 16, generator=g), torch.randint(0, 3, (32,), generator=g)
    model = CnnStudent(StudentConfig(channels=(4, 8, 8), n_classes=3))
    cfg = TrainConfig(epochs=5, batch_size=8, device="cpu")
    steps: list[int] = []

    def train() -> None:
        train_model(model, x, y, cfg, 3, on_step=lambda done, total: steps.append(done))

    train()
    assert steps[-1] == 20  # 5 epochs of 4 steps when nothing stops it
    _swallowed_sigterm()
    steps.clear()
    with pytest.raises(KeyboardInterrupt):
        train()
    assert steps == []  # not one step more


@pytest.mark.slow
def test_a_search_stops_after_the_trial_whose_gc_swallowed_the_sigterm(
    sigterm: None, tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end-of-trial callback raises the stop before Optuna opens another trial: without it
    the next trial would start, be recorded and then fail at its first training step."""
    run = Objective.__call__

    def trial_then_a_cycle(self: Objective, trial: optuna.Trial) -> float:
        value = run(self, trial)
        _sigterm_at_next_collection()  # Optuna's gc_after_trial frees it
        return value

    monkeypatch.setattr(Objective, "__call__", trial_then_a_cycle)
    opts = SearchOptions(technique="baseline", data=tiny_dataset, trials=3, cv=0,
                         space=Path(__file__).parent / "spaces" / "baseline.toml",
                         storage=f"sqlite:///{tmp_path / 'asc.db'}", home=tmp_path / "home",
                         progress=False)
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        run_search(opts, status=lambda m: None)
    trials = optuna.load_study(study_name="baseline", storage=opts.storage).get_trials()
    started = [t.state for t in trials if t.state != TrialState.WAITING]  # not the enqueued
    assert started == [TrialState.COMPLETE]  # no second trial opened
