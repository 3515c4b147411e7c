"""Predict with an exported model: CSV rows for good files, a per-file error for a bad one."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from asc_auto.cli import app
from asc_auto.errors import AscError
from asc_auto.export import export_study
from asc_auto.predict import predict, read_export
from asc_auto.retrain import retrain
from asc_auto.search import SearchOptions, run_search

pytestmark = pytest.mark.slow
SPACE = Path(__file__).parent / "spaces" / "kd.toml"


@pytest.fixture(scope="module")
def exported(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("predict-home")
    study = run_search(SearchOptions(technique="kd", data=tiny_dataset, space=SPACE, trials=1,
                                     epochs=1, storage=f"sqlite:///{home / 'asc.db'}",
                                     home=home, progress=False), status=lambda m: None)
    retrain(study, seeds=1, home=home, progress=False, status=lambda m: None)
    out = home / "pkg"
    export_study(study, out, home=home, status=lambda m: None)
    return out


@pytest.fixture
def wavs(tiny_dataset: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "wavs"
    folder.mkdir()
    for src in sorted((tiny_dataset / "audio").glob("*.wav"))[:3]:
        shutil.copy(src, folder / src.name)
    (folder / "broken.wav").write_bytes(b"RIFF not really a wave file")
    return folder


def test_predict_scores_good_files_and_reports_the_bad_one(exported: Path, wavs: Path) -> None:
    files = sorted(wavs.glob("*.wav"))
    preds = predict(exported, files)
    labels = tuple(read_export(exported)["labels"])
    bad = [p for p in preds if p.error]
    assert [p.file.name for p in bad] == ["broken.wav"]
    good = [p for p in preds if p.error is None]
    assert len(good) == 3
    for p in good:
        assert p.label in labels and sum(p.scores) == pytest.approx(1.0, abs=1e-5)


def test_predict_cli_writes_the_csv_and_exits_1_on_a_bad_file(exported: Path, wavs: Path,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "output.csv"
    result = CliRunner().invoke(app, ["predict", "--model", str(exported), "--data", str(wavs),
                                      "--out", str(out)], env={"COLUMNS": "400"})
    assert result.exit_code == 1, result.output
    assert "broken.wav" in result.output and "3 of 4 files classified" in result.output
    flat = " ".join(result.output.split())
    broken = next(wavs.rglob("broken.wav"))
    # one line: the file once, what is wrong, what to do here (no dataset CSV to edit)
    assert re.search(rf"{re.escape(str(broken))}: unreadable audio \(.+\); fix: re-copy this "
                     r"file, or leave it out \(the other files are classified\)", flat), flat
    assert "CSV files" not in flat and "DataError" not in flat
    rows = out.read_text().splitlines()
    assert rows[0].split("\t")[:2] == ["filename", "scene_label"] and len(rows) == 4
    good = sorted(wavs.glob("*-a.wav"))[0]
    result = CliRunner().invoke(app, ["predict", "--model", str(exported), str(good),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[1].startswith(good.name + "\t")


def test_predict_rejects_a_folder_that_is_no_export(tmp_path: Path) -> None:
    with pytest.raises(AscError, match="not an asc-auto export"):
        predict(tmp_path, [])


def test_predict_writes_logits_another_search_can_distil_from(exported: Path, tiny_dataset: Path,
                                                              tmp_path: Path) -> None:
    """`--logits` on the dataset's own folder: every clip by its CSV name, the columns in
    meta.csv's order, softmax of the logits = the CSV's scores."""
    from asc_auto.data.tau import load_dataset
    from asc_auto.teacher_logits import read_teacher_logits

    ds = load_dataset(tiny_dataset)
    out, npz = tmp_path / "output.csv", tmp_path / "teacher.npz"
    result = CliRunner().invoke(app, ["predict", "--model", str(exported), "--data",
                                      str(tiny_dataset), "--out", str(out), "--logits", str(npz)])
    assert result.exit_code == 0, result.output
    n = len(ds.train) + len(ds.evaluate)
    assert f"logits of {n} files" in " ".join(result.output.split())
    files, logits, embeds = read_teacher_logits(npz, ds.labels, [c.filename for c in ds.train])
    assert len(files) == n and embeds is None and logits.shape == (n, len(ds.labels))
    rows = {r.split("\t")[0]: [float(v) for v in r.split("\t")[2:]]
            for r in out.read_text().splitlines()[1:]}
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert np.allclose(probs, [rows[f] for f in files], atol=2e-6)
