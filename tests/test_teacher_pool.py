"""[teacher] pool = "auto": max for short sounds zero-padded to the window, avg for full clips;
[teacher] crops = "auto": content crops as long as 90 % of the clips (at least 1 s) when such a
crop is shorter than the window, whole clips else."""

from __future__ import annotations

from pathlib import Path

import pytest

from asc_auto.data.audio import padding_share
from asc_auto.data.synth import synthesize
from asc_auto.errors import ConfigError
from asc_auto.search import SearchOptions, prepare_search
from asc_auto.space import space_digest
from asc_auto.teacher import settle_crops, settle_pool, teacher_settings

SPACE = Path(__file__).parent / "spaces" / "kd.toml"  # clip_seconds = 1.0, no pool given


def _space_with_pool(tmp_path: Path, pool: str, crops: str | None = None) -> Path:
    path = tmp_path / "kd.toml"
    extra = f'pool = "{pool}"\n' + (f'crops = "{crops}"\n' if crops else "")
    text = SPACE.read_text().replace("[teacher]\n", f"[teacher]\n{extra}")
    if crops:  # a window long enough for the longest clips of these tests
        text = text.replace("clip_seconds = 1.0", "clip_seconds = 1.5")
    path.write_text(text)
    return path


def _setup(tmp_path: Path, clip_seconds: float, pool: str, lines: list[str],
           crops: str | None = None):
    root = synthesize(tmp_path / f"d{clip_seconds}", n_clips=12, clip_seconds=clip_seconds,
                      seed=1, progress=False)
    return prepare_search(SearchOptions(technique="kd", data=root, progress=False,
                                        space=_space_with_pool(tmp_path, pool, crops),
                                        home=tmp_path / "home"), status=lines.append)


def test_padding_share_is_the_mean_unfilled_part_of_the_window(tmp_path: Path) -> None:
    short = synthesize(tmp_path / "s", n_clips=10, clip_seconds=0.25, seed=1, progress=False)
    full = synthesize(tmp_path / "f", n_clips=10, clip_seconds=1.0, seed=1, progress=False)
    paths = sorted((short / "audio").glob("*.wav")) + sorted((full / "audio").glob("*.wav"))
    # half the clips fill a quarter of 1 s, half all of it: (0.75 + 0) / 2 padding
    assert padding_share(paths, 1.0) == pytest.approx(0.375, abs=0.01)
    # a clip longer than the window is cropped, never counted as more than full
    assert padding_share(paths, 0.25) == pytest.approx(0.0, abs=0.01)


def test_short_clips_get_a_max_pooled_teacher_and_say_why(tmp_path: Path) -> None:
    lines: list[str] = []
    setup = _setup(tmp_path, 0.3, "auto", lines)
    assert setup.context.space.tables["teacher"]["pool"] == "max"
    said = [m for m in lines if "teacher pool" in m]
    assert len(said) == 1 and "-> max" in said[0] and "70% zero padding" in said[0], said
    # settled before the digest: the study records the pool its teacher has, like "max" given
    explicit = _setup(tmp_path / "explicit", 0.3, "max", [])
    assert space_digest(setup.space) == space_digest(explicit.space)


def test_clips_that_fill_the_window_keep_the_papers_average(tmp_path: Path) -> None:
    lines: list[str] = []
    setup = _setup(tmp_path, 1.0, "auto", lines)
    assert setup.context.space.tables["teacher"]["pool"] == "avg"
    assert any("-> avg" in m and "0% zero padding" in m for m in lines), lines


def test_a_given_pool_is_kept_and_a_wrong_one_names_the_key(tmp_path: Path) -> None:
    lines: list[str] = []
    setup = _setup(tmp_path, 0.3, "avg", lines)  # the user's choice wins over the padding
    assert setup.context.space.tables["teacher"]["pool"] == "avg"
    assert not any("teacher pool" in m for m in lines)
    with pytest.raises(ConfigError, match=r"teacher\.pool.*'median'.*avg, max, auto"):
        settle_pool(setup.space.with_overrides({"teacher": {"pool": "median"}}),
                    setup.dataset, status=lines.append)


def test_sounds_that_fit_a_crop_get_a_content_cropped_teacher_and_say_why(tmp_path: Path) -> None:
    lines: list[str] = []
    setup = _setup(tmp_path, 0.6, "max", lines, crops="auto")
    assert setup.context.space.tables["teacher"]["crops"] == "content"
    assert "crop_seconds" not in setup.context.space.tables["teacher"]  # 1 s: the default
    said = [m for m in lines if "teacher crop" in m]
    assert said == ['teacher crops "auto" -> content: 1 s crops (90% of the clips are at most '
                    '0.60 s long; at least 1 s) are shorter than the 1.5 s window'], said
    # settled before the digest, like the pool: the same study as "content" given
    explicit = _setup(tmp_path / "explicit", 0.6, "max", [], crops="content")
    assert space_digest(setup.space) == space_digest(explicit.space)


def test_clips_longer_than_a_crop_keep_whole_clip_training(tmp_path: Path) -> None:
    lines: list[str] = []
    setup = _setup(tmp_path, 1.5, "max", lines, crops="auto")
    assert setup.context.space.tables["teacher"]["crops"] == "clip"
    assert "crop_seconds" not in setup.context.space.tables["teacher"]  # no part in whole clips
    assert [m for m in lines if "teacher crop" in m] == [
        'teacher crops "auto" -> clip: a 1.5 s crop (90% of the clips are at most 1.50 s long; '
        'at least 1 s) fills the 1.5 s window']
    # a window no longer than a crop: crops would change nothing but the teacher's cache key
    short = settle_crops(setup.space.with_overrides({"teacher": {"crops": "auto"},
                                                     "features": {"clip_seconds": 1.0}}),
                         setup.dataset, status=lines.append)
    assert short.tables["teacher"]["crops"] == "clip"
    assert lines[-1].endswith("fills the 1 s window")
    with pytest.raises(ConfigError, match=r"teacher\.crops.*'middle'.*clip, content, auto"):
        settle_crops(setup.space.with_overrides({"teacher": {"crops": "middle"}}),
                     setup.dataset, status=lines.append)


def test_sounds_longer_than_a_second_get_crops_that_hold_them(tmp_path: Path) -> None:
    """office16-like: events longer than 1 s in a longer window. 1 s crops cut them (the teacher
    lost 11-17 points there); crops of the clips' 90th-percentile length did not
    (docs/BENCHMARKS.md, "Design measurements: kd")."""
    lines: list[str] = []
    setup = _setup(tmp_path, 1.5, "max", lines, crops="auto")  # 1.5 s clips
    wide = setup.space.with_overrides({"teacher": {"crops": "auto"},
                                       "features": {"clip_seconds": 2.0}})
    settled = settle_crops(wide, setup.dataset, status=lines.append)
    assert settled.tables["teacher"]["crops"] == "content"
    assert settled.tables["teacher"]["crop_seconds"] == 1.5
    assert lines[-1] == ('teacher crops "auto" -> content: 1.5 s crops (90% of the clips are at '
                         'most 1.50 s long; at least 1 s) are shorter than the 2 s window')
    # the same study as the values given by hand
    given = wide.with_overrides({"teacher": {"crops": "content", "crop_seconds": 1.5}})
    assert space_digest(settled) == space_digest(settle_crops(given, setup.dataset, print))
    # content given, the length "auto": settled and said alone
    lines.clear()
    alone = settle_crops(wide.with_overrides({"teacher": {"crops": "content",
                                                          "crop_seconds": "auto"}}),
                         setup.dataset, status=lines.append)
    assert alone.tables["teacher"]["crop_seconds"] == 1.5
    assert lines == ['teacher crop_seconds "auto" -> 1.5 (90% of the clips are at most 1.50 s '
                     'long; at least 1 s)']
    # whole clips given: the length plays no part and leaves the table
    lines.clear()
    whole = settle_crops(wide.with_overrides({"teacher": {"crops": "clip",
                                                          "crop_seconds": "auto"}}),
                         setup.dataset, status=lines.append)
    assert "crop_seconds" not in whole.tables["teacher"] and lines == []
    # a number is kept; anything else is refused when the table is read, naming the key
    kept = settle_crops(wide.with_overrides({"teacher": {"crops": "content",
                                                         "crop_seconds": 1.2}}),
                        setup.dataset, status=lines.append)
    assert kept.tables["teacher"]["crop_seconds"] == 1.2
    with pytest.raises(ConfigError, match=r"teacher\.crop_seconds.*'long'.*seconds.*auto"):
        settle_crops(wide.with_overrides({"teacher": {"crop_seconds": "long"}}), setup.dataset)
    with pytest.raises(ConfigError, match=r"teacher\.crop_seconds.*'long'.*seconds.*auto"):
        teacher_settings({"crops": "content", "crop_seconds": "long"}, "kd.toml")
