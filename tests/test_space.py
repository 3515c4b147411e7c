"""Search-space files: shipped ones parse, the paper point lies inside, mistakes name the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from asc_auto.errors import ConfigError, UsageError
from asc_auto.space import (
    default_space_file,
    load_space,
    normalise_simplex,
    resolve_space,
    shipped_spaces,
)
from asc_auto.techniques import TECHNIQUES

KD_TABLES = {"teacher"}


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "space.toml"
    f.write_text(text)
    return f


MINIMAL = """
technique = "kd"
[params.c1]
type = "int"
low = 8
high = 64
[params.w]
type = "simplex"
names = ["alpha", "beta", "gamma"]
[paper]
c1 = 32
alpha = 0.25
beta = 0.25
gamma = 0.5
"""


@pytest.mark.parametrize("name", sorted(TECHNIQUES))
def test_shipped_space_files_parse_and_enqueue_the_paper_point(name: str) -> None:
    tech = TECHNIQUES[name]
    space = load_space(default_space_file(name), name, set(tech.tables), tech.choices)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(space.paper_trial_params())
    trial = study.ask()
    config = space.suggest(trial)
    for key, value in space.paper.items():
        assert config[key] == pytest.approx(value), key
    demo = space.for_demo()
    assert demo.params == space.params


def test_simplex_components_are_normalised_and_sum_to_one(tmp_path: Path) -> None:
    space = load_space(_write(tmp_path, MINIMAL), "kd", KD_TABLES)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(5):
        config = space.suggest(study.ask())
        total = config["alpha"] + config["beta"] + config["gamma"]
        assert total == pytest.approx(1.0)
        assert 8 <= config["c1"] <= 64
    assert normalise_simplex([0.0, 0.0]) == [0.5, 0.5]
    assert normalise_simplex([1.0, 3.0]) == [0.25, 0.75]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("bogus = 1\n" + MINIMAL, "bogus"),
        (MINIMAL + "\nbogus = 1\n", "paper.bogus"),
        (MINIMAL.replace('type = "int"', 'type = "integer"'), "params.c1.type"),
        (MINIMAL.replace("low = 8", 'low = "8"'), "params.c1.low"),
        (MINIMAL.replace("high = 64", "high = 64\nlgo = true"), "params.c1.lgo"),
        (MINIMAL.replace("c1 = 32", "c1 = 300"), "paper.c1"),
        (MINIMAL.replace("c1 = 32", ""), "paper.c1"),
        (MINIMAL.replace("gamma = 0.5", "gamma = 0.9"), "paper"),
        (MINIMAL.replace('technique = "kd"', 'technique = "lt"'), "technique"),
        (MINIMAL + "\n[demo.train]\nepochz = 3\n", "demo.train.epochz"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    file = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        space = load_space(file, "kd", KD_TABLES)
        space.for_demo()
    assert err.value.key == key
    assert str(file) in str(err.value)


def test_invalid_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_space(_write(tmp_path, "technique = \n"), "kd", KD_TABLES)
    with pytest.raises(ConfigError, match="not found"):
        load_space(tmp_path / "nope.toml", "kd", KD_TABLES)


def test_demo_overrides_replace_only_named_keys(tmp_path: Path) -> None:
    text = MINIMAL + "\n[train]\nepochs = 12\nbatch_size = 32\n[demo.train]\nepochs = 2\n"
    space = load_space(_write(tmp_path, text), "kd", KD_TABLES).for_demo()
    assert space.train == {"epochs": 2, "batch_size": 32}


def test_overrides_reach_features_train_and_technique_tables(tmp_path: Path) -> None:
    """CLI switches and benchmark arms (train.time_masks=0) replace fixed values, may set a key
    the file leaves at its default, and leave the loaded space itself unchanged."""
    text = MINIMAL + "\n[train]\nepochs = 12\ntime_masks = 2\n[teacher]\nepochs = 30\n"
    space = load_space(_write(tmp_path, text), "kd", KD_TABLES)
    changed = space.with_overrides({"train": {"time_masks": 0, "batch_size": 16},
                                    "features": {"n_mels": 40},
                                    "teacher": {"min_clips_seen": 0}})
    assert changed.train == {"epochs": 12, "time_masks": 0, "batch_size": 16}
    assert changed.features["n_mels"] == 40
    assert changed.tables["teacher"] == {"epochs": 30, "min_clips_seen": 0}
    assert space.train == {"epochs": 12, "time_masks": 2}
    with pytest.raises(ConfigError) as err:
        space.with_overrides({"trian": {"epochs": 1}})
    assert err.value.key == "trian"


def test_space_option_takes_a_file_or_a_shipped_name(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """--space kd-small works from any folder (an installed asc-auto ships its spaces); a file
    of that name in the current folder wins; anything else is one line listing the names."""
    monkeypatch.chdir(tmp_path)
    assert resolve_space(None) is None
    assert resolve_space(Path("kd-small")) == default_space_file("kd-small")
    assert resolve_space(Path("kd-small.toml")) == default_space_file("kd-small")
    assert default_space_file("kd-small").is_file()
    (tmp_path / "kd-small.toml").write_text("technique = 'kd'\n")
    assert resolve_space(Path("kd-small.toml")) == Path("kd-small.toml")
    with pytest.raises(UsageError, match="one of baseline, gcc") as err:
        resolve_space(Path("nope/kd.toml"))
    assert "nope/kd.toml" in str(err.value)
    assert set(shipped_spaces()) >= set(TECHNIQUES) | {"kd-small"}


def test_one_check_refuses_values_outside_a_range_or_not_numbers() -> None:
    from asc_auto.space import check_choice, check_in_range

    assert check_in_range("lt.toml", "params.sparsity", np.float32(0.5), (0.0, 1.0)) == 0.5
    assert check_in_range("lt.toml", "params.sparsity", np.int64(0), (0.0, 1.0)) == 0.0
    for bad, said in ((True, "True is not a number"), ("half", "'half' is not a number"),
                      (1.0, r"1\.0 is outside \[0, 1\)"), (-0.1, r"-0\.1 is outside \[0, 1\)")):
        with pytest.raises(ConfigError, match=rf"lt\.toml: key 'params\.sparsity': {said}; fix: "
                                              r"use numbers in \[0, 1\)"):
            check_in_range("lt.toml", "params.sparsity", bad, (0.0, 1.0))
    assert check_choice("kd.toml", "params.crops", "clip", ("clip", "content")) == "clip"
    with pytest.raises(ConfigError, match=r"key 'params\.n': True is not a value this technique "
                                          r"understands; fix: use values from 1, 2"):
        check_choice("kd.toml", "params.n", True, (1, 2))  # bool is an int, but not a choice
