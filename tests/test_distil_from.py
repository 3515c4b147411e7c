"""search --distil-from: another technique's paper configuration as the search's teacher, built
once in its own study and reused by every later run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

import asc_auto.crossfit as crossfit_mod
from asc_auto.cli import app
from asc_auto.data.tau import load_dataset
from asc_auto.io import file_sha256
from asc_auto.schema import TrialRecord
from asc_auto.storage import default_storage
from asc_auto.teacher_logits import read_heldout_logits, read_teacher_logits

pytestmark = pytest.mark.slow
SPACES = Path(__file__).parent / "spaces"


def _search(data: Path, home: Path, *extra: str) -> list[str]:
    return ["search", "--technique", "int8", "--data", str(data), "--space",
            str(SPACES / "int8.toml"), "--trials", "1", "--epochs", "1", "--cv", "0",
            "--confirm-seeds", "0", "--study", "s", "--home", str(home), *extra]


def test_the_teacher_is_trained_once_in_its_own_study_and_its_file_recorded_by_the_student(
        tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    args = _search(tiny_dataset, home, "--distil-from", "baseline", "--distil-folds", "2")
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "teacher: baseline's paper configuration (study 's-teacher-baseline', trial 0)" \
        in first.output and "; built " in first.output
    url = default_storage(home)
    teacher = optuna.load_study(study_name="s-teacher-baseline", storage=url)
    assert [(t.number, TrialRecord.from_trial(t).is_paper) for t in teacher.trials] == [(0, True)]
    assert teacher.user_attrs["technique"] == "baseline"
    out = home / "s-teacher-baseline" / "teacher-logits-trial0-folds2-seed0.npz"
    ds = load_dataset(tiny_dataset)
    train = [c.filename for c in ds.train]
    files, logits, _ = read_teacher_logits(out, ds.labels, train)
    assert sorted(files) == sorted(train + [c.filename for c in ds.evaluate])
    held_files, held = read_heldout_logits(out, len(ds.labels))  # type: ignore[misc]
    assert list(held_files) == train and held.shape == (len(train), len(ds.labels))
    assert not np.allclose(held, logits[: len(train)])  # fold models, not the targets' model
    student = optuna.load_study(study_name="s", storage=url)
    recorded = student.user_attrs["sources"]["teacher_logits"]
    assert [r["sha256"] for r in recorded] == [file_sha256(out)]
    assert "distill_weight" in student.trials[0].params  # the space gained the distil params

    # a second run resumes both: no teacher training, the same file, one more student trial
    before = out.read_bytes()
    monkeypatch.setattr(crossfit_mod, "run_seed",
                        lambda *a, **k: pytest.fail("the teacher was trained again"))
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "; reused " in again.output and out.read_bytes() == before
    assert len(optuna.load_study(study_name="s-teacher-baseline", storage=url).trials) == 1
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 2

    # the teacher study fixes its epochs as any study does: another budget is refused, not mixed
    other = CliRunner().invoke(app, [*args[:args.index("--epochs") + 1], "2",
                                     *args[args.index("--epochs") + 2:]])
    assert other.exit_code != 0 and "s-teacher-baseline" in other.output
    assert "epochs" in other.output and out.read_bytes() == before


def test_a_technique_that_cannot_learn_from_stored_outputs_is_refused_before_any_training(
        tmp_path: Path, tiny_dataset: Path) -> None:
    home = tmp_path / "home"
    args = _search(tiny_dataset, home, "--distil-from", "baseline")
    args[args.index("int8")] = "gcc"
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    assert "--distil-from applies to --technique int8, kd, lt" in result.output
    assert not (home / "s-teacher-baseline").exists()
