"""teacher-logits: every training clip scored by the fold model that did not train on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import asc_auto.crossfit as crossfit_mod
from asc_auto.cli import app
from asc_auto.context import study_context
from asc_auto.crossfit import teacher_logits
from asc_auto.data.splits import grouped_folds
from asc_auto.data.tau import load_dataset
from asc_auto.ir import IrModel
from asc_auto.search import SearchOptions, run_search
from asc_auto.teacher_logits import read_teacher_logits
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


def test_each_training_clip_is_scored_by_the_model_that_left_it_out(
        searched, tiny_dataset: Path, tmp_path: Path) -> None:
    study, home, url = searched
    out = tmp_path / "oof.npz"
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
    # rebuild each fold's split and model: its held-out clips' rows are its own logits
    ctx = study_context(study, get_technique("baseline"), home, None, "cpu", False,
                        lambda m: None)
    folders = sorted((home / study.study_name / "teacher-logits").glob("trial-0-*/fold-*"))
    assert [f.name for f in folders] == ["fold-0", "fold-1", "fold-2"]
    eval_x = ctx.features.select(tuple(evaluate))[0].float().numpy()
    eval_sum = np.zeros((len(evaluate), len(dataset.labels)))
    seen: set[str] = set()
    for folder, (_, held) in zip(folders, grouped_folds(dataset.train, 3, 0), strict=True):
        names = tuple(c.filename for c in held)
        model = IrModel(folder / "model.xml")
        mine = model.logits(ctx.features.select(names)[0].float().numpy())
        np.testing.assert_allclose(np.stack([rows[n] for n in names]), mine, rtol=1e-4,
                                   atol=1e-4)
        eval_sum += model.logits(eval_x)
        seen.update(names)
    assert seen == set(train)  # every training clip held out once
    np.testing.assert_allclose(np.stack([rows[n] for n in evaluate]), eval_sum / 3,
                               rtol=1e-4, atol=1e-4)
    # the accuracy it printed is the file's own, out of fold
    y = {c.filename: dataset.labels.index(c.label) for c in dataset.train}
    oof = np.mean([int(np.argmax(rows[f])) == y[f] for f in train])
    assert f"out-of-fold accuracy {oof:.4f}" in result.output


def test_a_second_run_reuses_the_fold_models_and_never_replaces_a_file_unasked(
        searched, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    study, home, url = searched
    out = tmp_path / "oof.npz"
    said: list[str] = []
    first = teacher_logits(study, out, folds=2, home=home, progress=False, status=said.append)
    assert [f.reused for f in first.folds] == [False, False]
    # what the two fold models will cost, from the first one's timed epoch, said once
    cost = [line for line in said if line.startswith("cost here:")]
    assert len(cost) == 1 and cost[0].startswith("cost here: fold model 1 ran "), said
    assert "2 fold models at most" in cost[0]
    before = out.read_bytes()
    monkeypatch.setattr(crossfit_mod, "run_seed",
                        lambda *a, **k: pytest.fail("a fold model on disk was trained again"))
    again = teacher_logits(study, tmp_path / "again.npz", folds=2, home=home, progress=False,
                           status=lambda m: None)
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
