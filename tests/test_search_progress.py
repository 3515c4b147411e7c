"""The confirmation's progress bar: runs counted, each run's training steps, the last score."""

from __future__ import annotations

from asc_auto.search_progress import SearchProgress


def test_the_confirmation_bar_counts_runs_and_shows_the_last_runs_score() -> None:
    with SearchProgress(None, enabled=False, unit="confirmation runs") as progress:
        runs, steps = (progress.bar.tasks[i] for i in (progress.trials, progress.steps))
        assert runs.description == "confirmation runs" and runs.total is None
        assert not steps.visible and not runs.visible  # no run yet: no empty bar
        progress.start_run("trial 3 seed 1")
        assert steps.description == "trial 3 seed 1" and steps.visible and runs.visible
        progress.step(5, 20)
        assert (steps.completed, steps.total) == (5, 20)
        progress.fold(1, 2, 0.625)
        assert steps.fields["info"] == "fold 1/2 done, mean val acc 0.625"
        progress.end_run("last: trial 3 seed 1 0.7500 ± 0.050")
        assert runs.completed == 1 and runs.fields["info"] == "last: trial 3 seed 1 0.7500 ± 0.050"
        assert not steps.visible
        progress.start_run("trial 0 seed 1")  # the next run starts its steps from nothing
        assert steps.description == "trial 0 seed 1" and steps.completed == 0
        assert steps.fields["info"] == "" and steps.visible


def test_the_search_bar_shows_its_trials_from_the_start() -> None:
    with SearchProgress(8, enabled=False) as progress:
        trials = progress.bar.tasks[progress.trials]
        assert trials.description == "trials" and trials.total == 8 and trials.visible
