"""Retrain trains what the search validated: the clips each search training saw, in epochs of
all of fold1_train (train.epochs_to_see); studies made before that was recorded keep their
epochs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest

from asc_auto.crossfit import fold_plan
from asc_auto.retrain import retrain
from asc_auto.schema import StudyRecord
from asc_auto.search import SearchOptions, run_search
from asc_auto.stats import binomial_se
from asc_auto.train import epochs_to_see

pytestmark = pytest.mark.slow
SPACE = Path(__file__).parent / "spaces" / "baseline.toml"


def test_epochs_to_see_rounds_up_to_the_clips_seen() -> None:
    assert epochs_to_see(4_120, 154) == 27  # office16: a 3-fold search's 40 epochs of 103
    assert epochs_to_see(4_158, 154) == 27 and epochs_to_see(4_159, 154) == 28
    assert epochs_to_see(10, 35) == 1 and epochs_to_see(0, 35) == 1  # never none


def test_retrain_and_fold_models_see_the_searchs_clips(tmp_path: Path,
                                                      tiny_dataset: Path) -> None:
    home, url = tmp_path / "home", f"sqlite:///{tmp_path / 'asc.db'}"
    said: list[str] = []
    study = run_search(SearchOptions(technique="baseline", data=tiny_dataset, space=SPACE,
                                     trials=1, epochs=6, cv=2, confirm_seeds=0, storage=url,
                                     home=home, progress=False), status=said.append)
    # 2 folds of the 35 training clips (17 and 18): each training sees 6 x 17.5 = 105 clips
    assert study.user_attrs["clips_seen"] == 105 and study.user_attrs["epochs"] == 6
    assert not any("preparing" in line for line in said), said  # baseline: nothing to prepare
    assert ("retrain trains 3 epochs of all 35 clips of fold1_train: the 105 clips each search "
            "training sees (--epochs of retrain sets others)") in said, said

    said.clear()
    result = retrain(study, seeds=1, home=home, progress=False, status=said.append)
    doc = json.loads((result.folder / "seed-0" / "result.json").read_text())
    assert doc["epochs"] == 3  # not the search's 6 epochs of 17-18 clips: 105 clips seen
    assert "retraining trial 0 with seed 0 (35 clips, 3 epochs = 105 clips seen)" in said, said
    # a log hears of each seed as it ends: its evaluate accuracy ± SE (13 clips), how long it
    # took, how many are done and the time the rest take at the pace of those trained here
    said.clear()
    three = retrain(study, seeds=3, home=home, progress=False, status=said.append)
    acc = [f"{s.accuracy:.4f} ± {binomial_se(s.accuracy, 13):.3f}" for s in three.seeds]
    lines = [line for line in said if line.startswith("seed ")]
    assert lines[0] == f"seed 0: evaluate accuracy {acc[0]} (on disk); 1 of 3 seeds", said
    assert re.fullmatch(rf"seed 1: evaluate accuracy {re.escape(acc[1])} \((\d+) s\); 2 of 3 "
                        r"seeds, about \1 s left at this pace", lines[1]), lines
    assert re.fullmatch(rf"seed 2: evaluate accuracy {re.escape(acc[2])} \(\d+ s\); 3 of 3 "
                        r"seeds", lines[2]), lines
    # teacher-logits' fold models see as many, each in epochs of its own clips
    plan = fold_plan(study, 2, 0, None, home, None, "cpu", False, lambda m: None, None)
    assert plan.ctx.train_cfg.epochs == 3
    assert sorted((len(c.train_files), c.train_cfg.epochs) for c in plan.contexts) == [
        (17, 7), (18, 6)]
    # --epochs of retrain still sets its own
    assert retrain(study, seeds=1, epochs=2, home=home, progress=False,
                   status=lambda m: None).folder != result.folder

    # a study made before clips_seen was recorded retrains its search's epochs, and a resumed
    # search does not add the record to it (its trials saw other clips than it would say)
    study.set_user_attr("clips_seen", None)
    said.clear()
    old = retrain(study, seeds=1, home=home, progress=False, status=said.append)
    assert json.loads((old.folder / "seed-0" / "result.json").read_text())["epochs"] == 6
    said.clear()
    resumed = run_search(SearchOptions(technique="baseline", data=tiny_dataset, space=SPACE,
                                       trials=0, epochs=6, cv=2, confirm_seeds=0, storage=url,
                                       home=home, progress=False), status=said.append)
    assert StudyRecord.from_study(resumed).clips_seen is None
    assert any(line.startswith("retrain trains this study's 6 epochs on all 35 clips")
               for line in said), said
    assert optuna.load_study(study_name="baseline", storage=url).user_attrs["epochs"] == 6
