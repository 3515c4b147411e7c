"""What a kd student distils from: stored teacher outputs (checked clip by clip), ensembles
(the mean of their members), a teacher without embeddings, and the teacher-vs-student lines."""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import numpy as np
import optuna
import pytest

from asc_auto.context import ContextSettings, build_context
from asc_auto.errors import DataError
from asc_auto.teacher import TeacherSettings, ensure_teachers
from asc_auto.teacher_logits import read_teacher_logits, write_teacher_logits
from asc_auto.teacher_summary import (
    SEEN_NOTE,
    STRONGER_STORED,
    retrain_teacher_lines,
    teacher_lines,
    teacher_se,
)
from asc_auto.techniques.base import get_technique
from asc_auto.techniques.kd import loss_weights
from asc_auto.transfer import FileRef, Sources

SPACE = Path(__file__).parent / "spaces" / "kd.toml"
TINY = TeacherSettings(width=0.0625, depth=3, epochs=1)


def _ctx(data: Path, home: Path, logits: tuple[Path, ...] = ()):
    sources = Sources(teacher_logits=tuple(FileRef.of(p, "logits") for p in logits))
    return build_context(get_technique("kd"), ContextSettings(
        data=data, space_file=SPACE, rule="dcase2020", budget_kb=500.0, home=home,
        progress=False, sources=sources), status=lambda m: None)


@pytest.fixture(scope="module")
def clips(tiny_dataset: Path) -> tuple[list[str], tuple[str, ...]]:
    from asc_auto.data.tau import load_dataset

    ds = load_dataset(tiny_dataset)
    return [c.filename for c in ds.train + ds.evaluate], ds.labels


def _write(path: Path, names: list[str], n_classes: int = 3, seed: int = 0,
           embed: int | None = 4) -> tuple[np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(names), n_classes)).astype(np.float32)
    emb = rng.normal(size=(len(names), embed)).astype(np.float32) if embed else None
    write_teacher_logits(path, names, logits, emb)
    return logits, emb


def test_ensemble_is_the_mean_of_its_members(tmp_path: Path, tiny_dataset: Path, clips) -> None:
    names, _ = clips
    l1, e1 = _write(tmp_path / "a.npz", names, seed=1, embed=4)
    l2, e2 = _write(tmp_path / "b.npz", names[::-1], seed=2, embed=6)  # other row order
    ctx = _ctx(tiny_dataset, tmp_path / "home", (tmp_path / "a.npz", tmp_path / "b.npz"))
    teacher = ensure_teachers(ctx, TINY)
    assert teacher.source == "ensemble" and len(teacher.members) == 2
    logits, embeds = teacher.select(ctx.train_files)
    row1 = [names.index(f) for f in ctx.train_files]
    row2 = [names[::-1].index(f) for f in ctx.train_files]
    assert np.allclose(logits.numpy(), (l1[row1] + l2[row2]) / 2, atol=1e-6)
    assert embeds is not None and embeds.shape == (len(ctx.train_files), 10)  # concatenated
    assert np.array_equal(embeds.numpy(), np.concatenate([e1[row1], e2[row2]], axis=1))
    # the ensemble's validation accuracy is that of the averaged logits
    val = [names.index(f) for f in ctx.val_files]
    val2 = [names[::-1].index(f) for f in ctx.val_files]
    expected = np.mean(((l1[val] + l2[val2]) / 2).argmax(1) == ctx.val_xy[1].numpy())
    assert teacher.val_accuracy == pytest.approx(expected)
    rows = teacher.describe()
    assert [r["source"] for r in rows] == ["logits", "logits"]
    assert rows[0]["val_accuracy"] == pytest.approx(np.mean(l1[val].argmax(1)
                                                            == ctx.val_xy[1].numpy()))


def test_trained_members_are_averaged_too(tmp_path: Path, tiny_dataset: Path) -> None:
    ctx = _ctx(tiny_dataset, tmp_path / "home")
    one = ensure_teachers(ctx, TINY)
    two = ensure_teachers(ctx, TeacherSettings(width=0.0625, depth=3, epochs=1, members=2))
    assert one.source == "trained" and two.source == "ensemble"
    assert two.members[0].key == one.key  # member 0 is the single teacher (same cache entry)
    second = two.members[1]
    assert second.key != one.key  # seeded differently
    rows = one.rows(ctx.train_files)
    assert np.allclose(two.select(ctx.train_files)[0].numpy(),
                       (one.logits[rows] + second.logits[second.rows(ctx.train_files)]) / 2,
                       atol=1e-6)


def test_a_member_without_embeddings_leaves_none(tmp_path: Path, tiny_dataset: Path,
                                                 clips) -> None:
    names, _ = clips
    _write(tmp_path / "a.npz", names, seed=1, embed=4)
    _write(tmp_path / "b.npz", names, seed=2, embed=None)
    ctx = _ctx(tiny_dataset, tmp_path / "home", (tmp_path / "a.npz", tmp_path / "b.npz"))
    assert ensure_teachers(ctx, TINY).select(ctx.train_files)[1] is None
    assert loss_weights({"alpha": 0.5, "beta": 0.25, "gamma": 0.25}, False) == (0.0, 0.5, 0.5)
    assert loss_weights({"alpha": 1.0, "beta": 0.0, "gamma": 0.0}, False) == (0.0, 0.0, 1.0)
    assert loss_weights({"alpha": 0.5, "beta": 0.25, "gamma": 0.25}, True) == (0.5, 0.25, 0.25)


def test_validation_clips_are_optional(tmp_path: Path, tiny_dataset: Path, clips) -> None:
    from asc_auto.data.tau import load_dataset

    train_only = [c.filename for c in load_dataset(tiny_dataset).train]
    _write(tmp_path / "t.npz", train_only)
    ctx = _ctx(tiny_dataset, tmp_path / "home", (tmp_path / "t.npz",))
    teacher = ensure_teachers(ctx, TINY)
    assert teacher.source == "logits"
    assert teacher.val_accuracy is not None  # the validation split is carved from fold1_train
    ctx.val_files = tuple(c.filename for c in load_dataset(tiny_dataset).evaluate)
    from asc_auto.teacher import logits_teacher

    assert logits_teacher(ctx, ctx.sources.teacher_logits[0]).val_accuracy is None


def _error(path: Path, labels: tuple[str, ...], required: list[str]) -> str:
    with pytest.raises(DataError) as err:
        read_teacher_logits(path, labels, required)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    return str(err.value)


def test_bad_files_name_the_first_offending_clip(tmp_path: Path, tiny_dataset: Path,
                                                clips) -> None:
    from asc_auto.data.tau import load_dataset

    names, labels = clips
    required = [c.filename for c in load_dataset(tiny_dataset).train]
    f = tmp_path / "x.npz"
    rng = np.random.default_rng(0)
    good = rng.normal(size=(len(names), 3))

    write_teacher_logits(f, names[2:], good[2:])  # the first two train clips missing
    assert f"no teacher outputs for clip {names[0]} (2 of the" in _error(f, labels, required)
    write_teacher_logits(f, names, good[:, :2])  # 2 classes for a 3-class dataset
    assert "logits have 2 classes, the dataset 3" in _error(f, labels, required)
    assert names[0] in _error(f, labels, required)
    write_teacher_logits(f, names, good, embeddings=np.zeros((len(names) - 1, 4)))
    assert f"first clip without a row: {names[-1]}" in _error(f, labels, required)
    write_teacher_logits(f, names[:-1], good[:-1], embeddings=np.zeros((len(names), 4)))
    assert f"rows left over after the last clip, {names[-2]}" in _error(f, labels, required)
    np.savez(f, filenames=np.array(names), logits=good[:, 0])
    assert f"'logits' is ({len(names)},), expected ({len(names)}, K)" in _error(f, labels, required)
    bad = good.copy()
    bad[5, 1] = np.nan
    write_teacher_logits(f, names, bad)
    assert f"'logits' of clip {names[5]} is NaN or infinite" in _error(f, labels, required)
    write_teacher_logits(f, names, good, labels=list(labels)[::-1])
    assert "columns are transportation, outdoor, indoor" in _error(f, labels, required)
    write_teacher_logits(f, [names[0], *names], np.vstack([good[:1], good]))
    assert f"clip {names[0]!r} appears twice" in _error(f, labels, required)
    np.savez(f, filenames=np.array(names, dtype=object), logits=good)
    assert "pickle" in _error(f, labels, required)
    np.savez(f, names=np.array(names))
    assert "has no 'filenames' array (it has names)" in _error(f, labels, required)
    write_teacher_logits(f, names, good)
    assert read_teacher_logits(f, labels, required)[1].shape == (len(names), 3)


def _trial(value: float, **attrs: object) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(value=value, user_attrs=dict(attrs))


def test_teacher_lines_warn_when_the_teacher_is_no_better() -> None:
    attrs = {"teacher_val_accuracy": 0.6, "teacher_params": 1000, "val_clips": 60,
             "teacher_members": [{"source": "trained", "file": None, "val_accuracy": 0.6,
                                  "params": 1000}]}
    lines = teacher_lines(attrs, _trial(0.7))
    # each accuracy with its binomial standard error on the 60 validation clips
    assert lines[0] == ("KD teacher: 1,000 params, validation accuracy 0.6000 ± 0.063; "
                        "best student 0.7000 ± 0.059")
    assert lines[1].startswith("warning: the KD teacher (0.6000) is not better than the best "
                               "student (0.7000)")
    assert len(teacher_lines(attrs, _trial(0.5))) == 1  # better than the student: no warning
    ensemble = {"teacher_val_accuracy": None, "teacher_params": 0, "val_clips": 50,
                "teacher_members": [
        {"source": "logits", "file": "/x/a.npz", "val_accuracy": None, "params": 0},
        {"source": "checkpoint", "file": "/x/v.safetensors", "val_accuracy": 0.8,
         "params": 50}]}
    lines = teacher_lines(ensemble, _trial(0.9))
    assert lines[0].startswith("KD teacher (ensemble of 2, logits averaged): validation "
                               "accuracy unknown")
    assert "member 2: checkpoint v.safetensors (validation accuracy 0.8000 ± 0.057, 50 params)" \
        in lines[2]
    assert len(lines) == 3  # unknown accuracy: no warning
    assert teacher_lines({}, _trial(0.9)) == []


def test_stored_outputs_that_score_every_validation_clip_are_called_suspect() -> None:
    # office16's baseline CNN, its outputs written on the clips it trained on: 1.000 over the
    # 154 clips of 3 folds, which measures nothing
    member = {"source": "logits", "file": "/x/b.npz", "val_accuracy": 1.0, "params": 0}
    attrs = {"teacher_val_accuracy": 1.0, "teacher_params": 0, "val_clips": 51,
             "train_clips": 103, "cv_folds": 3, "teacher_members": [member]}
    lines = teacher_lines(attrs, _trial(0.8), STRONGER_STORED)
    assert lines[0].startswith("KD teacher (logits b.npz): validation accuracy 1.0000")
    assert lines[1] == SEEN_NOTE and "asc-auto teacher-logits" in lines[1] and len(lines) == 2
    honest = {**attrs, "teacher_val_accuracy": 0.87, "teacher_members": [
        {**member, "val_accuracy": 0.87}]}  # out of fold: no note, and no warning above 0.8
    assert len(teacher_lines(honest, _trial(0.8), STRONGER_STORED)) == 1
    trained = {**attrs, "teacher_members": [{**member, "source": "trained"}]}
    assert SEEN_NOTE not in teacher_lines(trained, _trial(0.8))  # kd's own: trained apart
    weaker = teacher_lines({**honest, "teacher_val_accuracy": 0.7}, _trial(0.8), STRONGER_STORED)
    assert weaker[1].endswith("fix: " + STRONGER_STORED) and "teacher-logits`" in weaker[1]


def test_a_cross_validated_teacher_shows_the_folds_uncertainty() -> None:
    # 5 folds over 150 clips (120 + 30 in the split): one teacher per fold, their mean recorded
    attrs = {"teacher_val_accuracy": 0.8, "teacher_params": 10, "val_clips": 30,
             "train_clips": 120, "cv_folds": 5,
             "teacher_val_accuracy_per_fold": [0.6, 0.7, 0.8, 0.9, 1.0]}
    spread = statistics.stdev([0.6, 0.7, 0.8, 0.9, 1.0]) / math.sqrt(5)  # 0.071 > binomial 0.033
    student = _trial(0.75, value_se=0.05)  # a cross-validated trial records its own
    lines = teacher_lines(attrs, student)
    assert lines == [f"KD teacher: 10 params, validation accuracy 0.8000 ± {spread:.3f}; "
                     "best student 0.7500 ± 0.050"]
    steady = {**attrs, "teacher_val_accuracy_per_fold": [0.8, 0.8, 0.8, 0.8, 0.8]}
    assert teacher_se(steady) == pytest.approx(math.sqrt(0.8 * 0.2 / 150))  # all 150 clips
    assert teacher_se({"teacher_val_accuracy": 0.8}) is None  # clips unknown: a bare value


def test_retrain_shows_its_teacher_beside_the_students_and_warns_when_it_is_no_better() -> None:
    # fsdd at 10 epochs (docs/BENCHMARKS.md): the teacher 82.4 % on the 1,000 evaluate clips,
    # its three students 23.8, 31.4, 34.1 %
    students = [0.238, 0.314, 0.341]
    se = statistics.stdev(students) / math.sqrt(3)
    assert retrain_teacher_lines(0.824, 1000, students) == [
        "KD teacher (trained on all of fold1_train): evaluate accuracy 0.8240 ± 0.012; its "
        f"students 0.2977 ± {se:.3f} (mean ± SE over 3 seeds)"]
    assert len(retrain_teacher_lines(0.30, 1000, students)) == 1  # above their mean: no warning
    weaker = retrain_teacher_lines(0.29, 1000, students)
    assert weaker[1].startswith(
        "warning: the KD teacher (0.2900) is not better than its students (0.2977) on the "
        "evaluate fold")
    assert retrain_teacher_lines(None, 1000, students) == []  # not kd: nothing
    one = retrain_teacher_lines(0.5, 0, [0.4])
    assert one == ["KD teacher (trained on all of fold1_train): evaluate accuracy 0.5000; its "
                   "student 0.4000 (1 seed)"]


def test_held_out_outputs_measure_the_teacher_while_the_logits_teach(tmp_path: Path) -> None:
    """A file from `teacher-logits`: the search scores the teacher on its held-out rows (models
    that did not train on those clips), never on the targets of a model that did."""
    from types import SimpleNamespace

    import torch

    from asc_auto.teacher import TeacherOutputs, _val_accuracy, average_teachers
    from asc_auto.teacher_logits import read_heldout_logits

    labels, names = ["a", "b", "c"], [f"audio/{i}.wav" for i in range(4)]
    y = np.array([0, 1, 2, 0])
    right = np.eye(3)[y] * 5.0  # the all-clips model: every clip right (it trained on them)
    wrong = right.copy()
    wrong[[1, 3]] = np.eye(3)[[0, 1]] * 5.0  # out of fold: two of the four wrong
    f = tmp_path / "t.npz"
    write_teacher_logits(f, names, right, labels=labels, heldout=(names, wrong))
    held = read_heldout_logits(f, 3)
    assert held is not None and held[0] == tuple(names)
    ctx = SimpleNamespace(val_files=tuple(names[1:]), val_xy=(None, torch.from_numpy(y[1:])))
    teacher = TeacherOutputs("k", tuple(names), right.astype(np.float32), None, None, 0, None,
                             source="logits", heldout_files=held[0], heldout_logits=held[1])
    assert _val_accuracy(teacher, ctx) == pytest.approx(1 / 3)  # clips 1-3: only 2 right
    plain = dataclasses.replace(teacher, heldout_files=(), heldout_logits=None)
    assert _val_accuracy(plain, ctx) == 1.0  # without them: the (flattering) targets
    partial = dataclasses.replace(teacher, heldout_files=held[0][:2],
                                  heldout_logits=held[1][:2])
    assert _val_accuracy(partial, ctx) == 1.0  # not covering the split: the targets again
    both = average_teachers([teacher, teacher], ctx)  # an ensemble averages them too
    assert both.heldout_files == tuple(names) and _val_accuracy(both, ctx) == pytest.approx(1 / 3)
    plain_file = tmp_path / "plain.npz"
    write_teacher_logits(plain_file, names, right)
    assert read_heldout_logits(plain_file, 3) is None  # a file without them: none
    np.savez(f, filenames=np.array(names), logits=right, heldout_logits=wrong)
    with pytest.raises(DataError, match="one of 'heldout_filenames' and 'heldout_logits'"):
        read_heldout_logits(f, 3)
    np.savez(f, filenames=np.array(names), logits=right, heldout_filenames=np.array(names),
             heldout_logits=wrong[:, :2])
    with pytest.raises(DataError, match="heldout_logits have 2 classes, the dataset 3"):
        read_heldout_logits(f, 3)
    np.savez(f, filenames=np.array(names), logits=right,
             heldout_filenames=np.array([names[0], *names[:3]]), heldout_logits=wrong)
    with pytest.raises(DataError, match=r"clip 'audio/0.wav' appears twice in 'heldout_filen"):
        read_heldout_logits(f, 3)

