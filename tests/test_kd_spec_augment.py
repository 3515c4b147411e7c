"""The kd student's searched SpecAugment (`spec_augment`): off for it, the teacher's kept, and
the submission's `data_augmentation` says which ran."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from asc_auto.errors import ConfigError
from asc_auto.features import augment
from asc_auto.search import SearchOptions, prepare_search
from asc_auto.space import default_space_file, load_technique_space
from asc_auto.submission import data_augmentation
from asc_auto.techniques.base import get_technique
from asc_auto.techniques.kd import SPEC_AUGMENT

SPACE = Path(__file__).parent / "spaces" / "kd.toml"


def test_the_student_trains_without_masks_and_the_teacher_keeps_the_tables(
        tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        tiny_kd_space: Callable[..., Path]) -> None:
    space = tiny_kd_space({"spec_augment": (list(SPEC_AUGMENT), "off")})
    setup = prepare_search(SearchOptions(technique="kd", data=tiny_dataset, progress=False,
                                         space=space,
                                         home=tmp_path / "home", epochs=1), status=lambda m: None)
    tech, ctx = setup.technique, setup.context
    assert (ctx.train_cfg.freq_masks, ctx.train_cfg.time_masks) == (2, 2)  # TrainConfig's
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(setup.space.paper_trial_params())
    config = setup.space.suggest(study.ask())
    assert config["spec_augment"] == "off"

    made: list[tuple[int, int]] = []
    real = augment.SpecAugment.__init__

    def recording(self: augment.SpecAugment, freq_masks: int = 2, freq_width: int = 8,
                  time_masks: int = 2, time_width: int = 40, fill: str = "mean") -> None:
        made.append((freq_masks, time_masks))
        real(self, freq_masks, freq_width, time_masks, time_width, fill)

    monkeypatch.setattr(augment.SpecAugment, "__init__", recording)
    tech.prepare(ctx)  # trains the teacher
    assert made == [(2, 2)]
    outcome = tech.fit(tech.build(config, ctx), config, ctx)
    assert made == [(2, 2), (0, 0)]
    assert 0.0 <= outcome.accuracy <= 1.0

    tech.fit(tech.build({**config, "spec_augment": "on"}, ctx), {**config, "spec_augment": "on"},
             ctx)
    assert made[-1] == (2, 2)


def test_the_trials_settings_read_the_param_refuse_other_values_and_reach_the_submission(
        tiny_dataset: Path, tmp_path: Path) -> None:
    setup = prepare_search(SearchOptions(technique="kd", data=tiny_dataset, progress=False,
                                         space=SPACE, home=tmp_path / "home", epochs=1),
                           status=lambda m: None)
    tech, ctx = setup.technique, setup.context
    config = {"lr": 2e-3, "mixup_alpha": 0.1}
    on = tech.trial_train_config(config, ctx)  # a space without the param: as before it existed
    assert (on.lr, on.mixup_alpha, on.freq_masks, on.time_masks) == (2e-3, 0.1, 2, 2)
    off = tech.trial_train_config({**config, "spec_augment": "off"}, ctx)
    assert (off.lr, off.freq_masks, off.time_masks, off.freq_width) == (2e-3, 0, 0,
                                                                       on.freq_width)
    with pytest.raises(ConfigError, match=r"params\.spec_augment.*'of' is not a value"):
        tech.trial_train_config({**config, "spec_augment": "of"}, ctx)
    logmel = {"kind": "logmel"}
    assert data_augmentation(logmel, off, None) == (
        "mixup (alpha 0.1)")
    assert data_augmentation(logmel, on, None) == (
        "SpecAugment (2 frequency masks up to 8 bands, 2 time masks up to 20 frames), "
        "mixup (alpha 0.1)")


@pytest.mark.parametrize(("name", "entries"), [
    ("kd", {"kernel7-int8-nomask": "off"}), ("kd-small", {})])
def test_shipped_kd_spaces_search_it_from_the_papers_on(name: str, entries: dict[str, str]
                                                        ) -> None:
    """The paper trial keeps the masks and the portfolio's kernel-7 entry runs without them
    (measured both ways: kd.toml's comment), so a search trains both values to the end."""
    technique = get_technique("kd")
    file = default_space_file("kd").with_name(f"{name}.toml")
    space = load_technique_space(file, technique)
    spec = next(p for p in space.params if p.name == "spec_augment")
    assert tuple(spec.choices) == SPEC_AUGMENT
    assert space.paper["spec_augment"] == "on"
    assert {e.name: e.point["spec_augment"] for e in space.portfolio} == entries
