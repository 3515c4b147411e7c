"""The search's cost line: measured epochs extrapolated to a trial, the trials and the
confirmation, said once."""

from __future__ import annotations

from asc_auto.cost import EpochClock, SearchPlan, duration_text


def test_durations_read_as_a_person_says_them() -> None:
    assert duration_text(42.4) == "42 s"
    assert duration_text(210) == "3.5 min"
    assert duration_text(2.25 * 3600) == "2.2 h"
    assert duration_text(3 * 86400) == "3.0 days"


def test_a_laptop_search_on_small_data_is_said_to_take_a_day() -> None:
    # office16's default: 5 folds x 414 epochs; 0.74 s an epoch (what a 2-core CPU measured)
    plan = SearchPlan(epochs=414, folds=5, trials=50, confirmations=8, rung=207)
    line = plan.line(0, 0.74)
    assert line == (
        "cost here: trial 0 ran 0.74 s per epoch, so a trial (414 epochs x 5 folds) takes "
        "about 25.5 min; "
        "50 trials about 21.3 h at this trial's pace (less where the pruner stops a trial at "
        "epoch 207), then confirming the pick: up to 8 more runs of a trial's cost, about "
        "3.4 h; --trials, --timeout or --epochs shorten it")


def test_workers_drawing_from_one_budget_divide_the_search_time() -> None:
    """`--jobs 2 --trials 24`: each worker says the run's cost, its trials side by side."""
    line = SearchPlan(epochs=414, folds=5, trials=24, rung=207, workers=2).line(1, 0.5)
    # 12 x 17.2 min
    assert "24 trials over 2 workers about 3.5 h at this trial's pace (less where" in line
    odd = SearchPlan(epochs=100, folds=1, trials=5, workers=2).line(0, 1.0)
    assert "5 trials over 2 workers about 5.0 min at this trial's pace;" in odd  # 3 x 100 s


def test_a_timeout_caps_the_estimate_or_sizes_the_trials() -> None:
    capped = SearchPlan(epochs=100, folds=1, trials=50, timeout=3600).line(3, 2.0)
    assert "a trial (100 epochs) takes about 3.3 min" in capped
    assert "--timeout stops starting trials after 60.0 min" in capped
    assert "50 trials" not in capped
    alone = SearchPlan(epochs=100, folds=1, trials=None, timeout=3600).line(3, 2.0)
    assert "--timeout 60.0 min leaves room for about 18 trials;" in alone
    slow = SearchPlan(epochs=30, folds=1, trials=2).line(0, 180.0)
    assert slow.startswith("cost here: trial 0 ran 3.0 min per epoch, so a trial (30 epochs) takes "
                           "about 1.5 h; 2 trials about 3.0 h at this trial's pace;")
    assert "pruner" not in slow and "confirming" not in slow


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_clock_times_the_epochs_after_the_first_and_speaks_once() -> None:
    said: list[str] = []
    clock = FakeClock()
    plan = SearchPlan(epochs=10, folds=2, trials=4)
    cost = EpochClock(plan, said.append, clock)
    cost.epoch(0)  # no trial started: nothing to extrapolate from
    cost.start(4)
    clock.now += 4.0
    cost.epoch(0)  # the first epoch: start-up and all, 4 s
    clock.now += 2.0
    cost.epoch(1)
    assert said == []  # 2 s since the first epoch: too short to extrapolate
    clock.now += 4.0
    cost.epoch(3)  # three epochs in 6 s after the first: 2 s each; the first held 2 s start-up
    assert said == [plan.line(4, 2.0, startup=2.0)]
    assert said[0].startswith("cost here: trial 4 ran 2.00 s per epoch, so a trial (10 epochs x "
                              "2 folds) takes about 44 s;")  # (2 x 10 + 2) x 2
    cost.start(5)
    clock.now += 100
    cost.epoch(0)
    cost.epoch(1)
    assert len(said) == 1  # once per process


def test_a_short_schedule_is_said_at_its_last_epoch() -> None:
    said: list[str] = []
    clock = FakeClock()
    cost = EpochClock(SearchPlan(epochs=2, folds=1, trials=1), said.append, clock)
    cost.start(7)
    clock.now += 0.5
    cost.epoch(0)
    assert said == []
    clock.now += 0.5
    cost.epoch(1)
    assert said == ["cost here: trial 7 ran 0.50 s per epoch, so a trial (2 epochs) takes "
                    "about 1 s; 1 trial about 1 s at this trial's pace; --trials, --timeout or "
                    "--epochs shorten it"]


def test_epochs_restored_from_a_stopped_run_are_not_timed() -> None:
    """A seed resumed at epoch 8 of 10 (epoch_state.py) replays epochs 1-8 in no time; the
    clock times the two it trains, not ten epochs in the time of two."""
    from asc_auto.epoch_state import replay

    said: list[str] = []
    clock = FakeClock()
    cost = EpochClock(SearchPlan(epochs=10, folds=1, trials=1, unit="seed",
                                 shorten="--seeds or --epochs"), said.append, clock)
    cost.start(0)
    with replay():
        cost.step(8 * 4, 10 * 4)
        for epoch in range(8):
            cost.epoch(epoch)
    assert said == []
    clock.now += 3.0
    cost.epoch(8)
    clock.now += 3.0
    cost.epoch(9)
    assert said and said[0].startswith("cost here: seed 0 ran 3.00 s per epoch"), said


def test_a_retrain_says_its_seeds() -> None:
    plan = SearchPlan(epochs=325, folds=1, trials=3, unit="seed", shorten="--seeds or --epochs")
    assert plan.line(0, 5.5) == ("cost here: seed 0 ran 5.50 s per epoch, so a seed (325 epochs) "
                                 "takes about 29.8 min; 3 seeds at most 89.4 min; --seeds or "
                                 "--epochs shorten it")


def test_a_teacher_says_its_own_cost_and_its_option() -> None:
    plan = SearchPlan(epochs=60, folds=1, trials=None, unit="teacher", shorten="--teacher-epochs")
    assert plan.line(None, 35.0) == ("cost here: the teacher ran 35 s per epoch, so a teacher "
                                     "(60 epochs) takes about 35.0 min; --teacher-epochs "
                                     "shortens it")


def test_a_run_that_trains_twice_is_timed_over_both_and_speaks_during_the_first() -> None:
    """lt trains the dense network, then the ticket, and reports epochs only for the ticket:
    its cost line used to divide a whole dense training (+1 epoch) by one epoch."""
    plan = SearchPlan(epochs=40, folds=3, trials=6)
    assert plan.line(0, 1.4, trainings=2).startswith(
        "cost here: trial 0 ran 1.40 s per epoch, so a trial (2 trainings of 40 epochs x 3 "
        "folds) takes about 5.6 min; 6 trials about 33.6 min at this trial's pace;")
    said: list[str] = []
    clock = FakeClock()
    cost = EpochClock(plan, said.append, clock)
    cost.start(0, trainings=2)
    total = 2 * 40 * 10  # 10 steps an epoch, both trainings on one scale
    clock.now += 3.0
    cost.step(10, total)  # epoch 1's last step: not over until its validation
    cost.step(11, total)  # the first epoch (and its validation) done: 3 s
    clock.now += 4.0
    cost.step(31, total)  # two more in 4 s: too short
    assert said == []
    clock.now += 3.5
    cost.step(45, total)  # in epoch 5: three epochs in 7.5 s after the first
    assert said == [plan.line(0, 2.5, trainings=2, startup=0.5)]
    assert "takes about 10.0 min; 6 trials about 60.1 min" in said[0]  # (2.5 x 80 + 0.5) x 3 x 6
    cost.step(51, total)
    assert len(said) == 1


def test_a_short_run_that_trains_twice_counts_both_at_its_last_epoch() -> None:
    said: list[str] = []
    clock = FakeClock()
    plan = SearchPlan(epochs=2, folds=1, trials=1)
    cost = EpochClock(plan, said.append, clock)
    cost.start(3, trainings=2)
    for epoch in range(3):  # the dense training's 2 epochs and the ticket's first: on one scale
        clock.now += 2.0 / 3
        cost.epoch(epoch)
    assert said == []  # 3 of 4 epochs: not the last, and too short to extrapolate from
    clock.now += 0.4
    cost.epoch(3)  # 4 epochs in 2.4 s
    assert said == [plan.line(3, 0.6, trainings=2)]
    assert "(2 trainings of 2 epochs) takes about 2 s" in said[0]


def test_fine_tuning_epochs_after_the_training_are_counted_and_named() -> None:
    """int8 fine-tunes the quantized network (QAT) after its training: a trial with 3 QAT epochs
    of 40 was said as 40 epochs, and its bar sat full while QAT ran."""
    plan = SearchPlan(epochs=40, folds=3, trials=6)
    assert plan.line(0, 1.5, extra=3).startswith(
        "cost here: trial 0 ran 1.50 s per epoch, so a trial (40 epochs + 3 fine-tuning epochs "
        "x 3 folds) takes about 3.2 min; 6 trials about 19.4 min")  # 1.5 x 43 x 3 = 193.5 s
    assert "(40 epochs + 1 fine-tuning epoch x 3 folds)" in plan.line(0, 1.5, extra=1)
    said: list[str] = []
    clock = FakeClock()
    cost = EpochClock(plan, said.append, clock)
    cost.start(2, extra=3)
    total = 43 * 10  # 10 steps an epoch, training and QAT on one scale
    clock.now += 2.0
    cost.step(11, total)  # the first epoch done
    clock.now += 6.0
    cost.step(41, total)  # three more epochs in 6 s
    assert said == [plan.line(2, 2.0, startup=0.0, extra=3)]
