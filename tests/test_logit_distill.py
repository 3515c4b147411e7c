"""int8 and lt distil from stored teacher logits: the searched params appear only with a teacher,
the paper trial keeps the paper's training, the loss is Hinton's soft targets beside the labels,
and a search, its retrain and `show` carry the teacher through."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asc_auto.data.tau import load_dataset
from asc_auto.logit_distill import (
    TEMPERATURE,
    WEIGHT,
    Distillation,
    distillation,
    with_distill_params,
)
from asc_auto.retrain import retrain
from asc_auto.search import SearchOptions, prepare_search, run_search
from asc_auto.space import ParamSpec
from asc_auto.teacher_logits import write_teacher_logits
from asc_auto.techniques import aclnet_common
from asc_auto.transfer import FileRef, Sources

SPACES = Path(__file__).parent / "spaces"


def _logits_file(dataset: Path, path: Path, seed: int = 0, sharp: float = 4.0) -> np.ndarray:
    """Teacher outputs for every clip: the true class raised by `sharp` over noise."""
    ds = load_dataset(dataset)
    clips = ds.train + ds.evaluate
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(clips), len(ds.labels))).astype(np.float32)
    for i, clip in enumerate(clips):
        logits[i, ds.labels.index(clip.label)] += sharp
    write_teacher_logits(path, [c.filename for c in clips], logits)
    return logits


def _setup(data: Path, home: Path, logits: tuple[Path, ...] = (), technique: str = "int8"):
    return prepare_search(SearchOptions(technique=technique, data=data,
                                        space=SPACES / f"{technique}.toml", home=home,
                                        progress=False, epochs=1, teacher_logits=logits),
                          status=lambda m: None)


def test_params_appear_only_with_stored_logits(tmp_path: Path, tiny_dataset: Path) -> None:
    plain = _setup(tiny_dataset, tmp_path / "home")
    assert WEIGHT not in {p.name for p in plain.space.params} and WEIGHT not in plain.space.paper
    _logits_file(tiny_dataset, tmp_path / "t.npz")
    taught = _setup(tiny_dataset, tmp_path / "home", (tmp_path / "t.npz",))
    added = {p.name: p for p in taught.space.params}
    assert added[WEIGHT] == ParamSpec(WEIGHT, "float", low=0.0, high=0.9)
    assert added[TEMPERATURE].log and (added[TEMPERATURE].low, added[TEMPERATURE].high) == (1, 8)
    assert taught.space.paper[WEIGHT] == 0.0  # the paper trial trains as the paper did
    # a space file's own definition and paper value are kept
    own = ParamSpec(WEIGHT, "float", low=0.2, high=0.5)
    space = plain.space.__class__(**{**plain.space.__dict__, "params": (*plain.space.params, own),
                                     "paper": {**plain.space.paper, WEIGHT: 0.3}})
    sources = Sources(teacher_logits=(FileRef.of(tmp_path / "t.npz", "logits"),))
    mixed = with_distill_params(space, sources)
    assert [p for p in mixed.params if p.name == WEIGHT] == [own]
    assert mixed.paper[WEIGHT] == 0.3 and mixed.paper[TEMPERATURE] == 1.0


def test_the_loss_is_soft_targets_beside_the_labels() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(6, 4), torch.randn(6, 4)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    w, t = 0.4, 3.0
    got = Distillation(teacher, w, t).loss_fn()((student, torch.zeros(6, 2)), y, (teacher,))
    soft = F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1),
                    log_target=True, reduction="batchmean") * t * t
    assert float(got) == pytest.approx(float(w * soft + (1 - w) * F.cross_entropy(student, y)),
                                       rel=1e-6)


def test_distillation_follows_the_weight_and_the_training_clips(tmp_path: Path,
                                                                tiny_dataset: Path) -> None:
    logits = _logits_file(tiny_dataset, tmp_path / "t.npz")
    ctx = _setup(tiny_dataset, tmp_path / "home", (tmp_path / "t.npz",)).context
    assert distillation({WEIGHT: 0.0, TEMPERATURE: 2.0}, ctx) is None  # the paper's training
    got = distillation({WEIGHT: 0.5, TEMPERATURE: 2.0}, ctx)
    assert got is not None and (got.weight, got.temperature) == (0.5, 2.0)
    ds = load_dataset(tiny_dataset)
    names = [c.filename for c in ds.train + ds.evaluate]
    rows = [names.index(f) for f in ctx.train_files]
    assert np.array_equal(got.logits.numpy(), logits[rows])
    plain = _setup(tiny_dataset, tmp_path / "home").context
    assert distillation({WEIGHT: 0.5}, plain) is None  # no teacher: nothing to distil


def _trained(ctx, config) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    model = aclnet_common.build_aclnet(config, ctx)
    aclnet_common.train_aclnet(model, config, ctx)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_weight_zero_trains_as_without_a_teacher_and_above_zero_otherwise(
        tmp_path: Path, tiny_dataset: Path) -> None:
    _logits_file(tiny_dataset, tmp_path / "t.npz")
    taught = _setup(tiny_dataset, tmp_path / "home", (tmp_path / "t.npz",)).context
    plain = _setup(tiny_dataset, tmp_path / "home").context
    config = dict(taught.space.paper)
    alone = _trained(plain, {k: v for k, v in config.items() if k not in (WEIGHT, TEMPERATURE)})
    same = _trained(taught, config)
    assert all(torch.equal(alone[k], same[k]) for k in alone)
    other = _trained(taught, {**config, WEIGHT: 0.7, TEMPERATURE: 4.0})
    assert any(not torch.equal(alone[k], other[k]) for k in alone
               if alone[k].is_floating_point())


@pytest.mark.slow
def test_an_int8_search_distils_retrains_and_shows_its_teacher(tmp_path: Path,
                                                              tiny_dataset: Path) -> None:
    _logits_file(tiny_dataset, tmp_path / "t.npz")
    storage = f"sqlite:///{tmp_path / 'asc.db'}"
    said: list[str] = []
    study = run_search(SearchOptions(
        technique="int8", data=tiny_dataset, space=SPACES / "int8.toml", trials=3, epochs=1,
        storage=storage, home=tmp_path / "home", progress=False, cv=0, confirm_seeds=0,
        teacher_logits=(tmp_path / "t.npz",)), status=said.append)
    done = [t for t in study.trials if t.value is not None]
    assert done and done[0].number == 0 and done[0].params[WEIGHT] == 0.0
    assert all(0.0 <= t.params[WEIGHT] <= 0.9 and 1.0 <= t.params[TEMPERATURE] <= 8.0
               for t in done)
    attrs = study.user_attrs
    assert attrs["teacher_source"] == "logits" and attrs["teacher_params"] == 0
    assert 0.0 <= attrs["teacher_val_accuracy"] <= 1.0
    from asc_auto.techniques.base import get_technique

    notes = get_technique("int8").study_notes(attrs, study.best_trial)
    assert notes and notes[0].startswith("KD teacher (logits t.npz): validation accuracy")
    seeds = retrain(study, seeds=1, home=tmp_path / "home", progress=False, status=said.append)
    assert seeds.seeds[0].accuracy is not None
    assert seeds.teacher_accuracy is not None and not math.isnan(seeds.teacher_accuracy)


def test_a_teacher_below_the_best_student_is_flagged_with_the_fix_that_applies() -> None:
    import optuna

    from asc_auto.techniques.base import get_technique

    best = optuna.trial.create_trial(value=0.9, params={}, distributions={})
    attrs = {"teacher_val_accuracy": 0.5, "teacher_params": 0, "teacher_source": "logits",
             "teacher_members": [{"source": "logits", "file": "/x/t.npz", "val_accuracy": 0.5,
                                  "params": 0}]}
    lines = get_technique("int8").study_notes(attrs, best)
    assert lines[-1].startswith("warning: the KD teacher (0.5000) is not better than the best "
                                "student (0.9000)")
    assert lines[-1].endswith("fix: --teacher-logits of a stronger model (`asc-auto "
                              "teacher-logits` writes a study's, with out-of-fold outputs that "
                              "measure it; `asc-auto predict --logits FILE` an exported model's)")
    assert get_technique("int8").study_notes({}, best) == []  # no teacher: nothing said


def test_a_portfolio_entry_keeps_its_values_and_starts_distilling_at_the_usual_setting(
        tmp_path: Path, tiny_dataset: Path) -> None:
    """An entry measured without a teacher names no distillation params: enqueued with a
    teacher, its own values are fixed and it distils at weight 0.5, T 4 (not a random draw)."""
    from asc_auto.portfolio import PORTFOLIO
    from asc_auto.schema import TrialRecord
    from asc_auto.search import setup_study

    space = tmp_path / "int8.toml"
    space.write_text((SPACES / "int8.toml").read_text() + """
[[portfolio]]
name = "mine"
width = 0.25
llf1 = 5
llf2 = 9
depth = 3
lr = 0.005
mixup_alpha = 0.1
calibration_clips = 8
qat_epochs = 0
""")
    _logits_file(tiny_dataset, tmp_path / "t.npz")
    study, _ = setup_study(SearchOptions(
        technique="int8", data=tiny_dataset, space=space, trials=3, epochs=1,
        storage=f"sqlite:///{tmp_path / 'asc.db'}", home=tmp_path / "home", progress=False,
        cv=0, teacher_logits=(tmp_path / "t.npz",)), status=lambda m: None)
    waiting = study.get_trials(deepcopy=False)
    entry = [t for t in waiting if TrialRecord.from_trial(t).source == PORTFOLIO]
    assert len(entry) == 1
    fixed = entry[0].system_attrs["fixed_params"]
    assert fixed["width"] == 0.25 and fixed["llf1"] == 5
    assert fixed[WEIGHT] == 0.5 and fixed[TEMPERATURE] == 4.0
    paper = [t for t in waiting if t.system_attrs["fixed_params"].get(WEIGHT) == 0.0]
    assert len(paper) == 1  # the paper trial: the paper's training, fixed
