"""clip_seconds = "auto": features as long as the dataset's recordings, not padded to TAU's 10 s."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from asc_auto.data.audio import longest_seconds, padding_share
from asc_auto.data.synth import synthesize
from asc_auto.errors import ConfigError, DataError
from asc_auto.search import SearchOptions, prepare_search
from asc_auto.space import default_space_file, load_space

SPACE = Path(__file__).parent / "spaces" / "kd.toml"


def test_auto_is_replaced_by_the_measurement_and_numbers_pass_through() -> None:
    space = load_space(default_space_file("kd"), "kd", {"teacher"})
    assert space.features["clip_seconds"] == "auto"  # shipped spaces follow the data
    assert space.with_clip_seconds(lambda: 3.4).features["clip_seconds"] == 3.4
    fixed = load_space(SPACE, "kd", {"teacher"})

    def never() -> float:
        raise AssertionError("a fixed length needs no measurement")

    assert fixed.with_clip_seconds(never).features["clip_seconds"] == 1.0


def test_a_misspelt_auto_names_the_key_and_the_fix(tmp_path: Path) -> None:
    space = load_space(SPACE, "kd", {"teacher"})
    bad = space.__class__(**{**space.__dict__, "features": {**space.features,
                                                           "clip_seconds": "atuo"}})
    with pytest.raises(ConfigError, match=r"features.clip_seconds.*'atuo'.*\"auto\""):
        bad.with_clip_seconds(lambda: 1.0)


def test_longest_clip_rounds_up_to_a_tenth(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "d", n_clips=12, clip_seconds=0.73, seed=1, progress=False)
    paths = sorted((root / "audio").glob("*.wav"))
    assert longest_seconds(paths) == pytest.approx(0.8)


def test_a_clip_replaced_under_the_same_name_is_measured_again(tmp_path: Path) -> None:
    short = synthesize(tmp_path / "a", n_clips=12, clip_seconds=0.73, seed=1, progress=False)
    long = synthesize(tmp_path / "b", n_clips=12, clip_seconds=1.46, seed=1, progress=False)
    paths = sorted((short / "audio").glob("*.wav"))
    assert longest_seconds(paths) == pytest.approx(0.8)  # measured and remembered
    shutil.copyfile(sorted((long / "audio").glob("*.wav"))[0], paths[0])  # other size, time
    assert longest_seconds(paths) == pytest.approx(1.5)
    assert padding_share(paths, 1.5) == pytest.approx(11 / 12 * (1 - 0.73 / 1.5), abs=0.01)
    paths[1].unlink()
    with pytest.raises(DataError, match=paths[1].name):
        longest_seconds(paths)


def test_a_search_on_short_clips_builds_features_of_their_length(tmp_path: Path) -> None:
    root = synthesize(tmp_path / "d", n_clips=24, clip_seconds=0.73, seed=1, progress=False)
    text = SPACE.read_text().replace("clip_seconds = 1.0", 'clip_seconds = "auto"')
    space = tmp_path / "kd.toml"
    space.write_text(text)
    setup = prepare_search(SearchOptions(technique="kd", data=root, space=space,
                                         home=tmp_path / "home", progress=False),
                           status=lambda m: None)
    assert setup.context.space.features["clip_seconds"] == pytest.approx(0.8)
    frames = setup.context.features.x.shape[-1]
    assert frames == 1 + round(0.8 * 1000 / 10)  # 10 ms hop, centred frames: 81, not 101
