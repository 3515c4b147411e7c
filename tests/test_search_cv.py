"""Selection that is not noise: cross-validated trial scores and the confirmed pick, end to end
on generated data (tiny kd students, 1 epoch)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from asc_auto.cli import app
from asc_auto.confirm import CONFIRMATION, confirmations
from asc_auto.cv import CvScore
from asc_auto.errors import UsageError
from asc_auto.records import pick_trial
from asc_auto.schema import StudyRecord
from asc_auto.search import SearchOptions, run_search

pytestmark = [pytest.mark.slow, pytest.mark.selection]

SPACE = Path(__file__).parent / "spaces" / "kd.toml"


def _opts(tmp_path: Path, data: Path, **kw: object) -> SearchOptions:
    return SearchOptions(technique="kd", data=data, space=SPACE, epochs=1,
                         storage=f"sqlite:///{tmp_path / 'asc.db'}", home=tmp_path / "home",
                         progress=False, **kw)  # type: ignore[arg-type]


def test_cross_validated_trials_and_a_confirmed_pick(tmp_path: Path, tiny_dataset: Path) -> None:
    said: list[str] = []
    study = run_search(_opts(tmp_path, tiny_dataset, trials=3, cv=2, confirm_top=2,
                             confirm_seeds=1, confirm_max_seeds=1), status=said.append)
    assert study.user_attrs["cv_folds"] == 2
    assert any("2-fold cross-validation over 35 clips" in line for line in said), said
    plan = [line for line in said if line.startswith("each trial trains")]
    assert re.fullmatch(r"each trial trains 1 epoch \(--epochs\) of (17-18|17|18) clips per fold "
                        r"x 2 folds = 35 clips seen; Hyperband may stop a trial from 1 "
                        r"epoch, where it is more than 1 standard error below the trials kept "
                        r"there, and between folds once it can no longer enter the top few",
                        plan[0]), plan
    # what it costs here, from trial 0's timed epoch (under 5 s: said at its last epoch)
    cost = [line for line in said if line.startswith("cost here: trial")]
    assert len(cost) == 1, said
    # each fold's teacher (trained before the trials) says its own cost
    assert sum(line.startswith("cost here: the teacher ran ") for line in said) == 2, said
    assert re.fullmatch(r"cost here: trial 0 ran \d\.\d\d s per epoch, so a trial \(1 epoch x 2 "
                        r"folds\) takes about \d+ s; 3 trials about \d+ s at this trial's pace, "
                        r"then confirming the pick: up to 3 more runs of a trial's cost, "
                        r"about \d+ s; --trials, --timeout or --epochs shorten it", cost[0]), cost
    # one teacher per fold, its accuracy averaged (each never saw its fold's validation clips)
    assert len(study.user_attrs["teacher_val_accuracy_per_fold"]) == 2
    assert [line for line in said if "preparing" in line] == [
        "fold 1 of 2: preparing kd", "fold 2 of 2: preparing kd"], said
    # each teacher says what it scored on its fold's held-out clips as it ends
    trained = [m for line in said if (m := re.fullmatch(
        r"KD teacher trained: (\d\.\d{4}) ± 0\.\d{3} on its (17|18) held-out clips \(\d+ s\)",
        line))]
    assert [float(m[1]) for m in trained] == pytest.approx(
        study.user_attrs["teacher_val_accuracy_per_fold"], abs=1e-4), said
    # a log (no progress display) hears of each fold that ends before its trial does, with the
    # accuracy the trial recorded for it and the time the trial's other fold will take
    fold_line = re.compile(r"trial (\d+)(?: \([a-z0-9 -]+\))?: fold 1/2 val acc (\d\.\d{4}) ± "
                           r"0\.\d{3}; (\d+) s in, about (\d+) s left in this trial")
    folds = {int(m[1]): m for line in said if (m := fold_line.fullmatch(line))}
    scored = {t.number: t.user_attrs["cv_accuracies"] for t in study.get_trials()
              if t.user_attrs.get("cv_accuracies") and t.user_attrs.get("trial_seconds")}
    assert set(scored) <= set(folds) and 0 in folds, (said, scored)
    for number, accuracies in scored.items():
        assert float(folds[number][2]) == pytest.approx(accuracies[0], abs=1e-4)
    assert not any("fold 2/2" in line for line in said), said  # the trial line says the end
    done = [t for t in study.get_trials() if t.state == TrialState.COMPLETE
            and t.user_attrs.get("feasible")]
    assert len(done) >= 2
    for t in done:
        accs = t.user_attrs["cv_accuracies"]
        assert len(accs) == 2 and all(0.0 <= a <= 1.0 for a in accs)
        assert min(accs) - 1e-3 <= t.value <= max(accs) + 1e-3  # the clip-weighted mean
        assert t.user_attrs["value_se"] > 0
    record = study.user_attrs[CONFIRMATION]
    top2 = sorted(done, key=lambda t: (-t.value, t.user_attrs["size_kb"], t.number))[:2]
    paper = study.trials[0]  # the paper point, confirmed beside the top two as the reference
    assert paper.user_attrs["source"] == "paper" and paper in done
    assert sorted(record["trials"]) == sorted({str(t.number) for t in [*top2, paper]})
    assert all(len(accs) == 2 for accs in record["trials"].values())  # own value + 1 fresh
    confirmed = confirmations(study)
    assert pick_trial(study).number == confirmed[0].trial
    assert confirmed[0].mean >= confirmed[1].mean
    line = next(line for line in said if line.startswith("confirmed: "))
    assert "on 1 fresh seed" in line and "nan" not in line, line
    # a log hears of each confirmation run as of a trial: each fold that ends before the run
    # does (the accuracy it recorded) and the run's score with its standard error, and each
    # run is announced with the time left (its trials' recorded time, then this pace)
    runs = sorted(record["trials"], key=int)
    for number in runs:
        first = study.user_attrs[f"confirmation_folds_{number}_1"][0]
        fold = [m for line in said if (m := re.fullmatch(
            rf"confirming trial {number} with seed 1: fold 1/2 val acc (\d\.\d{{4}}) ± "
            r"0\.\d{3}; \d+ s in, about \d+ s left in this run", line))]
        assert len(fold) == 1 and float(fold[0][1]) == pytest.approx(first, abs=1e-4), said
        end = [m for line in said if (m := re.fullmatch(
            rf"confirming trial {number} with seed 1: val acc (\d\.\d{{4}}) ± 0\.\d{{3}} over 2 "
            rf"folds \(its search value {study.trials[int(number)].value:.4f}; \d+ s\)", line))]
        assert len(end) == 1, said
        assert float(end[0][1]) == pytest.approx(record["trials"][number][1], abs=1e-4)
    announced = [line for line in said if line.startswith("confirming trial")
                 and "(run " in line]
    assert len(announced) == len(runs), said
    assert re.search(rf"\(run 1 of {len(runs)}; its search value \d\.\d{{4}}; about \d+ s for "
                     rf"these {len(runs)} runs, as long as their trials took\)$", announced[0])
    assert all(re.search(r"; about \d+ s left at this confirmation's pace\)$", line)
               for line in announced[1:]), announced
    shown = CliRunner().invoke(app, ["show", "--study", "kd", "--storage",
                                     f"sqlite:///{tmp_path / 'asc.db'}"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "confirmation: the top configurations and the paper's with fresh seeds" in shown.output
    flat = " ".join(shown.output.split())  # titles wrap
    assert "val acc: the mean over 2-fold cross-validation of 35 clips, ± its standard error" \
        in flat, shown.output
    assert "validation clips" not in flat  # not the single split's, which it was not scored on
    assert "over its 2 folds (1 seed)" in flat and "how often each choice was tried" in flat
    assert re.search(r"│ +0 paper( pick)? │", shown.output), shown.output
    assert f"confirmed pick: trial {confirmed[0].trial}" in shown.output
    best = study.trials[confirmed[0].trial]
    assert f"{best.value:.4f} ± {best.user_attrs['value_se']:.3f}" in shown.output


def test_small_user_data_is_cross_validated_by_default_and_resumes_so(
    tmp_path: Path, tiny_dataset: Path
) -> None:
    study = run_search(_opts(tmp_path, tiny_dataset, trials=1, confirm_seeds=0),
                       status=lambda m: None)
    folds = study.user_attrs["cv_folds"]
    assert folds == 5  # 13 validation clips would be one split: far under 300
    (trial,) = study.get_trials()
    assert len(trial.user_attrs["cv_accuracies"]) == 5
    again = run_search(_opts(tmp_path, tiny_dataset, trials=1, confirm_seeds=0),
                       status=lambda m: None)
    assert again.user_attrs["cv_folds"] == 5 and len(again.trials) == 2
    with pytest.raises(UsageError, match=r"cross-validation folds \(--cv\)"):
        run_search(_opts(tmp_path, tiny_dataset, trials=1, cv=0), status=lambda m: None)
    assert len(optuna.load_study(study_name="kd", storage=f"sqlite:///{tmp_path / 'asc.db'}")
               .trials) == 2


def test_a_study_created_but_not_yet_described_by_another_worker_gets_the_same_folds(
    tmp_path: Path, tiny_dataset: Path
) -> None:
    """Workers started together: one creates the study, another sees it before its attributes
    are written. That one must not take it for a study older than --cv (one split) and then be
    refused as mixing; it decides as the creator does. A study with trials but no `cv_folds`
    is older than --cv and stays on one split."""
    storage = f"sqlite:///{tmp_path / 'asc.db'}"
    optuna.create_study(storage=storage, study_name="kd", direction="maximize")  # bare
    study = run_search(_opts(tmp_path, tiny_dataset, trials=1, confirm_seeds=0),
                       status=lambda m: None)
    assert study.user_attrs["cv_folds"] == 5

    old = optuna.create_study(storage=storage, study_name="old", direction="maximize")
    old.enqueue_trial({"c1": 4})
    study = run_search(_opts(tmp_path, tiny_dataset, trials=1, confirm_seeds=0, study="old"),
                       status=lambda m: None)
    assert study.user_attrs["cv_folds"] == 0


def test_the_training_plan_says_why_the_epochs_were_raised(tmp_path: Path,
                                                           tiny_dataset: Path) -> None:
    """Small data: [train] epochs raised to reach min_clips_seen, said with the clips seen."""
    from asc_auto.search import prepare_search, training_plan

    space = tmp_path / "space.toml"
    space.write_text(SPACE.read_text().replace("[train]\nepochs = 2\n",
                                               "[train]\nepochs = 2\nmin_clips_seen = 1000\n"))
    opts = SearchOptions(technique="kd", data=tiny_dataset, space=space, progress=False,
                         home=tmp_path / "home")
    ctx = prepare_search(opts, status=lambda m: None).context
    n = len(ctx.train_files)
    epochs = -(-1000 // n)
    assert ctx.train_cfg.epochs == epochs > 2
    assert training_plan(ctx, (), fixed=False) == (
        f"each trial trains {epochs} epochs (the space's train.epochs = 2, raised to reach "
        f"train.min_clips_seen = 1,000) of {n} clips = {epochs * n:,} clips seen; Hyperband may "
        f"stop a trial from {epochs // 2} epoch{'s' if epochs // 2 != 1 else ''}, where it is "
        f"more than 1 standard error below the trials kept there")
    # lt trains once per round and then the ticket: its epochs are per training, its rung in
    # the first one
    several = training_plan(ctx, (), fixed=False, several=True)
    assert several.startswith(f"each trial trains {epochs} epochs per training (the space's")
    assert (f"stop a trial from {epochs // 2} epoch{'s' if epochs // 2 != 1 else ''} of its "
            "first training, where") in several


def test_the_demo_confirms_its_best_two_with_one_seed_user_data_three_with_two_unless_told(
    tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built-in demo is a tour kept under 10 minutes: its best two configurations (and the
    paper's) with one fresh seed each; a user's data gets the best three with two seeds, and
    the best two up to four while close; --confirm-top, --confirm-seeds and
    --confirm-max-seeds always win."""
    from asc_auto.data import demo
    from asc_auto.search import setup_study

    monkeypatch.setattr(demo, "DEMO_SETTINGS", demo.DemoSettings(n_clips=30, clip_seconds=0.5))

    def confirms(name: str, data: Path | None, **kw: object) -> tuple[int, int, int]:
        opts = SearchOptions(technique="baseline", data=data, epochs=1, trials=1, cv=0,
                             study=name, storage=f"sqlite:///{tmp_path / 'asc.db'}",
                             home=tmp_path / "home", progress=False, **kw)  # type: ignore[arg-type]
        setup = setup_study(opts, status=lambda m: None)[1]
        return setup.confirm_top, setup.confirm_seeds, setup.confirm_max_seeds

    # (top, seeds, the best two's seeds at most while close: none more on the demo)
    assert confirms("demo", None) == (2, 1, 1)
    assert confirms("user", tiny_dataset) == (3, 2, 4)
    assert confirms("demo3", None, confirm_top=4, confirm_seeds=3) == (4, 3, 3)
    assert confirms("user0", tiny_dataset, confirm_top=1, confirm_seeds=0) == (1, 0, 0)
    assert confirms("user3", tiny_dataset, confirm_seeds=3, confirm_max_seeds=5) == (3, 3, 5)
    assert confirms("user1", tiny_dataset, confirm_max_seeds=1) == (3, 2, 2)  # never below


def test_trials_0_finishes_an_existing_study_without_adding_trials(
    tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search stopped during its confirmation (or run without one) is finished by `--trials
    0`: the top configurations are confirmed, no trial is added or left waiting. A study that
    does not exist is refused instead of being created empty."""
    study = run_search(_opts(tmp_path, tiny_dataset, trials=2, cv=2, confirm_seeds=0),
                       status=lambda m: None)
    assert CONFIRMATION not in study.user_attrs
    before = [(t.number, t.state) for t in study.trials]
    said: list[str] = []
    # as if the paper were far below the top two: why it is left out is said before the runs
    note = "the paper configuration (trial 0, ...) is not confirmed"
    monkeypatch.setattr("asc_auto.confirm.reference_note", lambda ranked, top, paper: note)
    study = run_search(_opts(tmp_path, tiny_dataset, trials=0, confirm_top=2, confirm_seeds=1),
                       status=said.append)
    assert said.count(note) == 1, said
    assert [(t.number, t.state) for t in study.trials] == before
    record = study.user_attrs[CONFIRMATION]
    assert len(record["trials"]) == 2 and record["max_seeds"] == 2
    # one fresh seed has no standard error: the best two get a second (the default: twice
    # --confirm-seeds), and are ranked on both
    assert all(len(accs) == 3 for accs in record["trials"].values()), record
    assert any(line.startswith("the best two are close: ") and "one seed has no standard "
               "error" in line for line in said), said
    assert any(line.startswith("confirmed: ") and "over 2 fresh seeds" in line
               for line in said), said
    # run again with everything confirmed: no run, the pick said again, the note left to the
    # confirmation table's footnote (it was said twice on every resumed search)
    said.clear()
    study = run_search(_opts(tmp_path, tiny_dataset, trials=0, confirm_top=2, confirm_seeds=1),
                       status=said.append)
    assert note not in said and not any(line.startswith("confirming trial") for line in said)
    assert any(line.startswith("confirmed: ") for line in said), said
    storage = f"sqlite:///{tmp_path / 'asc.db'}"
    out = CliRunner().invoke(app, ["search", "--technique", "kd", "--study", "nope",
                                   "--trials", "0", "--storage", storage,
                                   "--home", str(tmp_path / "home")])
    assert out.exit_code != 0
    assert "there is no study 'nope'" in out.output and "give --trials N" in out.output
    assert "nope" not in {s.study_name for s in optuna.get_all_study_summaries(storage)}


def test_a_worker_finishing_beside_another_leaves_it_the_confirmation(
    tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two independent workers that finish at the same moment: the one whose claim lost says
    which worker confirms and trains nothing; alone, the same search confirms."""
    run_search(_opts(tmp_path, tiny_dataset, trials=2, cv=2, confirm_seeds=0),
               status=lambda m: None)

    def another_worker_claims(seconds: float) -> None:  # what it writes while this one waits
        study = optuna.load_study(study_name="kd", storage=f"sqlite:///{tmp_path / 'asc.db'}")
        StudyRecord(confirming={"host": "gpu-2", "pid": 4242, "token": "x"}).write(study)

    monkeypatch.setattr("asc_auto.confirm.time",
                        SimpleNamespace(sleep=another_worker_claims, time=time.time,
                                        perf_counter=time.perf_counter))
    said: list[str] = []
    study = run_search(_opts(tmp_path, tiny_dataset, trials=0, confirm_top=2, confirm_seeds=1),
                       status=said.append)
    assert "worker gpu-2 pid 4242, finishing at the same moment, confirms the top " \
           "configurations and runs what follows" in said, said
    assert CONFIRMATION not in study.user_attrs
    assert not any(line.startswith("confirming trial") for line in said)
    monkeypatch.setattr("asc_auto.confirm.time",
                        SimpleNamespace(sleep=lambda s: None, time=time.time,
                                        perf_counter=time.perf_counter))
    study = run_search(_opts(tmp_path, tiny_dataset, trials=0, confirm_top=2, confirm_seeds=1),
                       status=said.append)
    assert len(study.user_attrs[CONFIRMATION]["trials"]) == 2


def test_a_large_split_from_few_identifiers_is_cross_validated_one_fold_each(
    tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsdd's case: enough validation clips, but all of one speaker of four. Its accuracy is
    one speaker's, so each trial is scored over one fold per speaker instead."""
    monkeypatch.setattr("asc_auto.cv.SMALL_VALIDATION", 0)  # as if the split were large
    data = tmp_path / "speakers"
    shutil.copytree(tiny_dataset, data)
    meta = data / "meta.csv"
    head, *rows = meta.read_text().splitlines()
    fields = head.split("\t")
    ident = fields.index("identifier")
    out = []
    for i, row in enumerate(rows):
        cells = row.split("\t")
        cells[ident] = f"speaker{i % 4}"
        out.append("\t".join(cells))
    meta.write_text("\n".join([head, *out]) + "\n")
    said: list[str] = []
    study = run_search(_opts(tmp_path, data, trials=1, confirm_seeds=0), status=said.append)
    assert study.user_attrs["cv_folds"] == 4
    line = next(line for line in said if "cross-validation" in line)
    assert re.search(r"4-fold cross-validation over 35 clips \(a single validation split "
                     r"would hold \d+ from [1-4] identifier\(s\); --cv 0 turns this off\)",
                     line), line
    (trial,) = study.get_trials()
    assert len(trial.user_attrs["cv_accuracies"]) == 4
    # told to keep one split: it does, and says what its standard errors do not cover
    said.clear()
    one = run_search(_opts(tmp_path, data, trials=1, confirm_seeds=0, cv=0, study="one"),
                     status=said.append)
    assert one.user_attrs["cv_folds"] == 0
    assert any(re.match(r"warning: the validation split holds clips of [1-4] identifier\(s\) "
                        r"\(speakers, locations\): a trial's standard error counts clips, not "
                        r"sources", line) for line in said), said


def test_a_trial_that_cannot_enter_the_top_stops_between_folds(
    tmp_path: Path, tiny_dataset: Path
) -> None:
    """Once a trial's scored folds leave it below the best finished trial even with every
    remaining clip right, its remaining folds are not trained (without confirmation the best
    alone can be picked); the paper trial always runs every fold, and `--pruner none` too."""
    def search(trials: int, **kw: object) -> optuna.Study:
        return run_search(SearchOptions(
            technique="baseline", data=tiny_dataset, epochs=1, trials=trials, cv=2,
            confirm_seeds=0, storage=f"sqlite:///{tmp_path / 'asc.db'}", home=tmp_path / "home",
            progress=False, **kw), status=said.append)  # type: ignore[arg-type]

    said: list[str] = []
    study = search(1)
    paper = study.trials[0]
    assert paper.state == TrialState.COMPLETE and paper.user_attrs["source"] == "paper"
    # a finished trial no other can beat: every later one is hopeless after its first fold
    study.add_trial(optuna.trial.create_trial(
        params=paper.params, distributions=paper.distributions, value=1.0,
        user_attrs={**paper.user_attrs, "source": "search", "cv_accuracies": [1.0, 1.0]}))
    said.clear()
    study = search(1)
    plan = next(line for line in said if line.startswith("each trial trains"))
    assert plan.endswith("; Hyperband may stop a trial from 1 epoch, where it is more than 1 "
                         "standard error below the trials kept there, and between folds once "
                         "it can no longer enter the top few"), plan
    (t,) = study.trials[2:]
    assert t.state == TrialState.PRUNED, (t.user_attrs, said)
    (acc,) = t.user_attrs["cv_accuracies"]  # fold 2 was never trained
    reason = t.user_attrs["stop_reason"]
    found = re.fullmatch(r"fold 1 of 2: at most (0\.\d{4}) with every remaining clip right, "
                         r"below the best trial \(1\.0000\)", reason)
    assert found, reason
    # 35 clips in folds of 17 and 18: fold 1's right answers plus all of fold 2's clips
    assert any(abs(float(found[1]) - (acc * n + 35 - n) / 35) < 1e-4 for n in (17, 18))
    line = next(line for line in said if line.startswith(f"trial {t.number} PRUNED"))
    assert f": {reason}" in line and "val acc" not in line, line  # not fold 1's last epoch
    # the paper trial (the reference every pick is confirmed against) trains every fold
    study.enqueue_trial(paper.params, user_attrs={"source": "paper"})
    study = search(1)
    assert study.trials[-1].user_attrs["source"] == "paper"
    assert study.trials[-1].state == TrialState.COMPLETE
    assert len(study.trials[-1].user_attrs["cv_accuracies"]) == 2
    # with --pruner none every trial trains every fold
    study = search(1, pruner="none")
    last = study.trials[-1]
    assert last.state == TrialState.COMPLETE and len(last.user_attrs["cv_accuracies"]) == 2


def test_a_worker_finishing_while_another_confirms_leaves_it_the_new_trials(
    tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker B finishes its trials while worker A (another machine) confirms: B trains no
    confirmation and says who does; A, its confirmation done, finds B's trial among the top
    few and confirms it too, keeping the runs of the others."""
    from asc_auto.confirm import live_claim

    storage = f"sqlite:///{tmp_path / 'asc.db'}"
    run_search(_opts(tmp_path, tiny_dataset, trials=2, cv=2, confirm_seeds=0),
               status=lambda m: None)
    study = optuna.load_study(study_name="kd", storage=storage)
    a = {"host": "gpu-2", "pid": 4242, "token": "a", "beat": time.time()}
    StudyRecord(confirming=a).write(study)
    said: list[str] = []
    study = run_search(_opts(tmp_path, tiny_dataset, trials=0, confirm_top=2, confirm_seeds=1),
                       status=said.append)  # B
    assert "worker gpu-2 pid 4242 is confirming the top configurations: it confirms this " \
           "run's new top trials when it has finished those, and runs what follows (should " \
           "it stop, `search --trials 0` confirms)" in said, said
    assert CONFIRMATION not in study.user_attrs and live_claim(study) is not None

    # A: its claim is this process's now; during its first run B's trial 9 finishes at the top
    StudyRecord(confirming=None).write(study, ["confirming"])
    monkeypatch.setattr("asc_auto.confirm.SETTLE_SECONDS", 0.0)
    best = max((t for t in study.trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    runs: list[tuple[int, int]] = []

    def rescore(objective: object, trial: optuna.trial.FrozenTrial, seed: int,
                study: object = None, say: object = None) -> CvScore:
        if not runs:
            study.add_trial(optuna.trial.create_trial(
                params=best.params, distributions=best.distributions, value=1.0,
                user_attrs={**best.user_attrs, "source": "search"}))
        runs.append((trial.number, seed))
        return CvScore((0.5 + trial.number / 100,), (10,))

    monkeypatch.setattr("asc_auto.search.rescore", rescore)
    said.clear()
    study = run_search(_opts(tmp_path, tiny_dataset, trials=0, confirm_top=2, confirm_seeds=1,
                             confirm_max_seeds=1), status=said.append)
    new = study.trials[-1].number
    assert "trials another worker finished during the confirmation entered the top: " \
           "confirming the new top configurations" in said, said
    record = study.user_attrs[CONFIRMATION]["trials"]
    assert str(new) in record and len(record) in (2, 3)  # the new top two (+ the paper's)
    assert sum(1 for n, _ in runs if n == new) == 1  # the new trial scored once
    assert len(runs) == len(set(runs))  # and nothing twice
    assert pick_trial(study).number == new
    assert study.user_attrs["confirming"] is None  # released
