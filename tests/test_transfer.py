"""Transfer learning: checkpoints load strictly, pretrain writes what search and retrain start
from, and a study records (and keys results by) the files it started from."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import asc_auto.teacher as teacher_mod
from asc_auto.checkpoint import load_into, read_checkpoint, write_checkpoint
from asc_auto.context import ContextSettings, build_context
from asc_auto.data.tau import dataset_fingerprint, load_dataset
from asc_auto.errors import UsageError
from asc_auto.io import file_sha256
from asc_auto.models.aclnet import SegmentAverage
from asc_auto.models.cnn import CnnStudent, StudentConfig
from asc_auto.pretrain import PretrainOptions, pretrain
from asc_auto.teacher import TeacherSettings, ensure_teachers, load_teacher_model
from asc_auto.techniques.base import get_technique
from asc_auto.train import TrainResult, evaluate
from asc_auto.transfer import TEACHER_FILES, FileRef, Sources, resolve_sources, verified

SPACES = Path(__file__).parent / "spaces"


def _student(c1: int = 4, n_classes: int = 3, seed: int = 0) -> CnnStudent:
    torch.manual_seed(seed)
    return CnnStudent(StudentConfig(channels=(c1, 8, 16), kernel_size=3, in_channels=1,
                                    n_classes=n_classes))


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.float(), b.float())


def test_round_trip_loads_every_tensor(tmp_path: Path) -> None:
    src, dst = _student(seed=1), _student(seed=2)
    sha = write_checkpoint(src, tmp_path / "s.safetensors", {"kind": "model", "config": {"c1": 4}})
    ckpt = read_checkpoint(tmp_path / "s.safetensors")
    assert ckpt.sha256 == sha == file_sha256(tmp_path / "s.safetensors")
    assert ckpt.meta["config"] == {"c1": 4} and ckpt.kind == "model"
    assert not all(_equal(v, src.state_dict()[k]) for k, v in dst.state_dict().items())
    assert load_into(dst, ckpt) is None
    assert all(_equal(v, src.state_dict()[k]) for k, v in dst.state_dict().items())


def test_shape_mismatch_names_every_tensor(tmp_path: Path) -> None:
    write_checkpoint(_student(c1=8), tmp_path / "wide.safetensors", {})
    model = _student(c1=4)
    differing = [k for k, v in model.state_dict().items()
                 if v.shape != _student(c1=8).state_dict()[k].shape]
    assert len(differing) >= 5  # conv 1 weight + its BatchNorm + conv 2 weight
    with pytest.raises(UsageError) as err:
        load_into(model, read_checkpoint(tmp_path / "wide.safetensors"))
    msg = str(err.value)
    assert f"({len(differing)} tensors)" in msg and "\n" not in msg
    for key in differing:
        assert key in msg
    assert "features.0.weight is 8x1x3x3 in the file, 4x1x3x3 in the model" in msg


def test_missing_and_extra_tensors_are_named(tmp_path: Path) -> None:
    tensors = {k: v.clone() for k, v in _student().state_dict().items()}
    dropped = next(iter(tensors))
    del tensors[dropped]
    tensors["extra.weight"] = torch.zeros(2)
    save_file(tensors, str(tmp_path / "odd.safetensors"))
    with pytest.raises(UsageError, match=rf"{dropped} missing from the file.*"
                                         r"extra\.weight not in the model"):
        load_into(_student(), read_checkpoint(tmp_path / "odd.safetensors"))


def test_other_class_count_keeps_a_fresh_head(tmp_path: Path) -> None:
    src = _student(n_classes=5, seed=1)
    write_checkpoint(src, tmp_path / "five.safetensors", {})
    model = _student(n_classes=3, seed=2)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    note = load_into(model, read_checkpoint(tmp_path / "five.safetensors"))
    assert note is not None and "5 classes there, 3 here" in note
    assert "classifier.weight" in note and "classifier.bias" in note
    for key, value in model.state_dict().items():
        expected = fresh[key] if key.startswith("classifier.") else src.state_dict()[key]
        assert _equal(value, expected), key


def test_foreign_missing_and_changed_files_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "x.safetensors").write_text("not a checkpoint")
    with pytest.raises(UsageError, match=r"x\.safetensors: not a safetensors file"):
        read_checkpoint(tmp_path / "x.safetensors")
    with pytest.raises(UsageError, match=r"gone\.safetensors: checkpoint not found"):
        read_checkpoint(tmp_path / "gone.safetensors")
    write_checkpoint(_student(), tmp_path / "s.safetensors", {})
    ref = FileRef.of(tmp_path / "s.safetensors", "checkpoint")
    assert verified(ref, "--init-from checkpoint") == ref.path
    write_checkpoint(_student(seed=5), tmp_path / "s.safetensors", {})
    with pytest.raises(UsageError, match=r"changed since the study recorded it"):
        verified(ref, "--init-from checkpoint")


def test_teacher_checkpoint_is_refused_as_init_and_vice_versa(tmp_path: Path) -> None:
    write_checkpoint(_student(), tmp_path / "t.safetensors", {"kind": "teacher"})
    write_checkpoint(_student(), tmp_path / "m.safetensors", {"kind": "model", "technique": "kd"})
    with pytest.raises(UsageError, match=r"is a kd teacher checkpoint.*--teacher FILE"):
        resolve_sources("kd", frozenset(), TEACHER_FILES, init_from=tmp_path / "t.safetensors")
    with pytest.raises(UsageError, match=r"is a kd model checkpoint, not a kd teacher"):
        resolve_sources("kd", frozenset(), TEACHER_FILES, teachers=[tmp_path / "m.safetensors"])
    with pytest.raises(UsageError, match=r"--teacher-logits applies to kd, int8 and lt, not gcc"):
        resolve_sources("gcc", frozenset(), frozenset(),
                        teacher_logits=[tmp_path / "m.safetensors"])
    int8 = get_technique("int8").teacher_files
    with pytest.raises(UsageError, match=r"--teacher \(a VGG checkpoint.*applies to kd, not int8; "
                                         r"fix: .*int8 distils from stored outputs: pass them as "
                                         r"--teacher-logits FILE"):
        resolve_sources("int8", frozenset(), int8, teachers=[tmp_path / "m.safetensors"])
    logits = resolve_sources("int8", frozenset(), int8, teacher_logits=[tmp_path / "m.safetensors"])
    assert logits.teacher_logits[0].path == (tmp_path / "m.safetensors").resolve()


def _context(technique: str, data: Path, home: Path, sources: Sources = Sources(),
             **kw: object):
    return build_context(get_technique(technique), ContextSettings(
        data=data, space_file=SPACES / f"{technique}.toml", rule="dcase2020", budget_kb=500.0,
        home=home, progress=False, sources=sources, **kw), status=lambda m: None)


def test_pretrain_int8_round_trip(tmp_path: Path, tiny_dataset: Path) -> None:
    """pretrain writes a checkpoint + card that say what they hold; --init-from pins the
    architecture to it and starts the model from exactly its tensors."""
    out = tmp_path / "aclnet.safetensors"
    result = pretrain(PretrainOptions(technique="int8", data=tiny_dataset, out=out,
                                      space=SPACES / "int8.toml", epochs=1,
                                      home=tmp_path / "home", progress=False),
                      status=lambda m: None)
    card = json.loads(result.card.read_text())
    dataset = load_dataset(tiny_dataset)
    assert result.card == tmp_path / "aclnet.json"
    assert card["sha256"] == file_sha256(out) == result.sha256
    assert card["dataset"]["fingerprint"] == dataset_fingerprint(dataset)
    assert card["classes"] == list(dataset.labels)
    assert card["config"] == {"width": 0.125, "llf1": 4, "llf2": 8, "depth": 2}  # the paper's
    assert card["features"]["kind"] == "waveform" and card["settings"]["train"]["epochs"] == 1
    assert card["dataset"]["evaluate_clips"] == card["accuracy"]["clips"] == len(dataset.evaluate)

    technique = get_technique("int8")
    sources = resolve_sources("int8", technique.shape_params, frozenset(), init_from=out)
    assert dict(sources.pinned) == card["config"]
    ctx = _context("int8", tiny_dataset, tmp_path / "home", sources, val_fraction=None)
    pinned = {p.name: p.choices for p in ctx.space.params if p.name in sources.pinned}
    assert pinned == {k: (v,) for k, v in card["config"].items()}
    cand = technique.build(dict(ctx.space.paper), ctx)
    technique.initialise(cand, ctx)
    stored = read_checkpoint(out).tensors
    assert all(_equal(v, stored[k]) for k, v in cand.model.state_dict().items())
    # the card's accuracy is the checkpoint's on the evaluate fold (the context's val split)
    assert isinstance(cand.model, SegmentAverage)
    acc = evaluate(cand.model, *ctx.val_xy, ctx.n_classes, device="cpu").accuracy
    assert acc == pytest.approx(card["accuracy"]["evaluate"], abs=1e-4)


def _two_class_copy(src: Path, dst: Path) -> Path:
    """The dataset with 'indoor' relabelled 'outdoor': another dataset with 2 classes."""
    shutil.copytree(src, dst)
    for csv in [dst / "meta.csv", *(dst / "evaluation_setup").glob("*.csv")]:
        csv.write_text(csv.read_text().replace("\tindoor", "\toutdoor"))
    return dst


def test_teacher_pretrained_on_other_classes_starts_the_kd_teacher(
        tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = _two_class_copy(tiny_dataset, tmp_path / "two")
    out = tmp_path / "vgg.safetensors"
    pretrain(PretrainOptions(technique="kd", data=other, out=out, space=SPACES / "kd.toml",
                             epochs=1, home=tmp_path / "home", progress=False),
             status=lambda m: None)
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["kind"] == "teacher" and len(card["classes"]) == 2
    assert card["settings"]["train"]["epochs"] == 1

    monkeypatch.setattr(teacher_mod, "train_model", lambda *a, **k: TrainResult())  # no fine-tuning
    said: list[str] = []
    sources = resolve_sources("kd", frozenset(), TEACHER_FILES, teachers=[out])
    ctx = _context("kd", tiny_dataset, tmp_path / "home", sources)
    ctx.status = said.append
    # the checkpoint's own VGG shape is used, whatever [teacher] width says
    teacher = ensure_teachers(ctx, TeacherSettings(width=0.5, depth=4, epochs=1))
    assert teacher.source == "checkpoint" and teacher.file == str(out.resolve())
    assert any("2 classes there, 3 here" in m for m in said)
    model = load_teacher_model(teacher)
    stored = read_checkpoint(out).tensors
    for key, value in model.state_dict().items():
        assert _equal(value, stored[key]) != key.startswith("classifier."), key
    again = ensure_teachers(ctx, TeacherSettings(width=0.5, depth=4, epochs=1))
    assert again.key == teacher.key  # cached, keyed by the checkpoint's sha256
    assert teacher.key != ensure_teachers(
        _context("kd", tiny_dataset, tmp_path / "home"),
        TeacherSettings(width=0.0625, depth=4, epochs=1)).key


def test_pretrain_refuses_techniques_without_it_and_bad_out(tmp_path: Path,
                                                           tiny_dataset: Path) -> None:
    with pytest.raises(UsageError, match=r"technique 'gcc' has no pretraining; fix: use one of "
                                         r"int8, kd, lt"):
        pretrain(PretrainOptions(technique="gcc", data=tiny_dataset,
                                 out=tmp_path / "g.safetensors"))
    with pytest.raises(UsageError, match=r"must end in \.safetensors"):
        pretrain(PretrainOptions(technique="int8", data=tiny_dataset, out=tmp_path / "g.pt"))


def test_sources_round_trip_through_study_attrs(tmp_path: Path) -> None:
    write_checkpoint(_student(), tmp_path / "s.safetensors", {"config": {"c1": 4, "lr": 1.0}})
    src = resolve_sources("kd", frozenset({"c1", "c2"}), TEACHER_FILES,
                          init_from=tmp_path / "s.safetensors")
    assert dict(src.pinned) == {"c1": 4}  # shape params only, not lr
    again = Sources.from_attrs(json.loads(json.dumps(src.attrs())))
    assert again == src
    assert again.digests() == {"init_from": file_sha256(tmp_path / "s.safetensors")}
    assert Sources.from_attrs(None) == Sources() and Sources().digests() == {}
    assert not Sources() and again



def test_checkpoints_trained_on_other_features_are_noted(tmp_path: Path) -> None:
    from asc_auto.transfer import feature_notes

    here = {"kind": "logmel", "n_mels": 64, "hop_ms": 10.0, "clip_seconds": 4.0}
    write_checkpoint(_student(), tmp_path / "s.safetensors",
                     {"features": {**here, "n_mels": 40, "clip_seconds": 1.0}})
    write_checkpoint(_student(), tmp_path / "t.safetensors", {"kind": "teacher",
                                                               "features": here})
    sources = Sources(init_from=FileRef.of(tmp_path / "s.safetensors", "x"),
                      teachers=(FileRef.of(tmp_path / "t.safetensors", "x"),))
    notes = feature_notes(sources, {**here, "clip_seconds": 10.0})
    assert len(notes) == 1  # the clip length alone is no difference
    assert "s.safetensors was trained on other features (n_mels 40 there, 64 here)" in notes[0]


def test_cli_pretrain_and_one_line_refusals(tmp_path: Path, tiny_dataset: Path) -> None:
    from typer.testing import CliRunner

    from asc_auto.cli import app

    runner = CliRunner()
    out = tmp_path / "vgg.safetensors"
    ok = runner.invoke(app, ["pretrain", "--technique", "kd", "--data", str(tiny_dataset),
                             "--out", str(out), "--space", str(SPACES / "kd.toml"),
                             "--epochs", "1", "--home", str(tmp_path / "home")])
    assert ok.exit_code == 0, ok.output
    assert "pretrained kd" in ok.output and out.is_file()
    flat = " ".join(ok.output.split())
    assert re.search(r"evaluate accuracy \d\.\d{4} ± \d\.\d{3} on 13 clips", flat), flat
    assert f"sha256 {file_sha256(out)[:12]}" in ok.output
    refused = runner.invoke(app, ["pretrain", "--technique", "gcc", "--data", str(tiny_dataset),
                                  "--out", str(tmp_path / "g.safetensors")])
    assert refused.exit_code == 2
    assert refused.output.strip().count("\n") == 0 and "has no pretraining" in refused.output
    wrong = runner.invoke(app, ["search", "--technique", "gcc", "--data", str(tiny_dataset),
                                "--teacher-logits", str(out), "--home", str(tmp_path / "home"),
                                "--storage", f"sqlite:///{tmp_path / 'x.db'}"])
    assert wrong.exit_code == 2 and "--teacher-logits applies to kd, int8 and lt, not gcc" in (
        wrong.output)
    wrong = runner.invoke(app, ["search", "--technique", "int8", "--data", str(tiny_dataset),
                                "--teacher", str(out), "--home", str(tmp_path / "home"),
                                "--storage", f"sqlite:///{tmp_path / 'x.db'}"])
    assert wrong.exit_code == 2 and "pass them as --teacher-logits FILE" in wrong.output
    assert wrong.output.strip().count("\n") == 0
