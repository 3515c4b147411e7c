"""Fault corpus: nothing wrong is recorded as a valid result (issue 8 item 7).

A damaged feature or teacher cache is rebuilt, a diverged training fails its trial with the
reason, settings outside their ranges are refused before any work, and `data check` refuses what
`search` refuses (NaN/inf anywhere in a file) and accepts what it accepts (mixed sample rates).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
import soundfile as sf
import torch
from optuna.trial import TrialState
from typer.testing import CliRunner

import asc_auto.techniques.kd as kd_mod
from asc_auto.cli import app
from asc_auto.data.tau import check_dataset, load_dataset
from asc_auto.errors import DataError, TrainingDiverged
from asc_auto.features.cache import X_FILE, build_features
from asc_auto.features.config import LogMelConfig
from asc_auto.search import SearchOptions, prepare_search, run_search
from asc_auto.train import TrainConfig, train_model

SPACE = Path(__file__).parents[1] / "spaces" / "kd.toml"
CFG = LogMelConfig(n_mels=16, clip_seconds=0.5)
runner = CliRunner()


def test_an_overwritten_feature_cache_is_rebuilt_not_used(tiny_dataset: Path,
                                                          tmp_path: Path) -> None:
    ds = load_dataset(tiny_dataset)
    first = build_features(ds, CFG, tmp_path, progress=False)
    good = np.array(first.x, dtype=np.float32)
    entry = next(tmp_path.iterdir())
    x = np.load(entry / X_FILE, mmap_mode="r+")
    x[: int(0.998 * x.size) // x[0].size] = np.nan  # 99.8 % NaN, shapes and meta untouched
    x.flush()
    del x, first
    said: list[str] = []
    again = build_features(ds, CFG, tmp_path, progress=False, status=said.append)
    assert np.isfinite(np.asarray(again.x, dtype=np.float32)).all()
    assert np.array_equal(np.asarray(again.x, dtype=np.float32), good)
    assert len(said) == 1 and "x.npy changed since it was written" in said[0]
    assert [p.name for p in tmp_path.iterdir()] == [entry.name]  # replaced in place, no temps


@pytest.mark.slow
def test_a_damaged_teacher_cache_is_trained_again(tiny_dataset: Path, tmp_path: Path) -> None:
    opts = SearchOptions(technique="kd", data=tiny_dataset, space=SPACE, home=tmp_path,
                         progress=False, epochs=1)
    setup = prepare_search(opts, status=lambda m: None)
    first = setup.technique.prepare(setup.context)
    folder = next((tmp_path / "cache" / "teachers").iterdir())
    outputs = dict(np.load(folder / "outputs.npz"))
    outputs["logits"][:] = np.nan
    np.savez(folder / "outputs.npz", **outputs)
    again = prepare_search(opts, status=lambda m: None)
    second = again.technique.prepare(again.context)
    teacher = again.technique.teacher
    assert teacher is not None and np.isfinite(teacher.logits).all()  # trained again
    assert 0.0 <= second["teacher_val_accuracy"] <= 1.0 and first["teacher_params"] > 0
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # replaced, no temps


def test_a_nan_loss_stops_training_with_the_reason() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.net(x)
            return out, out

    calls = {"n": 0}

    def poisoned(outputs, targets, extras):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(outputs[0], targets)
        return loss * float("nan") if calls["n"] == 3 else loss

    x, y = torch.randn(16, 1, 2, 2), torch.arange(16) % 2
    cfg = TrainConfig(epochs=2, batch_size=4, mixup_alpha=0.0, freq_masks=0, time_masks=0,
                      device="cpu")
    with pytest.raises(TrainingDiverged, match="epoch 1, step 3") as err:
        train_model(Wrapped(), x, y, cfg, 2, loss_fn=poisoned)
    assert "lower learning rate" in str(err.value)


@pytest.mark.slow
def test_a_diverged_trial_is_failed_with_its_reason(tiny_dataset: Path, tmp_path: Path,
                                                    monkeypatch) -> None:
    real = kd_mod.DistillationLoss

    class Diverging(real):  # type: ignore[misc, valid-type]
        def forward(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            total, parts = super().forward(*args, **kwargs)
            return total * float("inf"), parts

    monkeypatch.setattr(kd_mod, "DistillationLoss", Diverging)
    study = run_search(SearchOptions(technique="kd", data=tiny_dataset, space=SPACE, trials=1,
                                     epochs=1, storage=f"sqlite:///{tmp_path / 'd.db'}",
                                     home=tmp_path, progress=False), status=lambda m: None)
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL  # not COMPLETE with a meaningless accuracy
    assert "TrainingDiverged: training diverged" in trial.user_attrs["fail_reason"]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("epochs", 0, r"train\.epochs': must be in \[1, inf\], got 0"),
    ("batch_size", 0, r"train\.batch_size': must be in \[2, inf\], got 0"),
    ("lr", -0.1, r"train\.lr': must be in \(0, 10\], got -0\.1"),
])
def test_out_of_range_settings_are_refused_before_any_work(key: str, value: object,
                                                           message: str, tmp_path: Path,
                                                           tiny_dataset: Path) -> None:
    text = SPACE.read_text()
    assert text.index("[train]") < text.index("epochs = 2")  # the first one is [train]'s
    if key != "lr":  # epochs and batch_size are in [train] already; lr is only in [paper]
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, count=1, flags=re.M)
    else:
        text = text.replace("[train]\n", f"[train]\n{key} = {value}\n", 1)
    space = tmp_path / "space.toml"
    space.write_text(text)
    home = tmp_path / "home"
    result = runner.invoke(app, ["search", "--technique", "kd", "--data", str(tiny_dataset),
                                 "--space", str(space), "--home", str(home)])
    assert result.exit_code == 2, result.output
    assert str(space) in result.output and re.search(message, result.output), result.output
    assert "Traceback" not in result.output
    summaries = optuna.get_all_study_summaries(f"sqlite:///{home / 'asc.db'}")
    assert all(s.n_trials == 0 for s in summaries)  # refused before any trial ran


def _copy(tiny_dataset: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    return root


def _float_wav_with_nan_at_end(path: Path) -> None:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    data[-5:] = np.nan  # far past any crop: only a full scan sees it
    path.unlink()
    sf.write(str(path), data, rate, subtype="FLOAT")


def test_check_and_search_both_refuse_nan_anywhere_in_a_file(tiny_dataset: Path,
                                                             tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    ds = load_dataset(root)
    victim = ds.path(ds.train[0])
    _float_wav_with_nan_at_end(victim)
    with pytest.raises(DataError, match="NaN or infinite samples") as checked:
        check_dataset(root, progress=False)
    assert str(checked.value).startswith(str(victim))
    short = LogMelConfig(n_mels=16, clip_seconds=0.1)  # crops the first 0.1 s only
    with pytest.raises(DataError, match="NaN or infinite samples") as searched:
        build_features(ds, short, tmp_path / "cache", progress=False)
    assert str(searched.value).startswith(str(victim))


def test_check_and_search_both_accept_mixed_sample_rates(tiny_dataset: Path,
                                                         tmp_path: Path) -> None:
    root = _copy(tiny_dataset, tmp_path)
    ds = load_dataset(root)
    odd = ds.path(ds.train[0])
    data, _ = sf.read(str(odd), dtype="float32", always_2d=True)
    sf.write(str(odd), data[::3], 16000, subtype="PCM_24")
    summary = check_dataset(root, progress=False)
    assert summary.sample_rates == (16000, 48000)
    feats = build_features(ds, CFG, tmp_path / "cache", progress=False)
    assert np.isfinite(np.asarray(feats.x, dtype=np.float32)).all()
    meta = json.loads(next((tmp_path / "cache").iterdir()).joinpath("meta.json").read_text())
    assert set(meta["sha256"]) == {"x.npy", "y.npy"}
