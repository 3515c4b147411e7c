"""Lottery-ticket helpers: amounts from the budget or a sparsity, rewinding, masks that hold,
replayed plans."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from asc_auto.compress import pruning
from asc_auto.compress.macs import count_macs_torchinfo
from asc_auto.compress.size import get_rule, model_size
from asc_auto.models.aclnet import AclNet, AclNetConfig, Log1p

EXAMPLE = torch.zeros(1, 1, 4000)


def small(llf_compress: str = "none") -> AclNet:
    torch.manual_seed(0)
    return AclNet(AclNetConfig(width=0.25, llf_channels=(8, 16), depth=4, sample_rate=4000,
                               llf_compress=llf_compress))


def rule(name: str, kb: float):
    base = get_rule(name)
    return dataclasses.replace(base, limit_bytes=round(kb * base.kb_bytes))


def keep(model):
    return [model.classifier, model.llf[3]]


def train_steps(model: torch.nn.Module, steps: int = 3) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(4, 1, 4000, generator=g) * 0.1
        loss = model(x)[0].pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_unstructured_rewind_keeps_masks_and_lands_in_the_budget() -> None:
    model = small()
    initial = copy.deepcopy(model.state_dict())
    dcase = rule("dcase2020", 6.0)  # 6 KB at fp16: 3,072 non-zero values
    need = pruning.zeros_needed(model, dcase, "fp16")
    assert need > 0
    predicted = pruning.unstructured_size(model, dcase, "fp16", need)
    assert predicted.fits and predicted.size_bytes <= dcase.limit_bytes
    train_steps(model)
    pruning.magnitude_prune(model, need)
    assert pruning.pruned_count(model) == need
    pruning.rewind(model, initial)
    for module, _ in pruning.prunable_weights(model):  # survivors are exactly their initial values
        name = next(n for n, m in model.named_modules() if m is module)
        mask = module.weight_mask.bool()
        assert torch.equal(module.weight_orig[mask], initial[f"{name}.weight"][mask])
    train_steps(model)  # retraining: the masked weights stay exactly zero
    for module, _ in pruning.prunable_weights(model):
        assert (module.weight[~module.weight_mask.bool()] == 0).all()
    pruning.make_permanent(model)
    after = model_size(model, dcase, "fp16")
    assert after.fits and after.size_bytes <= predicted.size_bytes
    # Under `params` zeros count: unstructured pruning does not shrink the size at all.
    params = rule("params", 6.0)
    assert pruning.zeros_needed(small(), params, "fp16") == 0
    assert model_size(model, params, "fp16").size_bytes == 2 * sum(
        p.numel() for p in model.parameters())


@pytest.mark.parametrize("llf_compress", ["none", "log1p"])
def test_structured_ticket_is_physically_smaller_with_initial_weights_and_fits(
        llf_compress: str) -> None:
    initial = small(llf_compress)
    for name in ("params", "dcase2020"):
        budget = rule(name, 6.0)
        ratio, predicted = pruning.ratio_for_budget(initial, EXAMPLE, budget, "fp16", 1, keep,
                                                     steps=5)
        assert 0 < ratio < 0.95 and predicted.fits
        trained = copy.deepcopy(initial)
        train_steps(trained)
        history = pruning.structured_prune(trained, EXAMPLE, ratio, keep)
        ticket = pruning.replay(initial, history, EXAMPLE)
        n_ticket = sum(p.numel() for p in ticket.parameters())
        assert n_ticket < sum(p.numel() for p in initial.parameters())  # channels are gone
        assert n_ticket == sum(p.numel() for p in trained.parameters())  # same shape as pruned
        size = model_size(ticket, budget, "fp16")
        assert size.fits and size.size_bytes == predicted.size_bytes
        # Each surviving first-layer filter is one of the initial filters, untouched.
        first, first0 = ticket.llf[0].weight, initial.llf[0].weight
        assert first.shape[0] < first0.shape[0]
        for row in first:
            assert any(torch.equal(row, r) for r in first0)
        assert ticket(torch.randn(2, 1, 4000))[0].shape == (2, 3)
        assert isinstance(ticket.llf[-1], Log1p) == (llf_compress == "log1p")


def test_iterative_schedules_reach_the_target() -> None:
    assert pruning.round_targets(100, 3) == [33, 67, 100]
    keeps = pruning.round_ratios(0.5, 2)
    assert abs((1 - keeps[0]) * (1 - keeps[1]) - 0.5) < 1e-9


def _pruning_two_rounds(tiny_dataset, tmp_path, pruning_kind: str, epochs: int,
                        rewind_epoch: int):
    """lt's search setup on the tiny data and a 2-round ticket configuration, under a budget
    of 70 % of the dense size, so both rounds really prune."""
    from pathlib import Path

    from asc_auto.search import SearchOptions, prepare_search

    space = Path(__file__).parent / "spaces" / "lt.toml"
    setup = prepare_search(SearchOptions(technique="lt", data=tiny_dataset, space=space,
                                         home=tmp_path, progress=False, epochs=epochs),
                           status=lambda m: None)
    ctx = setup.context
    config = {**setup.space.paper, "pruning": pruning_kind, "rounds": 2,
              "rewind_epoch": rewind_epoch}
    dense = model_size(setup.technique.build(config, ctx).model, ctx.rule, "fp16")
    ctx.rule = dataclasses.replace(ctx.rule, limit_bytes=int(0.7 * dense.size_bytes))
    return setup, ctx, config, dense


@pytest.mark.parametrize("pruning_kind", ["unstructured", "structured"])
def test_two_rounds_with_a_late_rewind_epoch_fit_and_fit_the_budget(
    pruning_kind: str, tiny_dataset, tmp_path
) -> None:
    """Regression: round 2 used to snapshot the pruned net as the rewind point (KeyError)."""
    setup, ctx, config, dense = _pruning_two_rounds(tiny_dataset, tmp_path, pruning_kind,
                                                    epochs=2, rewind_epoch=1)
    cand = setup.technique.build(config, ctx)
    before = setup.technique.size(cand, ctx.rule)
    macs_dense = count_macs_torchinfo(cand.model, ctx.example_input())
    macs_planned = count_macs_torchinfo(cand.macs_model(), ctx.example_input())
    steps: list[tuple[int, int]] = []
    epochs: list[int] = []
    outcome = setup.technique.fit(cand, config, ctx, on_epoch=lambda e, acc: epochs.append(e),
                                  on_step=lambda done, total: steps.append((done, total)))
    after = setup.technique.size(cand, ctx.rule)
    assert 0.0 <= outcome.accuracy <= 1.0
    # Two dense trainings, then the ticket: epochs and steps run over all three trainings on one
    # scale (one bar, one ETA, the cost line, one learning curve; the rung in the first).
    assert setup.technique.trainings(config, cand) == 3
    assert epochs == [0, 1, 2, 3, 4, 5]
    total = steps[0][1]
    assert {t for _, t in steps} == {total} and total % (3 * 2) == 0
    assert [done for done, _ in steps] == list(range(1, total + 1))
    assert after.size_bytes <= before.size_bytes <= ctx.rule.limit_bytes
    assert after.size_bytes < dense.size_bytes
    # The MACs a search judges before training are those of the ticket that is deployed: fewer
    # than the dense net's for whole channels pruned, the same for zeros (counted by NeSsi).
    assert cand.macs_model() is cand.model
    assert macs_planned == count_macs_torchinfo(cand.model, ctx.example_input())
    assert (macs_planned < macs_dense) == (pruning_kind == "structured")
    assert macs_planned <= macs_dense


def test_a_hand_enqueued_unknown_pruning_kind_is_a_config_error(tiny_dataset, tmp_path) -> None:
    """The space file is checked when read; a trial enqueued by hand with a typo must not be
    pruned some other way (anything but "unstructured" used to prune whole channels)."""
    from pathlib import Path

    from asc_auto.errors import ConfigError
    from asc_auto.search import SearchOptions, prepare_search

    space = Path(__file__).parent / "spaces" / "lt.toml"
    setup = prepare_search(SearchOptions(technique="lt", data=tiny_dataset, space=space,
                                         home=tmp_path, progress=False, epochs=1),
                           status=lambda m: None)
    config = {**setup.space.paper, "pruning": "unstuctured"}
    with pytest.raises(ConfigError, match=r"params\.pruning.*'unstuctured' is not a value this "
                                          r"technique understands; fix: use values from"):
        setup.technique.build(config, setup.context)
    config = {**setup.space.paper, "sparsity": 1.0}  # nothing would be left
    with pytest.raises(ConfigError, match=r"params\.sparsity': 1\.0 is outside \[0, 1\); fix"):
        setup.technique.build(config, setup.context)
    config = {**setup.space.paper, "sparsity": "half"}  # a typo, not a crash in float()
    with pytest.raises(ConfigError, match=r"params\.sparsity': 'half' is not a number; fix"):
        setup.technique.build(config, setup.context)


def test_the_pruner_stops_a_ticket_in_its_first_dense_training(tiny_dataset, tmp_path) -> None:
    """Hyperband's rung is half of one training. It used to read the ticket's epochs only, so a
    stopped 3-round ticket had trained three dense networks first; now the fit reports every
    training's epochs on one scale and a stop at the rung ends the first dense training."""
    from pathlib import Path

    import optuna

    from asc_auto.search import SearchOptions, prepare_search

    space = Path(__file__).parent / "spaces" / "lt.toml"
    setup = prepare_search(SearchOptions(technique="lt", data=tiny_dataset, space=space,
                                         home=tmp_path, progress=False, epochs=2),
                           status=lambda m: None)
    ctx = setup.context
    config = {**setup.space.paper, "pruning": "unstructured", "rounds": 3, "rewind_epoch": 0}
    dense = model_size(setup.technique.build(config, ctx).model, ctx.rule, "fp16")
    ctx.rule = dataclasses.replace(ctx.rule, limit_bytes=int(0.7 * dense.size_bytes))
    cand = setup.technique.build(config, ctx)
    assert setup.technique.trainings(config, cand) == 4
    seen: list[int] = []
    steps: list[int] = []

    def rung(epoch: int, acc: float) -> None:
        del acc
        seen.append(epoch)
        if epoch + 1 == 1:  # the rung at half the 2-epoch schedule
            raise optuna.TrialPruned("below the rung")

    with pytest.raises(optuna.TrialPruned):
        setup.technique.fit(cand, config, ctx, on_epoch=rung,
                            on_step=lambda done, total: steps.append(total - done))
    assert seen == [0]
    # 4 trainings of 2 epochs on the step scale; the stop came after the first epoch of the
    # first, so at least 7 of the 8 epochs' steps were never run, and nothing was pruned.
    per_epoch = (steps[0] + 1) // 8
    assert min(steps) >= 7 * per_epoch - 1
    assert all(torch.count_nonzero(p) == p.numel() for p in cand.model.parameters()
               if p.dim() > 1)


def test_a_study_made_before_a_technique_s_epoch_scale_is_not_resumed_with_it() -> None:
    """lt's trials reported only the ticket's epochs before 2026-12-03; Hyperband compares trials
    at the same epoch, so an old lt study with trials must not take the new scale silently."""
    import optuna

    from asc_auto.errors import UsageError
    from asc_auto.study_resume import check_resume

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    where = {"data": "d", "space_file": "s"}
    fresh = optuna.create_study()
    check_resume(fresh, {"epoch_scale": "all trainings"}, where)  # a new study takes it
    assert fresh.user_attrs["epoch_scale"] == "all trainings"
    check_resume(fresh, {"epoch_scale": "all trainings"}, where)  # and keeps it

    old = optuna.create_study()
    old.add_trial(optuna.trial.create_trial(value=0.5, intermediate_values={1: 0.4}))
    check_resume(old, {"epoch_scale": None}, where)  # one training per fit: nothing changed
    assert old.user_attrs["epoch_scale"] is None
    old_lt = optuna.create_study()
    old_lt.add_trial(optuna.trial.create_trial(value=0.5, intermediate_values={1: 0.4}))
    with pytest.raises(UsageError, match=r"another epoch scale .*: None, this run has 'all "
                                         r"trainings'; fix: .*--study NEW_NAME"):
        check_resume(old_lt, {"epoch_scale": "all trainings"}, where)
    assert "epoch_scale" not in old_lt.user_attrs


def test_an_lt_search_records_every_training_and_asks_the_pruner_in_the_first(
        tiny_dataset, tmp_path, monkeypatch) -> None:
    """The trial's learning curve covers the dense training and the ticket (one scale); the
    pruner is asked at the first training's epochs only, never at the ticket's."""
    from pathlib import Path

    import optuna

    from asc_auto import pruning as search_pruning
    from asc_auto.search import SearchOptions, run_search
    from asc_auto.techniques.lt import LotteryTicket

    asked: dict[int, list[int]] = {}

    class Recording(optuna.pruners.BasePruner):
        def prune(self, study, trial) -> bool:
            asked.setdefault(trial.number, []).append(trial.last_step)
            return False

    monkeypatch.setattr(search_pruning, "make_pruner", lambda *a, **k: Recording())
    space = Path(__file__).parent / "spaces" / "lt.toml"
    study = run_search(SearchOptions(technique="lt", data=tiny_dataset, space=space, trials=2,
                                     epochs=2, cv=0, confirm_seeds=0, home=tmp_path / "home",
                                     budget_kb=10.0,  # every network prunes (~20-80 KB dense)
                                     storage=f"sqlite:///{tmp_path / 'asc.db'}",
                                     progress=False), status=lambda m: None)
    assert study.user_attrs["epoch_scale"] == LotteryTicket.epoch_scale
    done = [t for t in study.trials if t.value is not None]
    assert len(done) == 2
    for t in done:
        rounds = int(t.user_attrs["config"]["rounds"])
        assert (t.user_attrs.get("pruned_weights") or t.user_attrs.get("channel_ratio")) > 0
        epochs = 2 * (rounds + 1)  # every dense training, then the ticket
        assert sorted(t.intermediate_values) == list(range(1, epochs + 1))
        assert len(t.user_attrs["val_history"]) == epochs
    assert 0 not in asked  # the paper trial is never stopped
    assert asked[1] == [1, 2]


def test_a_network_that_fits_unpruned_trains_once(tiny_dataset, tmp_path) -> None:
    """Under a budget the dense network meets, lt used to train it rounds + 1 times, unpruned,
    each round the same network from the same start (office16: 5 of 8 trials, their later curves
    identical to the epoch). It trains once, and says so to the cost line and the pruner."""
    from pathlib import Path

    from asc_auto.search import SearchOptions, prepare_search
    from asc_auto.techniques.lt import prunes

    space = Path(__file__).parent / "spaces" / "lt.toml"
    setup = prepare_search(SearchOptions(technique="lt", data=tiny_dataset, space=space,
                                         home=tmp_path, progress=False, epochs=2),
                           status=lambda m: None)
    ctx = setup.context
    for kind in ("unstructured", "structured"):
        config = {**setup.space.paper, "pruning": kind, "rounds": 3, "rewind_epoch": 1}
        cand = setup.technique.build(config, ctx)
        size = setup.technique.size(cand, ctx.rule)
        assert size.fits and not prunes(cand), (kind, size)  # the test space's net fits
        assert setup.technique.trainings(config, cand) == 1
        epochs: list[int] = []
        steps: list[tuple[int, int]] = []
        outcome = setup.technique.fit(cand, config, ctx, on_epoch=lambda e, a, seen=epochs:
                                      seen.append(e),
                                      on_step=lambda d, t, seen=steps: seen.append((d, t)))
        assert epochs == [0, 1]
        assert steps[-1][0] == steps[-1][1]  # the bar ends with the one training
        assert outcome.info["params_pruned"] == cand.info["params_dense"]
        assert 0.0 <= outcome.info["accuracy_dense"] <= 1.0
    assert setup.technique.fit_version >= 1  # retrain keys tell these seeds from older ones


def test_sparsity_prunes_beyond_the_budget_and_leaves_the_classifier_whole() -> None:
    """A searched sparsity zeroes that fraction of all conv and linear weights even where the
    budget needs nothing, never from the classifier: ranked globally with the rest, its weights
    all went at 50 % (every class then scores the same)."""
    roomy = rule("dcase2020", 100.0)  # the small net fits: the budget asks for nothing
    model = small()
    train_steps(model)
    weights = pruning.weight_count(model)
    assert pruning.zeros_needed(model, roomy, "fp16") == 0
    assert pruning.zeros_for(model, roomy, "fp16", 0.0, keep(model)[:1]) == 0
    zeros = pruning.zeros_for(model, roomy, "fp16", 0.5, keep(model)[:1])
    assert zeros == round(0.5 * weights)
    ranked_with_it = copy.deepcopy(model)
    pruning.magnitude_prune(ranked_with_it, zeros)
    assert (ranked_with_it.classifier.weight == 0).all()  # why the classifier is kept

    pruning.magnitude_prune(model, zeros, keep(model)[:1])
    assert pruning.pruned_count(model) == zeros
    assert not hasattr(model.classifier, "weight_mask")
    assert torch.count_nonzero(model.classifier.weight) == model.classifier.weight.numel()
    for module, _ in pruning.prunable_weights(model, keep(model)[:1]):
        assert 0 < torch.count_nonzero(module.weight) < module.weight.numel()
    # The budget wins where it needs more; and no more than the weights outside `keep` go.
    fresh = small()
    tight = rule("dcase2020", 6.0)
    need = pruning.zeros_needed(fresh, tight, "fp16")
    assert pruning.zeros_for(fresh, tight, "fp16", 0.01, keep(fresh)[:1]) == need
    outside = weights - fresh.classifier.weight.numel()
    assert pruning.zeros_for(fresh, roomy, "fp16", 0.999, keep(fresh)[:1]) == outside


def test_structured_sparsity_takes_the_smallest_ratio_that_removes_as_much() -> None:
    initial = small()
    roomy = rule("params", 100.0)
    weights = pruning.weight_count(initial)
    assert pruning.ratio_for_budget(initial, EXAMPLE, roomy, "fp16", 1, keep, steps=5)[0] == 0.0
    ratio, size = pruning.ratio_for_budget(initial, EXAMPLE, roomy, "fp16", 1, keep, steps=5,
                                           sparsity=0.5)
    shape = pruning.structured_shape(initial, EXAMPLE, ratio, 1, keep)
    assert size.fits and pruning.weight_count(shape) <= 0.5 * weights
    less = pruning.structured_shape(initial, EXAMPLE, ratio - 0.95 / 2**5, 1, keep)
    assert pruning.weight_count(less) > 0.5 * weights  # one bisection step less is not enough
    # Under a tight budget the budget's ratio stands when it already removes more.
    tight = rule("params", 6.0)
    budget_ratio = pruning.ratio_for_budget(initial, EXAMPLE, tight, "fp16", 1, keep, steps=5)[0]
    assert pruning.ratio_for_budget(initial, EXAMPLE, tight, "fp16", 1, keep, steps=5,
                                    sparsity=0.01)[0] == budget_ratio


@pytest.mark.parametrize("pruning_kind", ["unstructured", "structured"])
def test_an_lt_trial_with_sparsity_is_a_ticket_where_the_budget_needs_nothing(
        pruning_kind: str, tiny_dataset, tmp_path) -> None:
    from pathlib import Path

    from asc_auto.search import SearchOptions, prepare_search
    from asc_auto.techniques.lt import prunes

    space = Path(__file__).parent / "spaces" / "lt.toml"  # written before sparsity: reads as 0
    setup = prepare_search(SearchOptions(technique="lt", data=tiny_dataset, space=space,
                                         home=tmp_path, progress=False, epochs=1),
                           status=lambda m: None)
    ctx, lt = setup.context, setup.technique
    config = {**setup.space.paper, "pruning": pruning_kind, "rounds": 2, "rewind_epoch": 0}
    assert "sparsity" not in config and not prunes(lt.build(config, ctx))
    config["sparsity"] = 0.5
    cand = lt.build(config, ctx)
    assert prunes(cand) and lt.trainings(config, cand) == 3
    assert cand.info["weights_removed"] >= 0.5
    planned = lt.size(cand, ctx.rule)
    epochs: list[int] = []
    outcome = lt.fit(cand, config, ctx, on_epoch=lambda e, a: epochs.append(e))
    assert epochs == [0, 1, 2]
    net = cand.model.model
    weights = [m.weight for m, _ in pruning.prunable_weights(net)]
    zero = sum(int((w == 0).sum()) for w in weights)
    if pruning_kind == "unstructured":
        assert zero >= 0.5 * sum(w.numel() for w in weights)
        assert torch.count_nonzero(net.classifier.weight) == net.classifier.weight.numel()
    else:
        assert outcome.info["params_pruned"] < 0.6 * cand.info["params_dense"]
    assert lt.size(cand, ctx.rule).size_bytes <= planned.size_bytes


def test_a_space_whose_sparsity_leaves_0_1_is_refused_when_read(tmp_path) -> None:
    from pathlib import Path

    from asc_auto.errors import ConfigError
    from asc_auto.space import load_technique_space
    from asc_auto.techniques.lt import LotteryTicket

    text = (Path(__file__).parent / "spaces" / "lt.toml").read_text()
    good = text.replace("[paper]", '[params.sparsity]\ntype = "float"\nlow = 0.0\nhigh = 0.9\n'
                        "[paper]\nsparsity = 0.0")
    file = tmp_path / "lt.toml"
    file.write_text(good)
    lt = LotteryTicket
    assert load_technique_space(file, lt).paper["sparsity"] == 0.0
    file.write_text(good.replace("high = 0.9", "high = 1.0"))
    with pytest.raises(ConfigError, match=r"lt\.toml: key 'params\.sparsity': 1\.0 is outside "
                                          r"\[0, 1\); fix: use numbers in \[0, 1\)"):
        load_technique_space(file, lt)
    # the shipped space searches it, with the paper's point at the budget's amount
    from asc_auto.space import default_space_file
    shipped = load_technique_space(default_space_file("lt"), lt)
    assert shipped.paper["sparsity"] == 0.0
    assert any(p.name == "sparsity" and p.high < 1 for p in shipped.params)


@pytest.mark.parametrize(("technique", "expected"), [("lt", 2), ("int8", 2)])
def test_a_study_made_before_a_technique_s_fit_version_is_not_resumed_with_it(
        technique: str, expected: int) -> None:
    """lt's version 2 leaves the classifier unpruned and searches sparsity; int8's version 1
    fine-tunes QAT with BatchNorm frozen (one office16 seed 9 points lower without), its version
    2 at a hundredth of the rate without mixup (2.2 points lower with the old QAT): trials of an
    older study trained otherwise, so a resumed study with trials must not mix them; a study
    without trials may take the new version."""
    import optuna

    from asc_auto.errors import UsageError
    from asc_auto.study_resume import check_resume
    from asc_auto.techniques.base import get_technique

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    version = get_technique(technique).fit_version
    assert version == expected
    where = {"data": "d", "space_file": "s"}
    old = optuna.create_study()
    old.add_trial(optuna.trial.create_trial(value=0.5))
    with pytest.raises(UsageError, match=rf"another training procedure .*: None, this run has "
                                         rf"{expected}; fix"):
        check_resume(old, {"fit_version": version}, where)
    previous = optuna.create_study()  # made by the version before this one
    previous.set_user_attr("fit_version", expected - 1)
    previous.add_trial(optuna.trial.create_trial(value=0.5))
    with pytest.raises(UsageError, match=rf"another training procedure .*: {expected - 1}, "
                                         rf"this run has {expected}; fix"):
        check_resume(previous, {"fit_version": version}, where)
    empty = optuna.create_study()
    check_resume(empty, {"fit_version": version}, where)
    assert empty.user_attrs["fit_version"] == expected
    other = optuna.create_study()  # techniques without a version: nothing changed for them
    other.add_trial(optuna.trial.create_trial(value=0.5))
    check_resume(other, {"fit_version": None}, where)
    assert other.user_attrs["fit_version"] is None


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["unstructured", "structured"])
def test_a_ticket_stopped_in_a_later_round_rewinds_to_its_first_training(
        kind: str, tmp_path, tiny_dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """lt keeps the dense weights of epoch k of its first training to rewind to; resumed in
    the ticket's training (epoch_state.py), the replayed first training holds its last epoch's
    weights, so the rewind point comes from what was kept then (epoch_state.keep), and the
    ticket ends as the uninterrupted one."""
    from asc_auto.epoch_state import EpochState, resumable

    setup, ctx, config, _ = _pruning_two_rounds(tiny_dataset, tmp_path, kind, epochs=3,
                                                rewind_epoch=2)

    def fit() -> tuple[torch.Tensor, float]:
        torch.manual_seed(0)
        cand = setup.technique.build(config, ctx)
        assert setup.technique.trainings(config, cand) == 3
        with resumable(tmp_path / "lt-state", "lt"):
            outcome = setup.technique.fit(cand, config, ctx, on_epoch=lambda e, a: None)
        weights = torch.cat([t.detach().flatten().float()
                             for t in cand.model.state_dict().values()])
        return weights, outcome.accuracy

    real = EpochState.save
    saves: list[int] = []
    stop_after: list[int | None] = [None]

    def save(self: EpochState, state: dict) -> None:
        real(self, state)
        saves.append(1)
        if len(saves) == stop_after[0]:
            raise KeyboardInterrupt

    monkeypatch.setattr(EpochState, "save", save)
    whole = fit()
    assert len(saves) == 3 * 3 + 1  # each epoch, and the rewind point once
    saves.clear()
    stop_after[0] = 8  # the ticket's first epoch saved
    with pytest.raises(KeyboardInterrupt):
        fit()
    assert (tmp_path / "lt-state" / "kept-rewind.pt").exists()
    saves.clear()
    stop_after[0] = None
    weights, accuracy = fit()
    assert len(saves) == 2
    assert torch.equal(weights, whole[0]) and accuracy == whole[1]
