"""A search started from a checkpoint and stored teacher outputs records them, pins the
architecture, refuses other files on resume, and keys retrain seeds by them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asc_auto.checkpoint import write_checkpoint
from asc_auto.context import study_context
from asc_auto.data.tau import load_dataset
from asc_auto.errors import UsageError
from asc_auto.io import file_sha256
from asc_auto.models.cnn import CnnStudent, StudentConfig
from asc_auto.retrain import retrain_key
from asc_auto.search import SearchOptions, run_search, setup_study
from asc_auto.storage import open_storage
from asc_auto.summary import write_report
from asc_auto.teacher_logits import write_teacher_logits
from asc_auto.techniques.base import get_technique
from asc_auto.transfer import Sources

SPACES = Path(__file__).parent / "spaces"


def _student(c1: int, seed: int) -> CnnStudent:
    torch.manual_seed(seed)
    return CnnStudent(StudentConfig(channels=(c1, 8, 16), kernel_size=3, in_channels=1,
                                    n_classes=3))


@pytest.mark.slow
def test_search_records_its_starting_points(tmp_path: Path, tiny_dataset: Path) -> None:
    """A kd study started from a student checkpoint and stored teacher outputs: the files are
    recorded (path + sha256), the architecture is the checkpoint's, a resumed run must name the
    same files, and retrain seeds are keyed by them."""
    dataset = load_dataset(tiny_dataset)
    names = [c.filename for c in dataset.train + dataset.evaluate]
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        write_teacher_logits(tmp_path / f"{name}.npz", names, rng.normal(size=(len(names), 3)))
    write_checkpoint(_student(c1=5, seed=3), tmp_path / "s.safetensors",
                     {"kind": "model", "config": {"c1": 5, "c2": 8, "c3": 16, "kernel_size": 3}})
    said: list[str] = []
    opts = SearchOptions(technique="kd", data=tiny_dataset, trials=1, epochs=1,
                         space=SPACES / "kd.toml", storage=f"sqlite:///{tmp_path / 'asc.db'}",
                         home=tmp_path / "home", progress=False, cv=0, confirm_seeds=0,
                         init_from=tmp_path / "s.safetensors",
                         teacher_logits=(tmp_path / "a.npz",))
    study = run_search(opts, status=said.append)
    attrs = study.user_attrs
    assert attrs["sources"]["init_from"]["sha256"] == file_sha256(tmp_path / "s.safetensors")
    assert attrs["sources"]["teacher_logits"][0]["path"] == str((tmp_path / "a.npz").resolve())
    assert attrs["sources"]["pinned"] == {"c1": 5, "c2": 8, "c3": 16, "kernel_size": 3}
    assert attrs["teacher_source"] == "logits" and attrs["teacher_params"] == 0
    assert all(t.params["c1"] == 5 and t.params["c3"] == 16 for t in study.trials)
    assert all(t.user_attrs["init_from"] == attrs["sources"]["init_from"]["sha256"]
               for t in study.trials)
    assert all(t.user_attrs["kd_weights_used"][0] == 0.0  # no embeddings in a.npz: no alpha
               for t in study.trials if t.value is not None)

    with pytest.raises(UsageError, match=r"another starting points \(--init-from, --teacher, "
                                         r"--teacher-logits"):
        setup_study(SearchOptions(**{**opts.__dict__, "teacher_logits": (tmp_path / "b.npz",)}),
                    status=said.append)

    summary, _ = write_report(open_storage(f"sqlite:///{tmp_path / 'asc.db'}"), tmp_path / "r")
    assert "## KD teachers" in summary.read_text()
    assert "- kd: KD teacher (logits a.npz): validation accuracy" in summary.read_text()

    technique = get_technique("kd")
    ctx = study_context(study, technique, tmp_path / "home", None, "cpu", False, said.append)
    assert ctx.sources == Sources.from_attrs(attrs["sources"])
    assert [p.choices for p in ctx.space.params if p.name == "c1"] == [(5,)]
    config = dict(study.trials[0].user_attrs["config"])
    key = retrain_key(study, "kd", ctx, config)
    ctx.sources = Sources()
    assert retrain_key(study, "kd", ctx, config) != key
