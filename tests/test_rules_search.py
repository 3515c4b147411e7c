"""A search under dcase2024 on generated data: MACs as the second hard limit, end to end."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from asc_auto.compress.macs import window_input
from asc_auto.errors import AscError
from asc_auto.records import feasible_trials
from asc_auto.report import state_counts
from asc_auto.search import MACS_CONSTRAINT, SearchOptions, prepare_search, run_search

pytestmark = pytest.mark.slow

SPACES = Path(__file__).parent / "spaces"
# The tiny kd space on 1 s clips: the paper point (4-8-16) needs 591,083 MACs per second (32 mel
# bands x 101 frames, torchinfo count), BIG (8-16-64) 3,090,035; BIG is 42.9 KB at fp32, inside
# dcase2024's 128,000 bytes, so a 1 MMACs limit makes it infeasible by MACs alone.
BIG = {"c1": 8, "c2": 16, "c3": 64, "kernel_size": 3, "alpha_w": 0.3, "beta_w": 0.3,
       "gamma_w": 0.4, "temperature": 2.0, "lr": 3e-3, "mixup_alpha": 0.1, "precision": "fp32"}


def _opts(tmp_path: Path, data: Path, trials: int, **kw: object) -> SearchOptions:
    return SearchOptions(technique="kd", data=data, trials=trials, space=SPACES / "kd.toml",
                         rule="dcase2024", storage=f"sqlite:///{tmp_path / 'asc.db'}",
                         home=tmp_path / "home", progress=False, **kw)  # type: ignore[arg-type]


def test_dcase2024_search_sizes_macs_before_training_and_finds_feasible_trials(
    tmp_path: Path, tiny_dataset: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'asc.db'}"
    pre = optuna.create_study(storage=storage, study_name="kd", direction="maximize")
    pre.enqueue_trial(BIG)

    study = run_search(_opts(tmp_path, tiny_dataset, trials=3, max_mmacs=1.0),
                       status=lambda m: None)
    assert study.user_attrs["rule"] == "dcase2024"
    assert study.user_attrs["budget_kb"] == 128.0  # the rule's own: 128,000 bytes
    assert study.user_attrs["max_mmacs"] == 1.0  # --max-mmacs overrides the rule's 30
    big, paper = study.get_trials()[:2]

    assert big.state == TrialState.PRUNED and big.value is None  # no accuracy: not trained
    assert big.user_attrs["macs"] == 3_090_035 and big.user_attrs["feasible"] is False
    assert big.constraints[MACS_CONSTRAINT] == 3_090_035 - 1_000_000
    assert big.constraints["size_bytes_over_budget"] < 0  # it fits the memory limit
    assert "val_history" not in big.user_attrs  # never trained

    assert paper.user_attrs["source"] == "paper" and paper.state == TrialState.COMPLETE
    assert paper.user_attrs["macs"] == 591_083 and paper.user_attrs["feasible"] is True
    assert paper.constraints[MACS_CONSTRAINT] < 0 and paper.user_attrs["val_history"]
    # size under dcase2024: all parameters (BatchNorm's too) x 2 bytes, KB of 1000 bytes
    assert paper.user_attrs["size_bytes"] == 2 * paper.user_attrs["params"]
    assert paper.user_attrs["size_kb"] == pytest.approx(paper.user_attrs["size_bytes"] / 1000,
                                                        abs=0.01)
    assert study.best_trial.user_attrs["feasible"] is True  # Optuna reads both constraints

    ok = feasible_trials(study)
    assert paper in ok and big not in ok
    assert all(t.user_attrs["macs"] <= 1_000_000 for t in ok)
    assert state_counts(study)["infeasible"] >= 1

    # The MACs limit is fixed at creation: another one is refused rather than mixing trials.
    with pytest.raises(AscError, match=r"MACs limit \(--max-mmacs\): 1.0, this run has 30.0"):
        run_search(_opts(tmp_path, tiny_dataset, trials=1), status=lambda m: None)


def test_macs_window_is_the_shape_the_model_is_fed(tmp_path: Path, tiny_dataset: Path) -> None:
    """On 1 s clips the 1 s window must be exactly one cached clip's features."""
    setup = prepare_search(_opts(tmp_path, tiny_dataset, trials=1), status=lambda m: None)
    ctx = setup.context
    window = window_input(setup.technique.feature_config(ctx.space), 1.0)
    assert window.shape == ctx.example_input().shape


def test_export_checks_and_writes_the_retrained_models_macs(
        tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a MACs rule the package states the MACs (DCASE2022+ meta.yaml) and an export over
    the limit is refused with nothing written."""
    import dataclasses
    import json

    import yaml

    import asc_auto.export as export_mod
    from asc_auto.retrain import retrain

    study = run_search(_opts(tmp_path, tiny_dataset, trials=1, epochs=1), status=lambda m: None)
    home = tmp_path / "home"
    retrained = retrain(study, seeds=1, home=home, progress=False, status=lambda m: None)
    seed_doc = json.loads((retrained.folder / "seed-0" / "result.json").read_text())
    assert seed_doc["macs"] == 591_083  # the paper student, counted as at the search
    out = tmp_path / "pkg"
    result = export_mod.export_study(study, out, home=home, status=lambda m: None)
    assert result.macs == 591_083
    meta = yaml.safe_load(next(out.glob("*.meta.yaml")).read_text())
    assert meta["system"]["complexity"]["macs"] == 591_083
    assert json.loads((out / "export.json").read_text())["macs"] == 591_083

    real = export_mod.study_context

    def stricter(*args, **kwargs):  # type: ignore[no-untyped-def]
        ctx = real(*args, **kwargs)
        ctx.rule = dataclasses.replace(ctx.rule, max_macs=500_000)
        return ctx

    monkeypatch.setattr(export_mod, "study_context", stricter)
    with pytest.raises(AscError, match=r"0\.591 MMACs per inference exceed the 0\.5 MMACs"):
        export_mod.export_study(study, tmp_path / "pkg2", home=home, status=lambda m: None)
    assert not (tmp_path / "pkg2").exists()
