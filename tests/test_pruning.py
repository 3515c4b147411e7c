"""`search --pruner`: Hyperband stops low trials at half the schedule; `none` stops nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from asc_auto import pruning
from asc_auto.cli import app
from asc_auto.search import SearchOptions, run_search

SPACES = Path(__file__).parent / "spaces"


def _curves(kind: str, epochs: int, finals: list[float],
            n_val: int = 10_000, climb: bool = True) -> list[optuna.trial.FrozenTrial]:
    """Trials whose accuracy climbs linearly to `finals[i]` (or stays there: `climb` False),
    run one after another under the pruner `kind` with `n_val` validation clips, as the search
    reports them (step = epoch, 1-based)."""
    study = optuna.create_study(direction="maximize",
                                pruner=pruning.make_pruner(kind, epochs, n_val))
    for final in finals:
        trial = study.ask()
        for epoch in range(1, epochs + 1):
            trial.report(final * epoch / epochs if climb else final, epoch)
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


def test_the_noise_in_a_difference_of_accuracies_shrinks_with_the_clips() -> None:
    # Agresti-Caffo: 26 and 24 of 31 right are taken as 27 and 25 of 33
    expected = ((27 / 33 * 6 / 33 + 25 / 33 * 8 / 33) / 33) ** 0.5
    assert pruning.difference_se(26 / 31, 24 / 31, 31) == pytest.approx(expected)
    assert 0.09 < expected < 0.11  # about three clips of 31
    assert pruning.difference_se(1.0, 1.0, 31) > 0.04  # a perfect score is not certain
    assert pruning.difference_se(0.8, 0.77, 3100) == pytest.approx(0.0106, abs=5e-4)


def test_the_rung_keeps_the_top_third_at_least_one() -> None:
    assert pruning.rung_bar([0.7, 0.9]) == 0.9
    assert pruning.rung_bar([0.7, 0.9, 0.8]) == 0.9
    assert pruning.rung_bar([0.5, 0.9, 0.8, 0.6, 0.7, 0.85]) == 0.85


def test_hyperband_stops_a_trial_only_when_it_is_clearly_behind_on_few_clips() -> None:
    """On 31 clips a trial two clips behind the leader at the rung trains on (plain Hyperband
    would stop it); five clips behind it stops, its reason naming the bar and the noise. On
    3,100 clips the same two-clip-of-31 gap (6.5 points) is far outside the noise: it stops."""
    finals = [26 / 31, 24 / 31, 21 / 31]  # at every epoch
    few = _curves("hyperband", 10, finals, n_val=31, climb=False)
    assert [t.state for t in few] == [TrialState.COMPLETE, TrialState.COMPLETE,
                                      TrialState.PRUNED]
    many = _curves("hyperband", 10, finals, n_val=3100, climb=False)
    assert [t.state for t in many] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]

    pruner = pruning.make_pruner("hyperband", 10, 31)
    assert isinstance(pruner, pruning.NoiseTolerant)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for final in (0.9, 0.3):
        trial = study.ask()
        for epoch in range(1, 6):
            trial.report(final * epoch / 5, epoch)
        stopped = trial.should_prune()
        study.tell(trial, state=TrialState.PRUNED) if stopped else study.tell(trial, final)
    assert stopped
    gap = pruner.gaps[1]
    assert (gap.epoch, gap.value, gap.bar, gap.n_val) == (5, 0.3, 0.9, 31)
    assert gap.margin == pytest.approx(pruning.difference_se(0.9, 0.3, 31))
    assert pruner.reason(1, 5, 0.3) == (
        f"epoch 5: val acc 0.300, stopped by Hyperband: below the 0.900 its rung keeps by more "
        f"than the noise on 31 clips ({gap.margin:.3f})")
    assert pruner.reason(7, 5, 0.3) == "epoch 5: val acc 0.300, stopped by Hyperband"
    assert pruning.stop_reason(pruner, 1, 5, 0.3) == pruner.reason(1, 5, 0.3)
    # a diverged trial (NaN) stops whatever the noise; another's NaN does not move the bar
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL,
                                              intermediate_values={5: float("nan")}))
    trial = study.ask()
    for epoch in range(1, 6):
        trial.report(float("nan") if epoch == 5 else 0.5, epoch)
    assert trial.should_prune()
    assert pruner.gaps[trial.number].bar == 0.9


def test_unknown_pruner_is_an_error_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="hyperband, none"):
        pruning.make_pruner("median", 10, 100)
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


def test_a_fold_ceiling_is_the_value_with_every_remaining_clip_right() -> None:
    n_val = [31, 31, 31, 31, 30]
    assert pruning.fold_ceiling([], n_val) == 1.0
    assert pruning.fold_ceiling([25 / 31], n_val) == pytest.approx((25 + 123) / 154)
    assert pruning.fold_ceiling([0.5, 1.0, 0.0, 1.0, 0.5], n_val) == pytest.approx(
        (15.5 + 31 + 0 + 31 + 15) / 154)  # all folds: the clip-weighted mean itself


def test_the_entry_bar_is_the_top_th_value_once_that_many_finished() -> None:
    assert pruning.entry_bar([0.9, 0.7], 3) is None  # every trial can still enter the top 3
    assert pruning.entry_bar([0.7, 0.95, 0.9, 0.8], 3) == 0.8
    assert pruning.entry_bar([0.7, 0.95], 1) == 0.95


def test_a_trial_stops_between_folds_only_when_it_cannot_enter_the_top_few() -> None:
    n_val = [31, 31, 31, 31, 30]
    values = [0.95, 0.94, 0.93, 0.70]
    # 80 % on fold 0 could still reach (25 + 123) / 154 = 0.961 > 0.93: it goes on
    assert pruning.hopeless([25 / 31], n_val, values, top=3) is None
    # 80 % on folds 0-1: at most (50 + 92) / 154 = 0.922 < 0.93, the 3rd best
    why = pruning.hopeless([25 / 31, 25 / 31], n_val, values, top=3)
    assert why == ("fold 2 of 5: at most 0.9221 with every remaining clip right, below the "
                   "3rd best (0.9300)")
    # against the best alone (no confirmation) the same trial still stops; a tie does not
    assert pruning.hopeless([25 / 31, 25 / 31], n_val, values, top=1) is not None
    assert pruning.hopeless([25 / 31, 25 / 31], n_val, [(50 + 92) / 154], top=1) is None
    # fewer finished trials than the top few: every trial can still be confirmed
    assert pruning.hopeless([0.0, 0.0], n_val, values[:2], top=3) is None
    # a trial whose folds are all scored is finished, not stopped
    assert pruning.hopeless([0.1] * 5, n_val, values, top=1) is None


def test_the_fold_stop_replay_finds_the_trials_the_search_would_stop_now(
        load_benchmark: Callable[[str], ModuleType]) -> None:
    """benchmarks/fold_stop_replay.py on a study whose trials ran every fold: in start order,
    against the trials finished before each started, as the search decides today."""
    replay = load_benchmark("fold_stop_replay")
    study = optuna.create_study(direction="maximize")
    folds = [[0.9, 0.9], [0.95, 0.95], [0.2, 0.9], [0.5, 0.5], [0.9, 0.2]]
    for i, accs in enumerate(folds):  # folds of 10 clips each; trial 0 is the paper's
        study.add_trial(optuna.trial.create_trial(
            value=sum(accs) / 2, user_attrs={"cv_accuracies": accs, "feasible": True,
                                             "source": "paper" if i == 0 else "search"}))
    rows = replay.replay(study, [10, 10], top=1)
    assert [r["stop"] for r in rows] == [None, None, 1, 1, None]  # 0.2 or 0.5 + 10 of 10 < 0.95
    assert rows[2]["why"] == ("fold 1 of 2: at most 0.6000 with every remaining clip right, "
                              "below the best trial (0.9500)")
    assert rows[3]["saved"] == pytest.approx(rows[3]["seconds"] / 2)
    # against the top 3: trial 2 started with two finished, trial 3 could still reach 0.75,
    # above the third best (0.55)
    assert [r["stop"] for r in replay.replay(study, [10, 10], top=3)] == [None] * 5


def test_the_rung_replay_stops_what_each_pruner_would_stop(
        load_benchmark: Callable[[str], ModuleType]) -> None:
    """benchmarks/rung_replay.py feeds recorded per-epoch accuracies, in start order, to plain
    Hyperband and to today's pruner: on 31 clips a trial two clips behind at the rung is stopped
    by the first only; the paper's trial is never stopped."""
    replay = load_benchmark("rung_replay")
    source = optuna.create_study(direction="maximize")
    at_rung = [26 / 31, 24 / 31, 10 / 31, 9 / 31]  # trial 3, the paper's, lowest
    for i, acc in enumerate(at_rung):
        source.add_trial(optuna.trial.create_trial(
            value=acc, intermediate_values={e: acc for e in range(1, 11)},
            user_attrs={"source": "paper" if i == 3 else "search"}))
    # an lt trial: its first training's 10 epochs, then the ticket's, low at first; the search
    # never asks the pruner past the first training, nor does the replay
    source.add_trial(optuna.trial.create_trial(
        value=26 / 31, intermediate_values={e: 26 / 31 if e <= 10 else 0.0 for e in range(1, 21)},
        user_attrs={"source": "search"}))
    trials = replay.trained(source, 10)  # complete, every epoch recorded, in start order
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    plain = replay.replay(trials, optuna.pruners.HyperbandPruner(
        min_resource=5, max_resource=10, reduction_factor=3), "s", 10)
    today = replay.replay(trials, pruning.make_pruner("hyperband", 10, 31), "s", 10)
    assert {n: s and s[0] for n, s in plain.items()} == {0: None, 1: 5, 2: 5, 3: None, 4: None}
    assert {n: s and s[0] for n, s in today.items()} == {0: None, 1: None, 2: 5, 3: None,
                                                         4: None}
    assert today[2][1].startswith("epoch 5: val acc 0.323, stopped by Hyperband: below the 0.839")
