"""The gcc technique: the paper's model size, the ablation switch and the with/without study."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import pytest
import torch

from asc_auto.compress.size import Precision, model_size
from asc_auto.errors import AscError, ConfigError
from asc_auto.models.dwcnn import DwCnn, DwCnnConfig
from asc_auto.models.registry import create_model
from asc_auto.records import pick_trial
from asc_auto.search import SearchOptions, finish_search, run_search, setup_study
from asc_auto.space import default_space_file, load_space
from asc_auto.stats import binomial_se
from asc_auto.techniques.gcc import ABLATION_ATTR, GccGrams, PlaneSelect, ablate_gcc, gcc_settings

TEST_SPACE = Path(__file__).parent / "spaces" / "gcc.toml"


def test_paper_configuration_matches_the_paper_size() -> None:
    space = load_space(default_space_file("gcc"), "gcc", {"gcc"})
    paper = space.paper
    assert paper["precision"] == "fp16" and paper["use_gcc"] is True
    model = create_model("dwcnn", channels=tuple(paper[f"c{i}"] for i in range(1, 6)),
                         kernel_size=paper["kernel_size"])
    n = sum(p.numel() for p in model.parameters())
    assert n == 252_516 and abs(n - 252_491) / 252_491 < 1e-3
    # The paper's counting (every parameter x 2 bytes) gives 493.15 KB for 252,491 parameters.
    assert model_size(model, "params", Precision.FP16).size_kb == pytest.approx(493.20, abs=0.01)
    dcase = model_size(model, "dcase2020", Precision.FP16)
    assert dcase.fits and dcase.size_kb == pytest.approx(486.06, abs=0.01)  # BatchNorm free
    assert not model_size(model, "dcase2020", Precision.FP32).fits


def test_dwcnn_returns_logits_and_embedding_for_any_length() -> None:
    model = DwCnn(DwCnnConfig(channels=(4, 8, 8, 16, 24))).eval()
    for frames in (7, 211, 527):
        logits, emb = model(torch.randn(2, 3, 40, frames))
        assert logits.shape == (2, 3) and emb.shape == (2, 24)
    with pytest.raises(ValueError, match="5 positive"):
        DwCnnConfig(channels=(4, 8))


def test_without_gcc_the_model_ignores_the_gcc_plane() -> None:
    net = DwCnn(DwCnnConfig(channels=(4, 8, 8, 16, 16), in_channels=2))
    model = PlaneSelect(net, 2, 16).eval()
    x = torch.randn(3, 3, 16, 40)
    y = x.clone()
    y[:, 2] = torch.randn(3, 16, 40) * 100
    torch.testing.assert_close(model(x)[0], model(y)[0])
    with_gcc = PlaneSelect(DwCnn(DwCnnConfig(channels=(4, 8, 8, 16, 16))), 3, 16).eval()
    assert not torch.allclose(with_gcc(x)[0], with_gcc(y)[0])


def test_standardisation_uses_training_statistics_per_plane_and_band() -> None:
    x = torch.randn(300, 3, 4, 50) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 4, 1) - 7.0
    model = PlaneSelect(DwCnn(DwCnnConfig(channels=(4, 4, 4, 4, 4), in_channels=2)), 2, 4)
    model.fit_standardisation(x)
    assert model.mean.shape == (1, 2, 4, 1)
    torch.testing.assert_close(model.mean, x[:, :2].mean(dim=(0, 3), keepdim=True)[:1])
    torch.testing.assert_close(model.std, x[:, :2].std(dim=(0, 3), keepdim=True)[:1],
                               rtol=1e-3, atol=1e-3)
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in model.net.parameters())  # buffers only: nothing counted in the size


def test_gcc_table_is_validated_by_key() -> None:
    assert gcc_settings({}, "f.toml").use_gcc is None
    assert gcc_settings({"use_gcc": False, "ablate": False}, "f.toml").use_gcc is False
    with pytest.raises(ConfigError, match=r"f\.toml: key 'gcc\.use_gcc'"):
        gcc_settings({"use_gcc": "no"}, "f.toml")
    with pytest.raises(ConfigError, match=r"key 'gcc\.ablation': unknown key"):
        gcc_settings({"ablation": True}, "f.toml")


@pytest.fixture(scope="module")
def searched(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("gcc-home")
    opts = SearchOptions(technique="gcc", data=tiny_dataset, space=TEST_SPACE, trials=1,
                         epochs=1, home=home, storage=f"sqlite:///{home / 'asc.db'}",
                         progress=False)
    study = run_search(opts, status=lambda m: None)
    # the setup the search finished with (its folds too); --trials 0: nothing enqueued
    return study, setup_study(dataclasses.replace(opts, trials=0), status=lambda m: None)[1]


def test_fixed_table_setting_overrides_the_sampled_switch(searched) -> None:
    _, setup = searched
    ctx = setup.context
    config = dict(setup.space.paper)
    tech = GccGrams()
    assert tech.build(config, ctx).info["use_gcc"] is True
    ctx.space.tables["gcc"] = {"use_gcc": False}
    try:
        cand = tech.build(config, ctx)
        assert cand.info["use_gcc"] is False and cand.model.n_planes == 2
    finally:
        ctx.space.tables["gcc"] = {"use_gcc": "search", "ablate": True}


def test_ablation_records_the_best_config_with_and_without_gcc(searched) -> None:
    study, setup = searched
    said: list[str] = []
    fold_status = [dataclasses.replace(f, status=said.append) for f in setup.folds]
    setup = dataclasses.replace(setup, folds=tuple(fold_status))
    finish_search(study, setup)  # after_search, given the best trial; its attrs recorded
    result = study.user_attrs[ABLATION_ATTR]
    best = max((t for t in study.trials if t.user_attrs.get("feasible")
                and t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.value)
    assert result["trial"] == best.number and result["use_gcc"] == best.user_attrs["use_gcc"]
    # the tiny data is cross-validated: the other setting is scored over the same folds, so the
    # trial's own cross-validated value stands beside a cross-validated one, never a split's
    folds = len(best.user_attrs["cv_accuracies"])
    assert folds == len(setup.folds) >= 2
    assert result["folds"] == folds and not result["own_retrained"]
    assert result["val_clips"] == sum(len(f.val_files) for f in setup.folds) == 35
    assert any(f"over {folds} folds" in line for line in said), said
    own = "accuracy_with_gcc" if result["use_gcc"] else "accuracy_without_gcc"
    assert result[own] == round(best.value, 4)
    for key in ("accuracy_with_gcc", "accuracy_without_gcc"):
        assert 0.0 <= result[key] <= 1.0
    assert result["gcc_gain"] == pytest.approx(  # from the unrounded accuracies
        result["accuracy_with_gcc"] - result["accuracy_without_gcc"], abs=1.1e-4)
    # shown with each value's standard error on the clips it was scored on
    own_se = "se_with_gcc" if result["use_gcc"] else "se_without_gcc"
    assert result[own_se] == round(best.user_attrs["value_se"], 4)  # the trial's own, as searched
    for setting in ("with_gcc", "without_gcc"):  # at least the binomial over all 35 clips
        value = result[f"accuracy_{setting}"]
        assert result[f"se_{setting}"] >= round(binomial_se(value, 35), 4) - 1e-4
    note = setup.technique.study_notes(study.user_attrs, best)[0]
    assert f"{folds} folds, 35 clips" in note
    assert (f"{result['accuracy_with_gcc']:.4f} ± {result['se_with_gcc']:.3f} with the GCC "
            f"plane, {result['accuracy_without_gcc']:.4f} ± {result['se_without_gcc']:.3f} "
            "without") in note
    with pytest.raises(AscError, match="not a complete trial within the budget"):
        ablate_gcc(study, (setup.context,), trial_number=best.number + 1)
    with pytest.raises(AscError, match="needs a complete trial within the budget"):
        setup.technique.after_search(None, setup.context)  # no feasible trial to ablate


def test_a_cross_validated_trial_given_one_split_is_retrained_on_it(searched) -> None:
    study, setup = searched
    best = pick_trial(study)
    assert best.user_attrs.get("cv_accuracies")  # scored over folds, not on this split
    said: list[str] = []
    split = dataclasses.replace(setup.context, status=said.append)
    result = ablate_gcc(study, (split,), trial_number=best.number)
    assert result["folds"] == 1 and result["own_retrained"]
    assert any("on the validation split (and as searched, which was scored otherwise)" in line
               for line in said), said
    assert result["val_clips"] == len(setup.context.val_files)
    own = "accuracy_with_gcc" if result["use_gcc"] else "accuracy_without_gcc"
    # both numbers come from the split (k / n of its clips), not the folds' mean
    n = result["val_clips"]
    assert any(abs(result[own] - round(k / n, 4)) < 1e-9 for k in range(n + 1))


def test_a_study_started_from_a_checkpoint_is_ablated_from_scratch(searched,
                                                                   tmp_path: Path) -> None:
    """The other setting's first layer cannot load the study's --init-from checkpoint, so the
    ablation trains both settings afresh rather than a pretrained model beside a fresh one."""
    from asc_auto.transfer import FileRef, Sources

    study, setup = searched
    best = pick_trial(study)
    said: list[str] = []
    # not a checkpoint: loading it would fail, so the ablation passing shows it never did
    ref = FileRef(tmp_path / "pretrained.pt", "0" * 64)
    split = dataclasses.replace(setup.context, status=said.append, sources=Sources(init_from=ref))
    result = ablate_gcc(study, (split,), trial_number=best.number)
    assert result["from_scratch"] and result["own_retrained"]
    assert any("from scratch: the --init-from checkpoint fits one setting's first layer only"
               in line for line in said), said
    note = setup.technique.study_notes(study.user_attrs, best)[0]
    assert "both from scratch, not from --init-from" in note
    plain = ablate_gcc(study, (dataclasses.replace(setup.context, status=said.append),),
                       trial_number=best.number)
    assert not plain["from_scratch"]
    assert "from scratch" not in setup.technique.study_notes(study.user_attrs, best)[0]
