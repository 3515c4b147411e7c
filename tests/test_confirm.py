"""confirm.py: the top few configurations scored again with more seeds, ranked by their mean."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial
from rich.console import Console

from asc_auto.confirm import (
    CONFIRMATION,
    SETTLE_SECONDS,
    STALE_SECONDS,
    Confirmed,
    chosen_trials,
    claim,
    confirm_top,
    confirmations,
    confirmed_best,
    holding,
    live_claim,
    reference_note,
    settled,
    undecided,
)
from asc_auto.procs import HOST, _start_time, this_worker
from asc_auto.records import feasible_trials
from asc_auto.report import confirmation_table, reference_line, unfinished_line
from asc_auto.schema import CONFIRM_FOLDS, StudyRecord


def _study(values: list[float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for i, v in enumerate(values):
        study.add_trial(create_trial(
            value=v, params={"x": float(i)}, distributions={"x": FloatDistribution(0, 100)},
            user_attrs={"feasible": True, "size_kb": 100.0 + i}))
    return study


# "true" quality of each trial's configuration: the search's luckiest draw (trial 0) is not the
# best configuration (trial 1 is).
TRUE = {0: 0.70, 1: 0.80, 2: 0.60, 3: 0.50}


def _score(trial: optuna.trial.FrozenTrial, seed: int) -> float:
    return TRUE[trial.number] + 0.01 * seed


def test_confirmation_ranks_by_mean_over_seeds_and_changes_the_pick() -> None:
    study = _study([0.95, 0.82, 0.81, 0.40])
    assert feasible_trials(study)[0].number == 0  # the lucky draw leads the search
    said: list[str] = []
    ranked = confirm_top(study, feasible_trials(study), _score, top=3, seeds=2,
                         status=said.append)
    assert [c.trial for c in ranked] == [1, 0, 2]  # trial 3 was not in the top 3
    best = ranked[0]
    assert best.accuracies == (0.82, 0.81, 0.82)  # own value, then seeds 1 and 2
    assert best.search_value == 0.82
    assert best.mean == pytest.approx((0.81 + 0.82) / 2)  # fresh seeds only: no winner's curse
    assert best.std > 0 and best.standard_error == pytest.approx(best.std / 2 ** 0.5)
    assert ranked[1].search_value == 0.95 and ranked[1].mean == pytest.approx(0.715)
    assert confirmed_best(study) == 1
    assert len(said) == 6 and "run 6 of 6" in said[-1]


class _Killed(Exception):
    """Stands for a worker killed mid-confirmation."""


def test_an_interrupted_confirmation_resumes_without_rescoring() -> None:
    study = _study([0.9, 0.8, 0.7])
    calls: list[tuple[int, int]] = []
    killed: list[bool] = []

    def flaky(trial: optuna.trial.FrozenTrial, seed: int) -> float:
        if len(calls) == 3 and not killed:
            killed.append(True)
            raise _Killed
        calls.append((trial.number, seed))
        return _score(trial, seed)

    with pytest.raises(_Killed):
        confirm_top(study, feasible_trials(study), flaky, top=2, seeds=2, status=lambda m: None)
    assert confirmed_best(study) is None  # incomplete: no verdict yet
    assert study.user_attrs[CONFIRMATION]["trials"]["1"] == [0.8, 0.81]
    confirm_top(study, feasible_trials(study), flaky, top=2, seeds=2, status=lambda m: None)
    assert calls == [(0, 1), (0, 2), (1, 1), (1, 2)]  # each seed scored once
    assert confirmed_best(study) == 1


def test_new_top_trials_are_confirmed_afresh_keeping_the_seeds_of_those_still_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study = _study([0.9, 0.8, 0.7])
    runs: list[tuple[int, int]] = []

    def score(trial: optuna.trial.FrozenTrial, seed: int) -> float:
        runs.append((trial.number, seed))
        return _score(trial, seed)

    confirm_top(study, feasible_trials(study), score, top=2, seeds=2, status=lambda m: None)
    assert runs == [(0, 1), (0, 2), (1, 1), (1, 2)] and confirmed_best(study) == 1
    study.add_trial(create_trial(value=0.99, params={"x": 50.0},
                                 distributions={"x": FloatDistribution(0, 100)},
                                 user_attrs={"feasible": True, "size_kb": 1.0}))
    monkeypatch.setitem(TRUE, 3, 0.9)
    runs.clear()
    confirm_top(study, feasible_trials(study), score, top=2, seeds=2, status=lambda m: None)
    assert runs == [(3, 1), (3, 2)]  # trial 0 is still in the top two: its seeds are kept
    assert study.user_attrs[CONFIRMATION]["trials"] == {"3": [0.99, 0.91, 0.92],
                                                        "0": [0.9, 0.71, 0.72]}
    assert [c.trial for c in confirmations(study)] == [3, 0]  # trial 1 (out) is not shown
    assert confirmed_best(study) == 3
    runs.clear()  # asked for more seeds: the kept ones count, the new seed index runs
    confirm_top(study, feasible_trials(study), score, top=2, seeds=3, status=lambda m: None)
    assert sorted(runs) == [(0, 3), (3, 3)]
    runs.clear()  # fewer: the first ones are kept, nothing runs
    confirm_top(study, feasible_trials(study), score, top=2, seeds=1, status=lambda m: None)
    assert runs == [] and study.user_attrs[CONFIRMATION]["trials"]["0"] == [0.9, 0.71]


def test_the_paper_configuration_is_confirmed_as_the_reference_the_pick_must_beat() -> None:
    """The hand configuration scored low in the search (an unlucky draw) but is the best one:
    confirmed beside the top few, it stays the pick; it is never confirmed twice."""
    quality = {0: 0.60, 1: 0.62, 2: 0.58, 3: 0.80}
    study = _study([0.95, 0.90, 0.85, 0.50])  # trial 3: the paper point, last by search value

    def score(trial: optuna.trial.FrozenTrial, seed: int) -> float:
        return quality[trial.number] + 0.01 * seed

    paper = study.trials[3]
    ranked = confirm_top(study, feasible_trials(study), score, top=2, seeds=2,
                         status=lambda m: None, reference=paper)
    assert sorted(c.trial for c in ranked) == [0, 1, 3]  # the top two and the reference
    assert ranked[0].trial == 3 and confirmed_best(study) == 3
    assert ranked[0].accuracies == (0.5, 0.81, 0.82)

    fresh = _study([0.95, 0.90, 0.85, 0.50])
    ranked = confirm_top(fresh, feasible_trials(fresh), score, top=2, seeds=1,
                         status=lambda m: None, reference=fresh.trials[0])  # already in the top
    assert sorted(c.trial for c in ranked) == [0, 1] and confirmed_best(fresh) == 1


def test_a_paper_configuration_far_below_the_top_few_is_not_confirmed(tmp_path) -> None:
    """Cross-validated values with their SEs: the paper's 0.335 ± 0.050 against a top two whose
    weakest is 0.638 ± 0.045 (fsdd int8, 4.5 SE) costs a confirmation run that cannot change the
    pick; within 3 SE (or without SEs) it is confirmed as before."""
    def study_with(paper_value: float, ses: tuple[float | None, ...]) -> optuna.Study:
        study = optuna.create_study(direction="maximize")
        for i, (v, se) in enumerate(zip([paper_value, 0.6965, 0.638], ses, strict=True)):
            attrs = {"feasible": True, "size_kb": 100.0 + i, "source": "paper" if i == 0
                     else "design", **({} if se is None else {"value_se": se})}
            study.add_trial(create_trial(value=v, params={"x": float(i)}, user_attrs=attrs,
                                         distributions={"x": FloatDistribution(0, 100)}))
        return study

    far = study_with(0.335, (0.050, 0.026, 0.045))
    ranked, paper = feasible_trials(far), far.trials[0]
    said: list[str] = []
    scored = confirm_top(far, ranked, lambda t, seed: 0.5, top=2, seeds=1, status=said.append,
                         reference=paper)
    assert sorted(c.trial for c in scored) == [1, 2]  # the paper's run is not made
    assert settled(far, feasible_trials(far), 2, paper)
    assert reference_note(ranked, 2, paper) == (
        "the paper configuration (trial 0, 0.3350 ± 0.050) is not confirmed: 4.5 standard "
        "errors below the weakest of the top 2 (trial 2, 0.6380 ± 0.045), so fresh seeds "
        "cannot plausibly make it the pick")
    assert reference_line(far) == reference_note(ranked, 2, paper)  # what `show` prints

    near = study_with(0.45, (0.050, 0.026, 0.045))  # 2.8 SE below: still confirmed
    assert [t.number for t in chosen_trials(feasible_trials(near), 2, near.trials[0])] == \
        [1, 2, 0]
    assert reference_note(feasible_trials(near), 2, near.trials[0]) is None
    no_se = study_with(0.335, (None, 0.026, 0.045))  # a single split's value: no SE recorded
    assert 0 in [t.number for t in chosen_trials(feasible_trials(no_se), 2, no_se.trials[0])]


def test_nothing_to_confirm_with_one_seed_or_one_trial() -> None:
    study = _study([0.9, 0.8])
    assert confirm_top(study, feasible_trials(study), _score, top=3, seeds=0) == []
    assert confirm_top(study, feasible_trials(study)[:1], _score, top=3, seeds=2) == []
    assert confirmed_best(study) is None


def test_one_fresh_seed_is_shown_without_a_standard_error() -> None:
    study = _study([0.95, 0.82])
    confirm_top(study, feasible_trials(study), _score, top=2, seeds=1, status=lambda m: None)
    console = Console(width=200, record=True)
    console.print(confirmation_table(study))
    text = console.export_text()
    assert "0.8100 (1 seed: no SE)" in text and "nan" not in text
    # a cross-validated run recorded its folds: their spread is its SE, said as such
    study.set_user_attr(CONFIRM_FOLDS.format(trial=1, seed=1), [0.78, 0.84, 0.8, 0.82])
    console = Console(width=200, record=True)
    console.print(confirmation_table(study))
    text = console.export_text()
    assert "0.8100 ± 0.013 over its 4 folds (1 seed)" in text, text


def test_runs_finishing_out_of_order_are_stored_in_seed_order() -> None:
    """`search --jobs N` confirms in N processes: seed 2 may finish before seed 1; stored in
    seed order, and a crash before seed 1 leaves seed 2 unrecorded, so a resume re-runs both
    (never records seed 2's accuracy as seed 1's)."""
    study = _study([0.9, 0.8, 0.7])
    seen: list[list[tuple[int, int]]] = []

    def backwards(runs: list[tuple[optuna.trial.FrozenTrial, int]]):
        seen.append([(t.number, s) for t, s in runs])
        for trial, seed in reversed(runs):
            if seed == 1 and trial.number == 0 and len(seen) == 1:
                raise _Killed  # seeds 2 of both trials and seed 1 of trial 1 are in
            yield trial, seed, _score(trial, seed)

    said: list[str] = []
    with pytest.raises(_Killed):
        confirm_top(study, feasible_trials(study), None, top=2, seeds=2, status=said.append,
                    score_many=backwards)
    assert seen[0] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    stored = study.user_attrs[CONFIRMATION]["trials"]
    assert stored == {"0": [0.9], "1": [0.8, 0.81, 0.82]}  # trial 0's seed 2 held back
    assert "run 1 of 4" in said[0] and "seed 2" in said[0]  # said as each run finishes
    confirm_top(study, feasible_trials(study), None, top=2, seeds=2, status=said.append,
                score_many=backwards)
    assert seen[1] == [(0, 1), (0, 2)]  # only what was missing
    assert study.user_attrs[CONFIRMATION]["trials"]["0"] == [0.9, 0.71, 0.72]
    assert confirmed_best(study) == 1


def test_of_two_workers_claiming_at_the_same_moment_one_confirms(tmp_path) -> None:
    """Two workers on one SQLite file (two storages, as two processes have) that finish at the
    same moment both claim the confirmation: the claims land within the wait, so both read the
    same winner, and the other is told who it is."""
    url = f"sqlite:///{tmp_path / 'asc.db'}"
    optuna.create_study(study_name="s", storage=url)
    studies = [optuna.load_study(study_name="s", storage=url) for _ in range(2)]
    together = threading.Barrier(2)
    results: list[object] = [None, None]

    def worker(i: int) -> None:
        together.wait()
        results[i] = claim(studies[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r is None]
    assert len(winners) == 1, results
    loser = next(r for r in results if r is not None)
    assert loser == {"host": HOST, "pid": os.getpid()}  # both threads are this process
    assert studies[0].user_attrs["confirming"]["token"]  # the winner's claim stays recorded


def test_a_claim_written_during_the_wait_wins_and_a_lone_claim_is_kept() -> None:
    study = _study([0.9, 0.8])
    assert claim(study, sleep=lambda s: None) is None  # nobody else claimed: ours

    def another_worker_claims(seconds: float) -> None:
        assert seconds == SETTLE_SECONDS
        StudyRecord(confirming={"host": "gpu-2", "pid": 4242, "token": "theirs"}).write(study)

    assert claim(study, sleep=another_worker_claims) == {"host": "gpu-2", "pid": 4242}


def test_a_claim_is_live_while_its_worker_runs() -> None:
    """Another worker's claim: on this host while its process runs (pid and start time), on
    another host while it was stamped within STALE_SECONDS; never this process's own."""
    study = _study([0.9, 0.8])

    def held(**claim: object) -> dict[str, object] | None:
        StudyRecord(confirming={"token": "t", **claim}).write(study)
        return live_claim(study, now=1000.0)

    assert live_claim(study) is None  # nobody claimed
    assert held(**this_worker()) is None  # this process's own
    with subprocess.Popen(["sleep", "30"]) as other:
        try:
            alive = {"host": HOST, "pid": other.pid, "start": _start_time(other.pid)}
            assert held(**alive) is not None
            assert held(**{**alive, "start": 1}) is None  # the pid reused by another process
        finally:
            other.kill()
    other.wait()
    assert held(**alive) is None  # it exited
    assert held(host="gpu-2", pid=7, beat=1000.0 - STALE_SECONDS + 1) is not None
    assert held(host="gpu-2", pid=7, beat=1000.0 - STALE_SECONDS - 1) is None  # killed there
    assert held(host="gpu-2", pid=7) is None  # never stamped (written before stamps existed)
    StudyRecord(confirming=None).write(study, ["confirming"])
    assert live_claim(study) is None  # released


def test_holding_stamps_the_claim_and_releases_it_however_the_body_ends() -> None:
    study = _study([0.9, 0.8])
    assert claim(study, sleep=lambda s: None) is None
    first = study.user_attrs["confirming"]["beat"]
    with holding(study, interval=0.02):
        time.sleep(0.3)
        stamped = study.user_attrs["confirming"]
    assert stamped["beat"] > first and stamped["pid"] == os.getpid()
    assert study.user_attrs["confirming"] is None  # released
    assert claim(study, sleep=lambda s: None) is None
    with pytest.raises(_Killed), holding(study, interval=0.02):
        raise _Killed
    assert study.user_attrs["confirming"] is None
    # taken over meanwhile (this one was thought dead): the other worker's claim is left alone
    assert claim(study, sleep=lambda s: None) is None
    with holding(study, interval=0.02):
        StudyRecord(confirming={"host": "gpu-2", "pid": 7, "token": "theirs"}).write(study)
        time.sleep(0.1)
    assert study.user_attrs["confirming"]["token"] == "theirs"


def test_settled_means_the_confirmation_covers_todays_top_few() -> None:
    study = _study([0.9, 0.8, 0.7])
    confirm_top(study, feasible_trials(study), _score, top=2, seeds=1, status=lambda m: None)
    assert settled(study, feasible_trials(study), top=2)
    study.add_trial(create_trial(value=0.85, params={"x": 50.0},
                                 distributions={"x": FloatDistribution(0, 100)},
                                 user_attrs={"feasible": True, "size_kb": 1.0}))
    assert not settled(study, feasible_trials(study), top=2)  # trial 3 entered the top two
    assert settled(study, feasible_trials(study), top=1) is False  # two confirmed, one wanted


def test_a_stamp_that_fails_is_tried_again_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy storage (SQLite locked by a writer) must not kill the heartbeat with a thread
    traceback: the next stamp lands."""
    study = _study([0.9, 0.8])
    assert claim(study, sleep=lambda s: None) is None
    first = study.user_attrs["confirming"]["beat"]
    failed: list[bool] = []
    write = StudyRecord.write

    def busy_once(self: StudyRecord, study: optuna.Study, names: object = None) -> None:
        if threading.current_thread().name.endswith("heartbeat") and not failed:
            failed.append(True)
            raise RuntimeError("database is locked")
        write(self, study, names)  # type: ignore[arg-type]

    monkeypatch.setattr(StudyRecord, "write", busy_once)
    errors: list[object] = []
    monkeypatch.setattr(threading, "excepthook", errors.append)
    with holding(study, interval=0.02):
        time.sleep(0.3)
        stamped = study.user_attrs["confirming"]["beat"]
    assert failed and not errors and stamped > first


def _confirmed(trial: int, *fresh: float) -> Confirmed:
    return Confirmed(trial, (0.9, *fresh), 100.0)


def test_the_best_two_get_another_seed_while_under_two_standard_errors_apart() -> None:
    close = [_confirmed(3, 0.766, 0.727), _confirmed(7, 0.708, 0.734), _confirmed(1, 0.5, 0.5)]
    # 0.7465 ± 0.0195 against 0.721 ± 0.013: 1.1 SE of the difference apart
    assert undecided(close, max_seeds=4) == [3, 7]  # the third is out of the running
    assert undecided(close, max_seeds=2) == []  # nothing more allowed
    apart = [_confirmed(3, 0.80, 0.81), _confirmed(7, 0.70, 0.71)]  # 0.1 apart, SE 0.007
    assert undecided(apart, max_seeds=4) == []
    one_seed = [_confirmed(3, 0.80), _confirmed(7, 0.70)]  # no SE: a second seed each
    assert undecided(one_seed, max_seeds=2) == [3, 7]
    at_most = [_confirmed(3, 0.766, 0.727, 0.630), _confirmed(7, 0.708, 0.734)]
    assert undecided(at_most, max_seeds=3) == [7]  # trial 3 has its 3: only trial 7 runs
    # unequal seeds (a run killed mid-round): the one with fewer first, whatever the gap
    uneven = [_confirmed(7, 0.90, 0.91), _confirmed(3, 0.60, 0.61, 0.62)]
    assert undecided(uneven, max_seeds=4) == [7]
    assert undecided([_confirmed(7, 0.90, 0.91, 0.9), _confirmed(3, 0.60, 0.61, 0.62)],
                     max_seeds=4) == []  # as many each, far apart
    same = [_confirmed(3, 0.75, 0.75), _confirmed(7, 0.75, 0.75)]  # a tie, no spread
    assert undecided(same, max_seeds=3) == [3, 7]
    assert undecided(close[:1], max_seeds=4) == []


# office16's 6-trial distilled int8 search, 3-fold confirmation runs (docs/BENCHMARKS.md): two
# seeds ranked trial 3 first, a third turned the pick to the portfolio entry (here trial 7).
OFFICE16 = {3: [0.766, 0.727, 0.630, 0.700], 7: [0.708, 0.734, 0.721, 0.715],
            1: [0.60, 0.61, 0.62, 0.63]}


def _office16(trial: optuna.trial.FrozenTrial, seed: int) -> float:
    return OFFICE16[trial.number][seed - 1]


def _office16_study() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    for number, value in ((0, 0.5), (1, 0.70), (2, 0.4), (3, 0.78), (4, 0.3), (5, 0.2),
                          (6, 0.1), (7, 0.73)):
        study.add_trial(create_trial(
            value=value, params={"x": float(number)},
            distributions={"x": FloatDistribution(0, 100)},
            user_attrs={"feasible": True, "size_kb": 100.0 + number}))
    return study


def test_close_best_two_get_more_seeds_and_the_pick_turns() -> None:
    study = _office16_study()
    runs: list[tuple[int, int]] = []
    said: list[str] = []

    def score(trial: optuna.trial.FrozenTrial, seed: int) -> float:
        runs.append((trial.number, seed))
        return _office16(trial, seed)

    ranked = confirm_top(study, feasible_trials(study), score, top=3, seeds=2,
                         status=said.append, max_seeds=4)
    # two seeds each, then seed 3 and seed 4 of the two that stay close; trial 1 keeps its two
    assert runs == [(3, 1), (3, 2), (7, 1), (7, 2), (1, 1), (1, 2), (3, 3), (7, 3), (7, 4),
                    (3, 4)], runs
    assert [c.trial for c in ranked] == [7, 3, 1] and confirmed_best(study) == 7
    assert [len(c.fresh) for c in ranked] == [4, 4, 2]
    notes = [line for line in said if line.startswith("the best two are close")]
    assert notes[0] == ("the best two are close: trial 3 0.7465 ± 0.020 (2 seeds) against trial "
                        "7 0.7210 ± 0.013 (2 seeds), under 2 standard errors of their "
                        "difference apart: one more fresh seed for trials 3 and 7 (at most 4 "
                        "seeds)"), notes
    assert len(notes) == 2
    record = study.user_attrs[CONFIRMATION]
    assert record["seeds"] == 2 and record["max_seeds"] == 4
    runs.clear()  # run again: everything is recorded, the same decisions, nothing runs
    confirm_top(study, feasible_trials(study), score, top=3, seeds=2, status=said.append,
                max_seeds=4)
    assert runs == []
    # without room for more (the default), two seeds pick trial 3
    plain = _office16_study()
    two = confirm_top(plain, feasible_trials(plain), _office16, top=3, seeds=2,
                      status=lambda m: None)
    assert [c.trial for c in two] == [3, 7, 1] and len(two[0].fresh) == 2


def test_best_two_far_apart_get_no_more_seeds() -> None:
    study = _study([0.95, 0.82, 0.81, 0.40])
    runs: list[tuple[int, int]] = []

    def score(trial: optuna.trial.FrozenTrial, seed: int) -> float:
        runs.append((trial.number, seed))
        return _score(trial, seed)

    confirm_top(study, feasible_trials(study), score, top=2, seeds=2, status=lambda m: None,
                max_seeds=4)
    # trial 1 0.815 ± 0.005 against trial 0 0.715 ± 0.005: far apart
    assert sorted(runs) == [(0, 1), (0, 2), (1, 1), (1, 2)] and confirmed_best(study) == 1


def test_an_extension_killed_midway_resumes_with_the_same_decisions() -> None:
    study = _office16_study()
    runs: list[tuple[int, int]] = []
    killed: list[bool] = []

    def flaky(trial: optuna.trial.FrozenTrial, seed: int) -> float:
        if (trial.number, seed) == (7, 3) and not killed:
            killed.append(True)
            raise _Killed
        runs.append((trial.number, seed))
        return _office16(trial, seed)

    with pytest.raises(_Killed):
        confirm_top(study, feasible_trials(study), flaky, top=3, seeds=2,
                    status=lambda m: None, max_seeds=4)
    assert study.user_attrs[CONFIRMATION]["trials"]["3"] == [0.78, 0.766, 0.727, 0.63]
    # the base confirmation is complete: the best mean so far is the pick until the end
    assert confirmed_best(study) == 7
    assert unfinished_line(study) == (
        "confirmation unfinished: the best two: trial 7 0.7210 ± 0.013 (2 seeds) against trial "
        "3 0.7077 ± 0.040 (3 seeds): one more fresh seed for trial 7, so that they are compared "
        "on as many seeds (at most 4); `asc-auto search --trials 0` with the same --confirm-* "
        "options runs them")
    runs.clear()
    said: list[str] = []
    confirm_top(study, feasible_trials(study), flaky, top=3, seeds=2, status=said.append,
                max_seeds=4)
    # trial 7's seed 3 first (as many seeds each before comparing), then the round the
    # uninterrupted confirmation ran: exactly its runs
    assert runs == [(7, 3), (7, 4), (3, 4)] and confirmed_best(study) == 7
    assert unfinished_line(study) is None
    assert said[0] == ("the best two: trial 7 0.7210 ± 0.013 (2 seeds) against trial 3 0.7077 ± "
                       "0.040 (3 seeds): one more fresh seed for trial 7, so that they are "
                       "compared on as many seeds (at most 4)"), said


def test_each_run_is_announced_with_the_time_left_when_the_trials_recorded_theirs() -> None:
    """Before each run: its trials' recorded seconds for the runs left, then the same scaled by
    how long the runs so far took against theirs; nothing for trials that recorded no time (a
    study from before they did), rather than a made-up estimate."""
    plain = _study([0.9, 0.8, 0.7])
    said: list[str] = []
    confirm_top(plain, feasible_trials(plain), _score, top=2, seeds=1, max_seeds=1,
                status=said.append)
    runs = [line for line in said if line.startswith("confirming trial")]
    assert len(runs) == 2 and all(line.endswith(f"{v})") for line, v in
                                  zip(runs, ("0.9000", "0.8000"), strict=True)), runs

    timed = optuna.create_study(direction="maximize")
    for i, (v, seconds) in enumerate(((0.9, 600.0), (0.8, 1200.0))):
        timed.add_trial(create_trial(
            value=v, params={"x": float(i)}, distributions={"x": FloatDistribution(0, 100)},
            user_attrs={"feasible": True, "size_kb": 100.0, "trial_seconds": seconds}))
    said.clear()
    confirm_top(timed, feasible_trials(timed), _score, top=2, seeds=1, max_seeds=1,
                status=said.append)
    runs = [line for line in said if line.startswith("confirming trial")]
    assert runs[0] == ("confirming trial 0 with seed 1 (run 1 of 2; its search value 0.9000; "
                       "about 30.0 min for these 2 runs, as long as their trials took)"), runs
    # the first run took far less than its trial's 600 s: the rest is scaled down to match
    assert runs[1].startswith("confirming trial 1 with seed 1 (run 2 of 2; its search value "
                              "0.8000; about ") and runs[1].endswith(
        " s left at this confirmation's pace)"), runs
