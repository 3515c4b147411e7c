"""`search --pruner`: Hyperband stops low trials at half the schedule; `none` stops nothing."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from asc_auto import pruning
from asc_auto.cli import app
from asc_auto.search import SearchOptions, run_search

SPACES = Path(__file__).parent / "spaces"


def _curves(kind: str, epochs: int, finals: list[float]) -> list[optuna.trial.FrozenTrial]:
    """Trials whose accuracy climbs linearly to `finals[i]`, run one after another under the
    pruner `kind`, as the search reports them (step = epoch, 1-based)."""
    study = optuna.create_study(direction="maximize", pruner=pruning.make_pruner(kind, epochs))
    for final in finals:
        trial = study.ask()
        for epoch in range(1, epochs + 1):
            trial.report(final * epoch / epochs, epoch)
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, final)
    return study.get_trials()


def test_hyperband_stops_low_trials_at_half_the_schedule_and_none_stops_nothing() -> None:
    finals = [0.9, 0.8, 0.85, 0.2, 0.1, 0.15, 0.88, 0.05]
    stopped = [t for t in _curves("hyperband", 10, finals) if t.state == TrialState.PRUNED]
    assert stopped, "hyperband stopped nothing"
    assert {max(t.intermediate_values) for t in stopped} == {5}  # the rung: half of 10 epochs
    assert all(t.intermediate_values[5] < 0.9 * 5 / 10 for t in stopped)  # below the leader
    assert 0 not in {t.number for t in stopped}  # the leader ran to the end
    kept = _curves("none", 10, finals)
    assert [t.state for t in kept] == [TrialState.COMPLETE] * len(finals)
    assert all(len(t.intermediate_values) == 10 for t in kept)


def test_unknown_pruner_is_an_error_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="hyperband, none"):
        pruning.make_pruner("median", 10)
    result = CliRunner().invoke(app, ["search", "--technique", "kd", "--pruner", "median"])
    assert result.exit_code != 0
    assert "median" in result.output


@pytest.mark.slow
def test_search_with_pruner_none_trains_every_trial_to_the_end(tmp_path: Path,
                                                              tiny_dataset: Path) -> None:
    said: list[str] = []
    study = run_search(SearchOptions(
        technique="kd", data=tiny_dataset, trials=3, space=SPACES / "kd.toml", epochs=2,
        storage=f"sqlite:///{tmp_path / 'asc.db'}", home=tmp_path / "home", progress=False,
        pruner="none", confirm_seeds=0), status=said.append)
    plan = [line for line in said if line.startswith("each trial trains")]
    assert plan and plan[0].endswith("no trial stops early (--pruner none)"), plan
    trained = [t for t in study.get_trials() if t.intermediate_values]
    assert len(trained) == 3
    assert all(t.state == TrialState.COMPLETE and sorted(t.intermediate_values) == [1, 2]
               for t in trained)
