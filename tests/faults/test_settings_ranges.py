"""Fault corpus: settings out of range are refused when the space file is read (issue 8 item 7).

`[train] epochs = 0` used to record an untrained model as COMPLETE and `batch_size = 0` crashed a
trial. Every numeric field of every settings table declares its range beside it
(`asc_auto.tables.ranged`); a value outside it is one line naming the file, `table.key`, the range
and the fix, exit 2, before features are built or a trial runs.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import typing
from pathlib import Path

import pytest
from typer.testing import CliRunner

import asc_auto
import asc_auto.techniques  # registers every technique's settings tables
from asc_auto.cli import app
from asc_auto.errors import ConfigError
from asc_auto.features.config import FRONTENDS, frontend_config_from_dict
from asc_auto.space import load_space
from asc_auto.tables import RANGE, SETTINGS_TABLES, Range, dataclass_from_table

SPACES = Path(__file__).parents[1] / "spaces"
TABLES = {"kd": {"teacher"}, "int8": {"augment"}}  # each technique's own tables
runner = CliRunner()


def _with(technique: str, table: str, line: str, tmp_path: Path) -> Path:
    """The tiny test space of `technique` with `line` set at the top of [table]."""
    text = (SPACES / f"{technique}.toml").read_text()
    key = line.split(" = ")[0]
    header = f"[{table}]\n"
    if header not in text:
        text += f"\n{header}"
    head, _, rest = text.partition(header)
    body, bracket, tail = rest.partition("\n[")  # this table's lines, then the next tables
    body = re.sub(rf"^{key} = .*$", "", body, count=1, flags=re.M)
    space = tmp_path / "space.toml"
    space.write_text(f"{head}{header}{line}\n{body}{bracket}{tail}")
    return space


@pytest.mark.parametrize(("table", "line", "message"), [
    ("train", "epochs = 0", r"key 'train\.epochs': must be in \[1, inf\), got 0"),
    ("train", "batch_size = 0", r"key 'train\.batch_size': must be in \[2, inf\), got 0"),
    ("train", "lr = -0.1", r"key 'train\.lr': must be in \(0, 10\], got -0\.1"),
    ("teacher", "epochs = 0", r"key 'teacher\.epochs': must be in \[1, inf\), got 0"),
    ("demo.train", "epochs = 0", r"key 'demo\.train\.epochs': must be in \[1, inf\), got 0"),
    ("features", "win_ms = nan", r"key 'features\.win_ms': must be a finite number"),
])
def test_out_of_range_settings_are_refused_before_any_work(table: str, line: str, message: str,
                                                           tmp_path: Path,
                                                           tiny_dataset: Path) -> None:
    space = _with("kd", table, line, tmp_path)
    home = tmp_path / "home"
    result = runner.invoke(app, ["search", "--technique", "kd", "--data", str(tiny_dataset),
                                 "--space", str(space), "--home", str(home)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {space}: key "), result.output
    assert re.search(message, result.output) and "fix: use a value in" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not (home / "cache" / "features").exists()  # refused before any feature was built


@pytest.mark.parametrize(("technique", "table", "line", "key"), [
    ("int8", "augment", "noise_prob = 2.0", "augment.noise_prob"),  # was: every trial FAIL
    ("int8", "augment", "snr_db = nan", "augment.snr_db"),  # was: NaN noise, silently
    ("kd", "teacher", "width = 0", "teacher.width"),  # was: found after the study was made
    ("kd", "train", "seed = -1", "train.seed"),
])
def test_technique_tables_are_checked_when_the_space_file_is_loaded(
        technique: str, table: str, line: str, key: str, tmp_path: Path) -> None:
    space = _with(technique, table, line, tmp_path)
    with pytest.raises(ConfigError) as err:
        load_space(space, technique, TABLES[technique])
    assert err.value.key == key and str(err.value).startswith(str(space))
    assert "fix: use a value in" in str(err.value)


@pytest.mark.parametrize(("features", "key", "words"), [
    ({"clip_seconds": 0.001}, "features.clip_seconds", "fewer than the 257 a 512-point STFT"),
    ({"clip_seconds": float("inf")}, "features.clip_seconds", "must be a finite number"),
    ({"kind": "gcc", "n_mels": 0}, "features.n_mels", "must be in [1, inf), got 0"),
    ({"kind": "waveform", "clip_seconds": 1e-6}, "features.clip_seconds", "no sample"),
])
def test_feature_settings_that_would_crash_the_build_are_refused(features: dict, key: str,
                                                                 words: str) -> None:
    with pytest.raises(ConfigError) as err:
        frontend_config_from_dict(features, "space.toml")
    assert err.value.key == key and words in str(err.value)


@pytest.mark.parametrize(("param", "key", "words"), [
    ('type = "float"\nlow = nan\nhigh = 0.1', "params.p.low", "must be a finite number"),
    ('type = "float"\nlow = 1e-4\nhigh = inf\nlog = true', "params.p.high", "finite number"),
    ('type = "int"\nlow = 2\nhigh = 64\nstep = 2\nlog = true', "params.p.step",
     "log scale takes no step"),
    ('type = "categorical"\nchoices = [[3, 3], [5, 5]]', "params.p.choices",
     "is not a number, string or boolean"),
])
def test_search_ranges_that_optuna_would_refuse_mid_search_are_refused(
        param: str, key: str, words: str, tmp_path: Path) -> None:
    text = (SPACES / "kd.toml").read_text().replace("[paper]\n", "[paper]\np = 1\n", 1)
    space = tmp_path / "space.toml"
    space.write_text(f"{text}\n[params.p]\n{param}\n")
    with pytest.raises(ConfigError) as err:
        load_space(space, "kd", TABLES["kd"])
    assert err.value.key == key and words in str(err.value)


@pytest.mark.parametrize(("technique", "old", "new", "key", "words"), [
    # was: anything but "unstructured" silently pruned whole channels
    ("lt", 'choices = ["unstructured", "structured"]', 'choices = ["unstructured", "unstuctured"]',
     "params.pruning.choices", "'unstuctured' is not a value this technique understands"),
    # was: every trial of that choice FAILED with "'bf16' is not a valid Precision"
    ("kd", 'choices = ["fp16", "fp32", "int8"]', 'choices = ["fp16", "bf16"]',
     "params.precision.choices", "'bf16' is not a value"),
])
def test_categorical_choices_a_technique_does_not_understand_are_refused_on_load(
        technique: str, old: str, new: str, key: str, words: str, tmp_path: Path,
        tiny_dataset: Path) -> None:
    text = (SPACES / f"{technique}.toml").read_text()
    assert old in text
    space = tmp_path / "space.toml"
    space.write_text(text.replace(old, new, 1))
    home = tmp_path / "home"
    result = runner.invoke(app, ["search", "--technique", technique, "--data", str(tiny_dataset),
                                 "--space", str(space), "--home", str(home)])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert line.startswith(f"error: {space}: key '{key}'") and words in line, line
    assert "fix: use values from" in line and len(line.splitlines()) == 1
    assert not (home / "cache" / "features").exists()  # refused before any feature was built


@pytest.mark.parametrize(("param", "key", "words"), [
    ('type = "categorical"\nchoices = ["avg", "mean"]', "params.pool.choices", "'mean' is not"),
    ('type = "int"\nlow = 0\nhigh = 1', "params.pool.type", "is 'int'"),  # not categorical
])
def test_kd_pool_choices_are_checked_against_the_models_pools(param: str, key: str, words: str,
                                                              tmp_path: Path) -> None:
    from asc_auto.techniques import TECHNIQUES
    text = (SPACES / "kd.toml").read_text().replace("[paper]\n", "[paper]\npool = 0\n", 1)
    text = text.replace("pool = 0", 'pool = "avg"' if "choices" in param else "pool = 0")
    space = tmp_path / "space.toml"
    space.write_text(f"{text}\n[params.pool]\n{param}\n")
    with pytest.raises(ConfigError) as err:
        load_space(space, "kd", TABLES["kd"], TECHNIQUES["kd"].choices)
    assert err.value.key == key and words in str(err.value)


def test_a_boolean_choice_is_not_taken_for_an_integer(tmp_path: Path) -> None:
    """use_gcc reads True/False; TOML's 1 equals True in Python but is not what was meant."""
    from asc_auto.techniques import TECHNIQUES
    text = (SPACES / "gcc.toml").read_text()
    booleans = '[params.use_gcc]\ntype = "categorical"\nchoices = [true, false]\n'
    assert booleans in text and "\nuse_gcc = true\n" in text
    loaded = load_space(SPACES / "gcc.toml", "gcc", {"gcc"}, TECHNIQUES["gcc"].choices)
    assert [p.choices for p in loaded.params if p.name == "use_gcc"] == [(True, False)]
    space = tmp_path / "space.toml"
    space.write_text(text.replace(booleans, booleans.replace("true, false", "1, 0"))
                     .replace("\nuse_gcc = true\n", "\nuse_gcc = 1\n"))
    with pytest.raises(ConfigError) as err:
        load_space(space, "gcc", {"gcc"}, TECHNIQUES["gcc"].choices)
    assert err.value.key == "params.use_gcc.choices" and "1 is not a value" in str(err.value)


def _numeric(cls: type) -> list[str]:
    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls)
            if {int, float} & {hints[f.name], *typing.get_args(hints[f.name])}]


@pytest.mark.parametrize("cls", sorted({*SETTINGS_TABLES.values(), *FRONTENDS.values()},
                                       key=lambda c: c.__name__))
def test_every_numeric_setting_declares_its_range(cls: type) -> None:
    missing = [n for n in _numeric(cls)
               if not isinstance(cls.__dataclass_fields__[n].metadata.get(RANGE), Range)]
    assert _numeric(cls) and not missing


def test_every_table_read_with_dataclass_from_table_is_registered() -> None:
    """So `load_space` checks it before any work: found by reading the package's source."""
    parsed: set[str] = set()
    for path in Path(asc_auto.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", "") ==
                    "dataclass_from_table" and isinstance(node.args[0], ast.Name)):
                parsed.add(node.args[0].id)
    assert parsed and parsed <= {cls.__name__ for cls in SETTINGS_TABLES.values()}


def test_a_settings_dataclass_without_ranges_is_a_programming_error() -> None:
    @dataclasses.dataclass(frozen=True)
    class Forgot:
        steps: int = 3

    with pytest.raises(TypeError, match=r"Forgot: numeric fields \['steps'\] declare no range"):
        dataclass_from_table(Forgot, {}, "f.toml", "forgot")
