"""The KD teacher is trained once, cached with its outputs, and never trusted half-written."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

import asc_auto.teacher as teacher_mod
from asc_auto.search import SearchOptions, prepare_search
from asc_auto.teacher import TeacherSettings, ensure_teacher, load_teacher_model

SPACE = Path(__file__).parent / "spaces" / "kd.toml"
TINY = TeacherSettings(width=0.0625, depth=4, epochs=1)


@pytest.fixture(scope="module")
def ctx(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    opts = SearchOptions(technique="kd", data=tiny_dataset, space=SPACE, progress=False,
                         home=tmp_path_factory.mktemp("teacher-home"))
    return prepare_search(opts, status=lambda m: None).context


def test_trained_once_then_loaded_from_cache(ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ensure_teacher(ctx, TINY)
    assert first.logits.shape == (len(ctx.features.filenames), ctx.n_classes)
    assert first.embeddings.shape[0] == len(ctx.features.filenames)
    assert 0.0 <= first.val_accuracy <= 1.0

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("the cached teacher was retrained")

    monkeypatch.setattr(teacher_mod, "train_model", boom)
    again = ensure_teacher(ctx, TINY)
    assert again.key == first.key and np.array_equal(again.logits, first.logits)
    # the stored weights reproduce the stored outputs
    model = load_teacher_model(again)
    x, _ = ctx.features.select(ctx.features.filenames[:4])
    logits = model(x)[0].detach().numpy()
    assert np.allclose(logits, again.logits[:4], atol=1e-4)


def test_training_a_teacher_says_its_cost_once(ctx) -> None:
    said: list[str] = []
    settings = dataclasses.replace(TINY, epochs=3)
    loud = dataclasses.replace(ctx, status=said.append)
    teacher_mod.train_teacher(loud, settings, teacher_mod.teacher_train_config(loud, settings))
    costs = [line for line in said if line.startswith("cost here: ")]
    assert len(costs) == 1, said
    assert re.fullmatch(r"cost here: the teacher ran [\d.]+ s per epoch, so a teacher \(3 epochs\)"
                        r" takes about [\d.]+ (s|min); --teacher-epochs shortens it", costs[0])


def test_changed_settings_give_a_new_teacher(ctx) -> None:
    a = ensure_teacher(ctx, TINY)
    b = ensure_teacher(ctx, TeacherSettings(width=0.0625, depth=4, epochs=1, lr=3e-3))
    assert a.key != b.key and a.path != b.path


def test_incomplete_cache_is_ignored_and_rebuilt(ctx) -> None:
    settings = TeacherSettings(width=0.0625, depth=3, epochs=1)
    done = ensure_teacher(ctx, settings)
    meta = json.loads((done.path / "meta.json").read_text())
    meta["complete"] = False
    (done.path / "meta.json").write_text(json.dumps(meta))
    rebuilt = ensure_teacher(ctx, settings)
    assert json.loads((rebuilt.path / "meta.json").read_text())["complete"] is True


def test_teacher_table_typos_and_types_name_the_key() -> None:
    from asc_auto.errors import ConfigError
    from asc_auto.teacher import teacher_settings

    assert teacher_settings({"width": 1, "epochs": 3}, "kd.toml").width == 1.0
    with pytest.raises(ConfigError, match=r"kd\.toml: key 'teacher\.widht'"):
        teacher_settings({"widht": 0.5}, "kd.toml")
    with pytest.raises(ConfigError, match=r"teacher\.epochs"):
        teacher_settings({"epochs": 2.5}, "kd.toml")
    with pytest.raises(ConfigError, match=r"teacher\.pool.*use one of avg, max"):
        teacher_settings({"pool": "median"}, "kd.toml")


def test_a_max_pooled_teacher_is_its_own_cache_entry(ctx) -> None:
    from asc_auto.teacher import teacher_key, teacher_train_config

    plain = teacher_key(ctx, TINY, teacher_train_config(ctx, TINY))
    maxed_settings = TeacherSettings(width=0.0625, depth=4, epochs=1, pool="max")
    maxed = teacher_key(ctx, maxed_settings, teacher_train_config(ctx, maxed_settings))
    assert maxed != plain
    assert maxed_settings.vgg_config(1, 3).pool == "max" and TINY.vgg_config(1, 3).pool == "avg"


def test_the_students_budget_is_not_part_of_the_teachers_key(ctx) -> None:
    """Changing the student's min_clips_seen (or --epochs) must not retrain an unchanged
    teacher; changing the teacher's own budget must."""
    import dataclasses

    from asc_auto.teacher import teacher_key, teacher_train_config

    def key(student_min: int, settings: TeacherSettings) -> str:
        other = dataclasses.replace(ctx, train_cfg=dataclasses.replace(
            ctx.train_cfg, min_clips_seen=student_min, epochs=ctx.train_cfg.epochs + student_min))
        return teacher_key(other, settings, teacher_train_config(other, settings))

    assert key(0, TINY) == key(50_000, TINY) == key(7, TINY)
    bigger = dataclasses.replace(TINY, min_clips_seen=10_000)
    assert key(0, bigger) != key(0, TINY)
    assert teacher_train_config(ctx, bigger).epochs == -(-10_000 // len(ctx.train_files))


def test_a_content_crop_teacher_trains_on_crops_under_its_own_key(
        ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    from asc_auto.errors import ConfigError
    from asc_auto.features.crops import FrameCrop
    from asc_auto.teacher import teacher_key, teacher_settings, teacher_train_config

    cropped = TeacherSettings(width=0.0625, depth=4, epochs=1, crops="content")
    assert teacher_key(ctx, cropped, teacher_train_config(ctx, cropped)) != teacher_key(
        ctx, TINY, teacher_train_config(ctx, TINY))
    transforms: list[object] = []
    train = teacher_mod.train_model

    def recording(*args: object, **kwargs: object):
        transforms.append(kwargs.get("transform"))
        return train(*args, **kwargs)

    monkeypatch.setattr(teacher_mod, "train_model", recording)
    made = ensure_teacher(ctx, cropped)
    assert len(transforms) == 1 and isinstance(transforms[0], FrameCrop)
    assert transforms[0].frames == 101  # 1 s at the test space's 10 ms hop
    # what students distil from: outputs on every whole clip
    assert made.logits.shape == (len(ctx.features.filenames), ctx.n_classes)

    # crop_seconds: its own key when it matters; 1 s (the default) and whole clips keep the keys
    # every cache was written with before the option
    import dataclasses

    def key(settings: TeacherSettings) -> str:
        return teacher_key(ctx, settings, teacher_train_config(ctx, settings))

    half = dataclasses.replace(cropped, crop_seconds=0.5)
    assert key(half) != key(cropped)
    assert key(dataclasses.replace(cropped, crop_seconds=1.0)) == key(cropped)
    assert key(dataclasses.replace(TINY, crop_seconds=0.5)) == key(TINY)
    ensure_teacher(ctx, half)
    assert len(transforms) == 2 and transforms[1].frames == 51  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"teacher\.crops.*'contents'.*clip, content"):
        teacher_settings({"crops": "contents"}, "kd.toml")
