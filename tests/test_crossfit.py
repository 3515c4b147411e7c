"""teacher-logits: every training clip scored by the fold model that did not train on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import asc_auto.crossfit as crossfit_mod
import asc_auto.retrain as retrain_mod
from asc_auto.cli import app
from asc_auto.context import study_context
from asc_auto.crossfit import teacher_logits
from asc_auto.data.splits import grouped_folds
from asc_auto.data.tau import load_dataset
from asc_auto.errors import UsageError
from asc_auto.ir import IrModel
from asc_auto.retrain import retrain
from asc_auto.search import SearchOptions, run_search
from asc_auto.teacher_logits import read_heldout_logits, read_teacher_logits
from asc_auto.techniques.base import get_technique

pytestmark = pytest.mark.slow
SPACE = Path(__file__).parent / "spaces" / "baseline.toml"


@pytest.fixture(scope="module")
def searched(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("crossfit-home")
    url = f"sqlite:///{home / 'asc.db'}"
    study = run_search(SearchOptions(technique="baseline", data=tiny_dataset, space=SPACE,
                                     trials=1, epochs=1, cv=0, confirm_seeds=0, storage=url,
                                     home=home, progress=False), status=lambda m: None)
    return study, home, url


def _fold_models(home: Path, study: str) -> list[Path]:
    return sorted((home / study / "teacher-logits").glob("trial-0-*/fold-*"))


def test_held_out_rows_come_from_the_model_that_left_each_clip_out_and_targets_from_all(
        searched, tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study, home, url = searched
    out = tmp_path / "teacher.npz"
    result = CliRunner().invoke(app, ["teacher-logits", "--study", study.study_name,
                                      "--storage", url, "--home", str(home), "--out", str(out),
                                      "--folds", "3"])
    assert result.exit_code == 0, result.output
    assert "out-of-fold accuracy" in result.output and "evaluate fold" in result.output
    dataset = load_dataset(tiny_dataset)
    train = [c.filename for c in dataset.train]
    evaluate = [c.filename for c in dataset.evaluate]
    files, logits, embeds = read_teacher_logits(out, dataset.labels, train)
    assert sorted(files) == sorted(train + evaluate) and embeds is None
    rows = {f: logits[i] for i, f in enumerate(files)}
    held_files, held_logits = read_heldout_logits(out, len(dataset.labels))  # type: ignore[misc]
    assert list(held_files) == train
    held = dict(zip(held_files, held_logits, strict=True))
    # rebuild each fold's split and model: its held-out clips' rows are its own logits
    ctx = study_context(study, get_technique("baseline"), home, None, "cpu", False,
                        lambda m: None)
    folders = _fold_models(home, study.study_name)
    assert [f.name for f in folders] == ["fold-0", "fold-1", "fold-2"]
    seen: set[str] = set()
    for folder, (_, left_out) in zip(folders, grouped_folds(dataset.train, 3, 0), strict=True):
        names = tuple(c.filename for c in left_out)
        mine = IrModel(folder / "model.xml").logits(ctx.features.select(names)[0].float().numpy())
        np.testing.assert_allclose(np.stack([held[n] for n in names]), mine, rtol=1e-4,
                                   atol=1e-4)
        seen.update(names)
    assert seen == set(train)  # every training clip held out once
    # the targets: the model trained on all of fold1_train, which is the trial's retrain seed 0
    seed_dir = next((home / study.study_name / "retrain").glob("trial-0-*/seed-0"))
    model = IrModel(seed_dir / "model.xml")
    for names in (train, evaluate):
        mine = model.logits(ctx.features.select(tuple(names))[0].float().numpy())
        np.testing.assert_allclose(np.stack([rows[n] for n in names]), mine, rtol=1e-4,
                                   atol=1e-4)
    # the accuracy it printed is the held-out one
    y = {c.filename: dataset.labels.index(c.label) for c in dataset.train}
    oof = np.mean([int(np.argmax(held[f])) == y[f] for f in train])
    assert f"out-of-fold accuracy {oof:.4f}" in result.output
    # and retrain finds that seed on disk: nothing trains again
    monkeypatch.setattr(retrain_mod, "run_seed",
                        lambda *a, **k: pytest.fail("the all-clips model was trained again"))
    assert len(retrain(study, seeds=1, home=home, progress=False, status=lambda m: None).seeds) == 1


def test_out_of_fold_targets_and_the_evaluate_clips_mean(searched, tiny_dataset: Path,
                                                          tmp_path: Path) -> None:
    study, home, _ = searched
    out = tmp_path / "oof.npz"
    r = teacher_logits(study, out, folds=3, home=home, progress=False, status=lambda m: None,
                       targets="oof")
    assert r.targets == "oof" and len(r.folds) == 3
    dataset = load_dataset(tiny_dataset)
    train = [c.filename for c in dataset.train]
    evaluate = [c.filename for c in dataset.evaluate]
    files, logits, _ = read_teacher_logits(out, dataset.labels, train)
    rows = {f: logits[i] for i, f in enumerate(files)}
    held_files, held_logits = read_heldout_logits(out, len(dataset.labels))  # type: ignore[misc]
    np.testing.assert_array_equal(np.stack([rows[f] for f in held_files]), held_logits)
    ctx = study_context(study, get_technique("baseline"), home, None, "cpu", False,
                        lambda m: None)
    eval_x = ctx.features.select(tuple(evaluate))[0].float().numpy()
    mean = np.mean([IrModel(f / "model.xml").logits(eval_x)
                    for f in _fold_models(home, study.study_name)], axis=0)
    np.testing.assert_allclose(np.stack([rows[n] for n in evaluate]), mean, rtol=1e-4,
                               atol=1e-4)
    with pytest.raises(UsageError, match="--targets best: choose all or oof"):
        teacher_logits(study, out, folds=3, home=home, progress=False, targets="best")


def test_a_second_run_reuses_the_fold_models_and_never_replaces_a_file_unasked(
        searched, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study, home, url = searched
    out = tmp_path / "oof.npz"
    said: list[str] = []
    first = teacher_logits(study, out, folds=2, home=home, progress=False, status=said.append,
                           targets="oof")
    assert [f.reused for f in first.folds] == [False, False]
    # what the two fold models will cost, from the first one's timed epoch, said once
    cost = [line for line in said if line.startswith("cost here:")]
    assert len(cost) == 1 and cost[0].startswith("cost here: model 1 ran "), said
    assert "2 models at most" in cost[0]
    before = out.read_bytes()
    monkeypatch.setattr(crossfit_mod, "run_seed",
                        lambda *a, **k: pytest.fail("a fold model on disk was trained again"))
    again = teacher_logits(study, tmp_path / "again.npz", folds=2, home=home, progress=False,
                           status=lambda m: None, targets="oof")
    assert [f.reused for f in again.folds] == [True, True]
    assert (tmp_path / "again.npz").read_bytes() == before
    assert again.oof_accuracy == first.oof_accuracy and again.oof_clips == len(study_context(
        study, get_technique("baseline"), home, None, "cpu", False, lambda m: None).train_files)
    # an existing --out is the user's: refused in one line, left as it was
    result = CliRunner().invoke(app, ["teacher-logits", "--study", study.study_name,
                                      "--storage", url, "--home", str(home), "--out", str(out),
                                      "--folds", "2"])
    assert result.exit_code != 0 and "exists" in result.output and "--force" in result.output
    assert out.read_bytes() == before


def test_fold_models_train_side_by_side_under_the_parents_keys(searched, tmp_path: Path) -> None:
    study, home, url = searched
    said: list[str] = []
    side = teacher_logits(study, tmp_path / "side.npz", folds=2, seed=1, home=home,
                          progress=False, status=said.append, jobs=2, storage=url)
    assert [f.reused for f in side.folds] == [False, False]
    assert any("in 2 processes" in line for line in said), said
    assert sum(line.startswith("fold model ") for line in said) == 2, said
    # the processes trained under the parent's keys: a plain run finds both on disk
    again = teacher_logits(study, tmp_path / "again.npz", folds=2, seed=1, home=home,
                           progress=False, status=lambda m: None)
    assert [f.reused for f in again.folds] == [True, True]
    assert (tmp_path / "again.npz").read_bytes() == (tmp_path / "side.npz").read_bytes()
