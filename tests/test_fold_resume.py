"""A cross-validated trial interrupted between folds resumes from the folds it finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from asc_auto import fold_resume
from asc_auto.search import SearchOptions, run_search
from asc_auto.techniques.baseline import DcaseBaseline

SPACE = Path(__file__).parent / "spaces" / "baseline.toml"
DIST = {"lr": FloatDistribution(1e-3, 3e-3, log=True)}


def _failed(params: dict[str, Any], accs: list[float], **attrs: Any) -> optuna.trial.FrozenTrial:
    return create_trial(state=TrialState.FAIL, params=params, distributions=DIST,
                        user_attrs={"cv_accuracies": accs, **attrs})


def test_the_interrupted_trial_with_most_folds_is_found_and_taken_once() -> None:
    study = optuna.create_study(direction="maximize")
    same, other = {"lr": 1e-3}, {"lr": 2e-3}
    study.add_trial(_failed(same, [0.5]))  # 0: one fold
    study.add_trial(_failed(same, [0.6, 0.7], val_history=[0.4, 0.6],
                            cv_details=[{"accuracy": 0.6}]))  # 1: two folds, one detailed
    study.add_trial(_failed(same, [0.9, 0.9, 0.9], fail_reason="RuntimeError: a bug"))  # 2
    study.add_trial(_failed(other, [0.8, 0.8]))  # 3: another configuration
    study.add_trial(_failed(same, [0.1, 0.2, 0.3, 0.4]))  # 4: every fold: nothing to resume

    found = fold_resume.find(study, 9, same, n_folds=4)
    assert found is not None
    assert (found.trial, found.seed_trial, found.accuracies) == (1, 1, (0.6, 0.7))
    assert found.details == ({"accuracy": 0.6}, None) and found.val_history == (0.4, 0.6)
    assert found.reports == ()  # none reported to Optuna here
    assert "fold 1-2 as it recorded them (0.6000, 0.7000)" not in found.text(9)
    assert "folds 1-2 as it recorded them (0.6000, 0.7000)" in found.text(9)
    assert fold_resume.find(study, 9, same, n_folds=0) is None
    assert fold_resume.find(study, 9, {"lr": 2.5e-3}, n_folds=4) is None

    # trial 1 resumed by a live trial: the next resume takes trial 0's fold instead
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.7, params=same,
                                 distributions=DIST,
                                 user_attrs={"resumed_from": 1, "seed_trial": 1}))
    again = fold_resume.find(study, 9, same, n_folds=4)
    assert again is not None and (again.trial, again.accuracies) == (0, (0.5,))
    # a resume of a resume keeps the first trial's seeds
    study.add_trial(_failed(same, [0.6, 0.7, 0.75], resumed_from=0, seed_trial=0))
    chained = fold_resume.find(study, 9, same, n_folds=4)
    assert chained is not None and (chained.trial, chained.seed_trial) == (6, 0)

    # stopped in its first fold, or in a single split (n_folds=1): taken, with no fold, for its
    # seeds (the training it was in continues from its last saved epoch: epoch_state.py)
    lone = {"lr": 2.9e-3}
    study.add_trial(_failed(lone, []))
    first = fold_resume.find(study, 9, lone, n_folds=4)
    assert first is not None and (first.trial, first.folds) == (7, 0)
    assert "no fold finished; trained from its seeds" in first.text(9)
    split = fold_resume.find(study, 9, lone, n_folds=1)
    assert split is not None and split.trial == 7


def test_combined_is_none_where_a_fold_did_not_record_the_value() -> None:
    full = [{"train_seconds": 2.0, "accuracy_fp32": 0.5}, {"train_seconds": 3.0,
                                                           "accuracy_fp32": 0.7}]
    assert fold_resume.combined(full, "train_seconds", "sum") == 5.0
    assert fold_resume.combined(full, "accuracy_fp32", "mean") == pytest.approx(0.6)
    assert fold_resume.combined(full, "train_seconds", "max") == 3.0
    assert fold_resume.combined([None, *full], "train_seconds", "sum") is None
    assert fold_resume.combined([], "train_seconds", "sum") is None


@pytest.mark.slow
def test_a_trial_interrupted_between_folds_resumes_and_scores_as_if_never_stopped(
    tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def opts(home: str) -> SearchOptions:
        return SearchOptions(technique="baseline", data=tiny_dataset, space=SPACE, epochs=1,
                             trials=1, cv=2, confirm_seeds=0, progress=False,
                             storage=f"sqlite:///{tmp_path / home / 'asc.db'}",
                             home=tmp_path / home)

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    whole = run_search(opts("a"), status=lambda m: None).trials[0]
    assert whole.state == TrialState.COMPLETE and len(whole.user_attrs["cv_accuracies"]) == 2

    real_fit = DcaseBaseline.fit
    fits: list[int] = []

    def stopped_in_fold_1(self: Any, *args: Any, **kw: Any) -> Any:
        fits.append(1)
        if len(fits) == 2:
            raise KeyboardInterrupt  # Ctrl-C, or the worker killed, during the second fold
        return real_fit(self, *args, **kw)

    monkeypatch.setattr(DcaseBaseline, "fit", stopped_in_fold_1)
    with pytest.raises(KeyboardInterrupt):
        run_search(opts("b"), status=lambda m: None)
    stopped = optuna.load_study(study_name="baseline", storage=opts("b").storage).trials[0]
    assert stopped.state == TrialState.FAIL
    assert stopped.user_attrs["cv_accuracies"] == whole.user_attrs["cv_accuracies"][:1]

    fits.clear()
    said: list[str] = []
    study = run_search(opts("b"), status=said.append)
    resumed = study.trials[1]
    assert len(fits) == 1  # only the fold it had not finished was trained
    assert resumed.state == TrialState.COMPLETE and resumed.params == whole.params
    assert resumed.user_attrs["resumed_from"] == 0 and resumed.user_attrs["seed_trial"] == 0
    assert resumed.user_attrs["folds_reused"] == 1
    assert any(line.startswith("trial 1 resumes interrupted trial 0, the same configuration: "
                               "fold 1 as it recorded them") for line in said), said
    # the same seeds: what the uninterrupted trial scored, fold by fold
    assert resumed.user_attrs["cv_accuracies"] == whole.user_attrs["cv_accuracies"]
    assert resumed.value == pytest.approx(whole.value)
    for key in ("accuracy_fp32", "size_kb_trained", "val_history"):
        assert resumed.user_attrs[key] == whole.user_attrs[key], key
    assert resumed.intermediate_values == whole.intermediate_values
    assert [d["accuracy"] for d in resumed.user_attrs["cv_details"]] == \
        whole.user_attrs["cv_accuracies"]


def _confirming(tmp_path: Path, tiny_dataset: Path, epochs: int) -> tuple[Any, Any, Any]:
    """A 2-fold baseline study of one trial, and what confirms it: (trial, study, objective)."""
    from asc_auto.search import Objective, setup_study

    opts = SearchOptions(technique="baseline", data=tiny_dataset, space=SPACE, epochs=epochs,
                         trials=1, cv=2, confirm_seeds=0, progress=False,
                         storage=f"sqlite:///{tmp_path / 'asc.db'}", home=tmp_path / "home")
    trial = run_search(opts, status=lambda m: None).trials[0]
    study, setup = setup_study(SearchOptions(**{**opts.__dict__, "trials": 0}),
                               status=lambda m: None)
    return trial, study, Objective(setup)


@pytest.mark.slow
def test_a_confirmation_run_interrupted_between_folds_resumes_from_them(
    tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asc_auto.schema import CONFIRM_FOLDS
    from asc_auto.search import rescore

    trial, study, objective = _confirming(tmp_path, tiny_dataset, epochs=1)
    real_fit = DcaseBaseline.fit
    fits: list[int] = []

    def counted(self: Any, *args: Any, **kw: Any) -> Any:
        fits.append(1)
        return real_fit(self, *args, **kw)

    monkeypatch.setattr(DcaseBaseline, "fit", counted)
    whole = rescore(objective, trial, 1, study)  # both folds, each recorded as it ends
    key = CONFIRM_FOLDS.format(trial=0, seed=1)
    folds = study.user_attrs[key]
    assert len(fits) == 2 and len(folds) == 2

    study.set_user_attr(key, folds[:1])  # as a run stopped during its second fold left it
    fits.clear()
    assert rescore(objective, trial, 1, study) == whole  # to the last digit
    assert len(fits) == 1 and study.user_attrs[key] == folds
    # a run of another seed does not take them
    fits.clear()
    rescore(objective, trial, 2, study)
    assert len(fits) == 2


@pytest.mark.slow
def test_a_confirmation_fold_stopped_mid_training_resumes_at_its_last_epoch(
        tmp_path: Path, tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within a fold too (epoch_state.py): stopped after fold 2's second epoch, the run trains
    fold 2's last epoch only and scores what the whole run did."""
    from asc_auto.epoch_state import EpochState
    from asc_auto.schema import CONFIRM_FOLDS
    from asc_auto.search import rescore

    trial, study, objective = _confirming(tmp_path, tiny_dataset, epochs=3)
    whole = rescore(objective, trial, 1, study)
    key = CONFIRM_FOLDS.format(trial=0, seed=1)
    folds = study.user_attrs[key]
    study.set_user_attr(key, [])
    real = EpochState.save
    saves: list[int] = []
    stop_after: list[int | None] = [5]  # fold 1's 3 epochs, fold 2's first 2

    def save(self: EpochState, state: dict[str, Any]) -> None:
        real(self, state)
        saves.append(1)
        if len(saves) == stop_after[0]:
            raise KeyboardInterrupt

    monkeypatch.setattr(EpochState, "save", save)
    with pytest.raises(KeyboardInterrupt):
        rescore(objective, trial, 1, study)
    assert study.user_attrs[key] == folds[:1]
    saves.clear()
    stop_after[0] = None
    assert rescore(objective, trial, 1, study) == whole  # to the last digit
    assert len(saves) == 1 and study.user_attrs[key] == folds  # fold 2's last epoch only
    assert not list((tmp_path / "home").glob("**/epoch-state/*"))


@pytest.mark.slow
def test_an_int8_fold_trains_the_same_after_another_fold_as_alone(
        tmp_path: Path, tiny_dataset: Path) -> None:
    """A resumed run trains its remaining folds in a process that did not train the folds
    before them: nothing in int8's path (NNCF's quantization, QAT) may depend on that history,
    or a resumed trial would not score what the uninterrupted one did."""
    import torch

    from asc_auto.search import Objective, setup_study

    opts = SearchOptions(technique="int8", data=tiny_dataset,
                         space=Path(__file__).parent / "spaces" / "int8.toml", epochs=2,
                         trials=1, cv=2, confirm_seeds=0, progress=False,
                         storage=f"sqlite:///{tmp_path / 'asc.db'}", home=tmp_path / "home")
    trial = run_search(opts, status=lambda m: None).trials[0]
    _, setup = setup_study(SearchOptions(**{**opts.__dict__, "trials": 0}), status=lambda m: None)
    objective = Objective(setup)
    config = {**trial.user_attrs["config"], "mixup_alpha": 0.3, "qat_epochs": 1}  # QAT on
    whole, outcomes, _ = objective.score_config(config, 0, 1)  # folds 0 and 1 in this process
    resumed = fold_resume.Resumed(trial=0, seed_trial=0, accuracies=whole.accuracies[:1],
                                  details=(None,), val_history=(), reports=())
    again, alone, _ = objective.score_config(config, 0, 1, resumed=resumed)  # fold 1 only

    def weights(fo: Any) -> torch.Tensor:
        return torch.cat([t.detach().flatten().float()
                          for t in fo.candidate.model.state_dict().values()])

    assert len(alone) == 1 and torch.equal(weights(outcomes[1]), weights(alone[0]))
    assert again.accuracies == whole.accuracies
