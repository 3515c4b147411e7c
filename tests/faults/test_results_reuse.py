"""Fault corpus: results of one study, dataset or setting never reused for, or mixed into, another.

Issue 8 items 3 (retrain reused a seed of another dataset), 4 (resume accepted other data, epochs
or space) and 5 (study names reaching the file system).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest
import sqlalchemy

import asc_auto.retrain as retrain_mod
from asc_auto.data.synth import synthesize
from asc_auto.data.tau import dataset_fingerprint, load_dataset, stat_fingerprint
from asc_auto.errors import AscError, UsageError
from asc_auto.keys import check_study_name, study_folder
from asc_auto.retrain import retrain
from asc_auto.search import SearchOptions, run_search

pytestmark = pytest.mark.slow
SPACE = Path(__file__).parents[1] / "spaces" / "kd.toml"


def _search(data: Path, home: Path, url: str, **kw: object) -> object:
    opts = SearchOptions(technique="kd", data=data, space=kw.pop("space", SPACE),  # type: ignore[arg-type]
                         trials=kw.pop("trials", 1), epochs=kw.pop("epochs", 1),  # type: ignore[arg-type]
                         storage=url, home=home, progress=False, **kw)  # type: ignore[arg-type]
    return run_search(opts, status=lambda m: None)


@pytest.fixture(scope="module")
def other_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same layout and size as tiny_dataset, other audio (seed 1)."""
    root = tmp_path_factory.mktemp("other") / "tau3"
    return synthesize(root, n_clips=48, clip_seconds=1.0, seed=1, progress=False)


def test_retrain_never_reuses_a_seed_of_a_same_named_study_on_other_data(
        tiny_dataset: Path, other_dataset: Path, tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    first = _search(tiny_dataset, home, f"sqlite:///{tmp_path / 'a.db'}")
    done = retrain(first, seeds=1, home=home, progress=False, status=lambda m: None)
    seed0 = done.folder / "seed-0"
    before = (seed0 / "result.json").read_bytes()

    # Another DB, the same study name, other data, the same --home: a new study.
    second = _search(other_dataset, home, f"sqlite:///{tmp_path / 'b.db'}")
    calls: list[int] = []
    real = retrain_mod.run_seed

    def counting(technique, ctx, config, seed, *rest, **hooks):  # type: ignore[no-untyped-def]
        calls.append(seed)
        return real(technique, ctx, config, seed, *rest, **hooks)

    monkeypatch.setattr(retrain_mod, "run_seed", counting)
    again = retrain(second, seeds=1, home=home, progress=False, status=lambda m: None)
    assert calls == [0]  # trained, not taken from the first study's folder
    assert again.folder != done.folder
    assert (seed0 / "result.json").read_bytes() == before  # the first study's seed is intact
    doc = json.loads((again.folder / "seed-0" / "result.json").read_text())
    assert doc["key"] != json.loads(before)["key"]

    # The same study again: its own seed is found and reused.
    calls.clear()
    retrain(second, seeds=1, home=home, progress=False, status=lambda m: None)
    assert calls == []

    # Other epochs for the same study: a new key, trained again.
    third = retrain(second, seeds=1, epochs=2, home=home, progress=False, status=lambda m: None)
    assert calls == [0] and third.folder != again.folder


def test_resume_refuses_other_data_epochs_or_space(tiny_dataset: Path, other_dataset: Path,
                                                    tmp_path: Path) -> None:
    home, url = tmp_path / "home", f"sqlite:///{tmp_path / 's.db'}"
    _search(tiny_dataset, home, url, trials=1)
    with pytest.raises(UsageError, match=r"another dataset \(--data") as err:
        _search(other_dataset, home, url)
    assert str(tiny_dataset) in str(err.value) and str(other_dataset) in str(err.value)
    assert "--study NEW_NAME" in str(err.value)
    with pytest.raises(UsageError, match=r"another epochs per trial .*: 1, this run has 2"):
        _search(tiny_dataset, home, url, epochs=2)
    changed = tmp_path / "kd.toml"
    changed.write_text(SPACE.read_text().replace("high = 16", "high = 12", 1))
    with pytest.raises(UsageError, match=r"another search space \(--space"):
        _search(tiny_dataset, home, url, space=changed)
    # A copy of the same space file under another path is the same space: accepted.
    same = tmp_path / "same.toml"
    shutil.copy(SPACE, same)
    study = _search(tiny_dataset, home, url, space=same, trials=1)
    assert len(study.get_trials()) == 2


def test_a_copied_dataset_resumes_its_study_and_older_studies_still_check_times(
        tiny_dataset: Path, tmp_path: Path) -> None:
    """Staged to another disk with new file times (`cp` without -p): the same dataset."""
    home, url = tmp_path / "home", f"sqlite:///{tmp_path / 's.db'}"
    study = _search(tiny_dataset, home, url, trials=1)
    copy = tmp_path / "staged"
    shutil.copytree(tiny_dataset, copy, copy_function=shutil.copy)  # new mtimes
    assert len(_search(copy, home, url, trials=1).get_trials()) == 2

    # A study made before content hashing: checked by sizes and times once, then by content.
    study.set_user_attr("data_fingerprint", stat_fingerprint(load_dataset(tiny_dataset)))
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as db:  # what an older study lacks: the key itself (no Optuna API)
        db.execute(sqlalchemy.text("DELETE FROM study_user_attributes WHERE "
                                   "key = 'data_sha256'"))
    engine.dispose()
    with pytest.raises(UsageError, match=r"file sizes and times, as studies recorded it"):
        _search(copy, home, url, trials=1)  # other times than it recorded
    resumed = _search(tiny_dataset, home, url, trials=1)
    assert len(resumed.get_trials()) == 3
    assert resumed.user_attrs["data_sha256"] == dataset_fingerprint(load_dataset(tiny_dataset))
    assert len(_search(copy, home, url, trials=1).get_trials()) == 4  # by content from now on


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "", "x" * 101, "a b"])
def test_study_names_that_would_leave_home_are_refused(name: str, tmp_path: Path,
                                                       tiny_dataset: Path) -> None:
    with pytest.raises(UsageError, match="study name"):
        check_study_name(name)
    with pytest.raises(AscError, match="study name"):
        _search(tiny_dataset, tmp_path / "home", f"sqlite:///{tmp_path / 'n.db'}", study=name)
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "n.db").exists()  # refused before the storage was created


def test_a_study_made_elsewhere_with_an_odd_name_stays_under_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for name in ("../x", "a/../../b", "..", "/etc"):
        folder = study_folder(home, name).resolve()
        assert folder.parent == home.resolve(), name
    assert study_folder(home, "kd") == home / "kd"


def test_retrain_refuses_a_space_or_data_changed_since_the_search(
        tiny_dataset: Path, tmp_path: Path) -> None:
    """What retrain (and export) train must be what the search validated, or nothing."""
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    space = tmp_path / "kd.toml"
    shutil.copy(SPACE, space)
    home, url = tmp_path / "home", f"sqlite:///{tmp_path / 's.db'}"
    study = _search(data, home, url, space=space, trials=1)
    quiet = {"seeds": 1, "home": home, "progress": False, "status": lambda m: None}

    space.write_text(SPACE.read_text().replace("epochs = 2", "epochs = 3", 1))  # [train]
    with pytest.raises(UsageError, match=r"another search space than .*kd\.toml gives now.*"
                                         r"restore it as the search had it"):
        retrain(study, **quiet)
    shutil.copy(SPACE, space)

    wav = next(iter(sorted((data / "audio").glob("*.wav"))))
    original = wav.read_bytes()
    wav.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # one sample, same size
    with pytest.raises(UsageError, match=r"searched on other data than .* holds now"):
        retrain(study, **quiet)
    wav.write_bytes(original)
    assert len(retrain(study, **quiet).seeds) == 1  # as searched: trained


def test_retrain_finds_a_moved_dataset_by_content(tiny_dataset: Path, other_dataset: Path,
                                                  tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    home, url = tmp_path / "home", f"sqlite:///{tmp_path / 's.db'}"
    study = _search(data, home, url, trials=1)
    quiet = {"seeds": 1, "home": home, "progress": False, "status": lambda m: None}
    first = retrain(study, **quiet)
    moved = tmp_path / "scratch" / "data"
    shutil.copytree(data, moved, copy_function=shutil.copy)  # new times, like `cp -r`
    shutil.rmtree(data)
    with pytest.raises(AscError, match=r"dataset folder does not exist"):
        retrain(study, **quiet)
    calls: list[int] = []
    monkeypatch.setattr(retrain_mod, "run_seed", lambda *a, **k: calls.append(1))
    again = retrain(study, data=moved, **quiet)  # the same content: its seed is found, not rerun
    assert calls == [] and again.seeds[0].accuracy == first.seeds[0].accuracy
    with pytest.raises(UsageError, match=r"searched on other data than .* holds now"):
        retrain(study, data=other_dataset, **quiet)
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as db:  # a study from before content hashing: nothing to check against
        db.execute(sqlalchemy.text("DELETE FROM study_user_attributes WHERE "
                                   "key = 'data_sha256'"))
    engine.dispose()
    older = optuna.load_study(study_name=study.study_name, storage=url)
    with pytest.raises(UsageError, match=r"made before datasets were recorded by content.*"
                                         r"leave out --data"):
        retrain(older, data=moved, **quiet)
