"""A training stopped between epochs resumes from its last finished epoch (epoch_state.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from asc_auto.epoch_state import MARKER, EpochState, resumable
from asc_auto.models.cnn import CnnStudent, StudentConfig
from asc_auto.train import TrainConfig, train_model

CFG = TrainConfig(epochs=5, batch_size=16, lr=1e-2, mixup_alpha=0.2, freq_width=2, time_width=2,
                  device="cpu")


def _task(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise with random labels: what matters here is that every epoch is reproducible."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 12, 16, generator=g), torch.randint(0, 3, (n,), generator=g)


def _model() -> CnnStudent:
    torch.manual_seed(0)
    return CnnStudent(StudentConfig(channels=(4, 8, 8), n_classes=3, dropout=0.3))


def _weights(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([t.detach().flatten().float() for t in model.state_dict().values()])


class Stop(KeyboardInterrupt):
    """What a Ctrl-C or SIGTERM raises (console.py): a stop, not a failure."""


def _run(folder: Path | None, stop_at: int | None = None, cfg: TrainConfig = CFG,
         key: str = "run") -> tuple[torch.nn.Module, list[tuple[int, float]], list[int], object]:
    x, y = _task(80, 0)
    val = _task(30, 1)
    model = _model()
    seen: list[tuple[int, float]] = []
    steps: list[int] = []

    def on_epoch(epoch: int, acc: float) -> None:
        seen.append((epoch, acc))
        if epoch == stop_at:
            raise Stop

    def train() -> object:
        return train_model(model, x, y, cfg, 3, val=val, on_epoch=on_epoch,
                           on_step=lambda done, total: steps.append(done))

    if folder is None:
        return model, seen, steps, train()
    with resumable(folder, key):
        return model, seen, steps, train()


def test_a_stopped_training_resumes_where_it_stopped_and_ends_as_the_whole_run(
        tmp_path: Path) -> None:
    whole, whole_seen, _, whole_result = _run(None)
    folder = tmp_path / "state"
    with pytest.raises(Stop):
        _run(folder, stop_at=2)  # epochs 0, 1 saved; epoch 2 ran and is lost with the stop
    assert (folder / MARKER).exists() and (folder / "training-0.pt").exists()
    model, seen, steps, result = _run(folder)
    assert torch.equal(_weights(model), _weights(whole))  # bit for bit: the same epochs followed
    assert seen == whole_seen  # epochs 0-1 replayed to the hook with their recorded accuracies
    assert result.val_history == whole_result.val_history
    assert result.clips_seen == whole_result.clips_seen
    per_epoch = 5  # 80 clips in batches of 16
    assert steps[0] == 2 * per_epoch and len(steps) == 1 + 3 * per_epoch  # 3 epochs trained
    assert not folder.exists()  # finished: nothing left to resume


def test_a_second_process_on_the_same_run_trains_without_touching_the_owners_state(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from filelock import FileLock

    whole, _, _, _ = _run(None)
    folder = tmp_path / "state"
    with pytest.raises(Stop):
        _run(folder, stop_at=2)  # the owner's saved epochs 0-1
    saved = (folder / "training-0.pt").read_bytes()
    owner = FileLock(str(tmp_path / ".state.lock"))  # another process running the same run
    owner.acquire(timeout=0)
    try:
        model, _, steps, _ = _run(folder)
    finally:
        owner.release()
    assert "another process is training this same run" in capsys.readouterr().err
    assert len(steps) == 5 * 5 and steps[0] == 1  # every epoch trained here: nothing restored
    assert torch.equal(_weights(model), _weights(whole))
    assert (folder / "training-0.pt").read_bytes() == saved  # neither loaded, replaced nor removed
    model, _, _, _ = _run(folder)  # the owner's rerun still resumes from it
    assert torch.equal(_weights(model), _weights(whole))
    assert not folder.exists() and not (tmp_path / ".state.lock").exists()


def test_a_state_saved_under_other_settings_is_not_loaded(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    with pytest.raises(Stop):
        _run(folder, stop_at=3)
    other = dataclasses.replace(CFG, lr=5e-3)
    alone, alone_seen, _, _ = _run(None, cfg=other)
    model, seen, steps, _ = _run(folder, cfg=other)  # same scope, other settings: from epoch 0
    assert seen == alone_seen and torch.equal(_weights(model), _weights(alone))
    assert steps[0] == 1


def test_a_failed_training_leaves_nothing_to_resume(tmp_path: Path) -> None:
    folder = tmp_path / "state"

    def boom() -> None:
        with resumable(folder, "k"):
            x, y = _task(32, 0)
            train_model(_model(), x, y, dataclasses.replace(CFG, epochs=3), 3,
                        val=_task(12, 1), on_epoch=lambda e, a: _raise(e))

    def _raise(epoch: int) -> None:
        if epoch == 1:
            raise RuntimeError("diverged")

    with pytest.raises(RuntimeError):
        boom()
    assert not folder.exists()


def test_trainings_in_one_scope_are_numbered_and_resumed_in_order(tmp_path: Path) -> None:
    """Two trainings in one scope (a float training, then fine-tuning): a stop in the second
    resumes the first from its finished state (no epoch trained) and the second mid-way."""
    x, y = _task(48, 0)
    val = _task(12, 1)
    cfg = dataclasses.replace(CFG, epochs=3)

    def both(folder: Path | None, stop_second_at: int | None) -> tuple[torch.nn.Module, list[int]]:
        model = _model()
        steps: list[int] = []

        def stop(epoch: int, acc: float) -> None:
            if epoch == stop_second_at:
                raise Stop

        def go() -> None:
            train_model(model, x, y, cfg, 3, val=val, on_step=lambda d, t: steps.append(d))
            train_model(model, x, y, dataclasses.replace(cfg, lr=1e-3), 3, val=val,
                        on_epoch=stop)

        if folder is None:
            go()
        else:
            with resumable(folder, "two"):
                go()
        return model, steps

    whole, _ = both(None, None)
    folder = tmp_path / "two"
    with pytest.raises(Stop):
        both(folder, stop_second_at=1)
    assert sorted(p.name for p in folder.glob("training-*.pt")) == ["training-0.pt",
                                                                    "training-1.pt"]
    resumed, steps = both(folder, None)
    assert steps == [3 * 3]  # the first training: all 3 epochs restored, none trained
    assert torch.equal(_weights(resumed), _weights(whole))


SPACE = Path(__file__).parent / "spaces" / "baseline.toml"
_REAL_SAVE = EpochState.save


def _stop_after_saves(monkeypatch: pytest.MonkeyPatch, after: int | None) -> list[int]:
    """Count epoch-state saves; raise a stop (as Ctrl-C does) right after save `after`."""
    real = _REAL_SAVE  # not a patched one: each call replaces the last patch
    saves: list[int] = []

    def save(self: EpochState, state: dict) -> None:
        real(self, state)
        saves.append(1)
        if len(saves) == after:
            raise Stop

    monkeypatch.setattr(EpochState, "save", save)
    return saves


def _space(technique: str, tmp_path: Path) -> Path:
    """The test space of `technique`; int8's paper trial with 2 QAT epochs (a second
    training, of NNCF's quantized model)."""
    text = (Path(__file__).parent / "spaces" / f"{technique}.toml").read_text()
    text = text.replace("qat_epochs = 0", "qat_epochs = 2").replace(
        "[params.qat_epochs]\ntype = \"int\"\nlow = 0\nhigh = 1",
        "[params.qat_epochs]\ntype = \"int\"\nlow = 0\nhigh = 2")
    path = tmp_path / f"{technique}.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("technique", ["baseline", "int8"])
def test_a_retrain_seed_stopped_mid_training_resumes_at_its_last_epoch(
        technique: str, tmp_path: Path, tiny_dataset: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped after its last-but-one epoch (int8: in QAT, NNCF's model), a seed
    trains one epoch when run again and ends with the uninterrupted seed's weights."""
    import shutil

    from asc_auto.retrain import retrain
    from asc_auto.search import SearchOptions, run_search

    home = tmp_path / "home"
    study = run_search(SearchOptions(technique=technique, data=tiny_dataset,
                                     space=_space(technique, tmp_path), epochs=1, trials=1,
                                     cv=0, confirm_seeds=0, progress=False,
                                     storage=f"sqlite:///{tmp_path / 'asc.db'}", home=home),
                       status=lambda m: None)

    def again() -> object:
        return retrain(study, seeds=1, epochs=3, home=home, progress=False,
                       status=lambda m: None)

    saves = _stop_after_saves(monkeypatch, after=None)
    whole = again()
    every = len(saves)
    assert every == {"baseline": 3, "int8": 3 + 2}[technique]
    seed_dir = whole.folder / "seed-0"
    weights = (seed_dir / "weights.safetensors").read_bytes()
    shutil.rmtree(seed_dir)
    saves = _stop_after_saves(monkeypatch, after=every - 1)
    with pytest.raises(Stop):
        again()
    assert not seed_dir.exists()
    assert list((home / "cache").glob("**/epoch-state/*/training-*.pt"))
    saves.clear()
    resumed = again()
    assert len(saves) == 1  # one epoch trained, not all
    assert resumed.seeds[0].accuracy == whole.seeds[0].accuracy
    assert resumed.seeds[0].log_loss == whole.seeds[0].log_loss
    assert (seed_dir / "weights.safetensors").read_bytes() == weights  # the same weights
    assert not list((home / "cache").glob("**/epoch-state/*"))  # done: nothing left behind


@pytest.mark.slow
@pytest.mark.parametrize(("cv", "stop_after", "trained"), [
    (2, 2, 1 + 3),  # in fold 1 (epoch 2 saved): its last epoch, then fold 2
    (2, 4, 2),  # in fold 2 (fold 1 recorded, epoch 1 saved): fold 2's last two epochs
    (0, 1, 2),  # a single split, epoch 1 saved
])
def test_a_search_trial_stopped_mid_fold_resumes_at_its_last_epoch(
        cv: int, stop_after: int, trained: int, tmp_path: Path, tiny_dataset: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The trial's retry (here the paper trial, enqueued again) takes the stopped trial's seeds
    and its training continues from the saved epoch: the same value, curve and Optuna
    intermediate values as a trial never stopped."""
    import optuna
    from optuna.trial import TrialState

    from asc_auto.search import SearchOptions, run_search

    def opts(home: str) -> SearchOptions:
        return SearchOptions(technique="baseline", data=tiny_dataset, space=SPACE, epochs=3,
                             trials=1, cv=cv, confirm_seeds=0, progress=False,
                             storage=f"sqlite:///{tmp_path / home / 'asc.db'}",
                             home=tmp_path / home)

    for home in ("a", "b"):
        (tmp_path / home).mkdir()
    whole = run_search(opts("a"), status=lambda m: None).trials[0]
    assert whole.state == TrialState.COMPLETE
    _stop_after_saves(monkeypatch, after=stop_after)
    with pytest.raises(KeyboardInterrupt):
        run_search(opts("b"), status=lambda m: None)
    stopped = optuna.load_study(study_name="baseline", storage=opts("b").storage).trials[0]
    assert stopped.state == TrialState.FAIL
    saves = _stop_after_saves(monkeypatch, after=None)
    said: list[str] = []
    resumed = run_search(opts("b"), status=said.append).trials[1]
    assert len(saves) == trained
    assert resumed.state == TrialState.COMPLETE and resumed.user_attrs["resumed_from"] == 0
    assert resumed.value == whole.value  # to the last digit
    assert resumed.user_attrs["val_history"] == whole.user_attrs["val_history"]
    assert resumed.intermediate_values == whole.intermediate_values
    assert resumed.user_attrs.get("cv_accuracies") == whole.user_attrs.get("cv_accuracies")
    assert not list((tmp_path / "b").glob("**/epoch-state/*"))
