"""Export round trip for every technique: write, reload the IR, re-evaluate, compare, size."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file
from test_submission import task1b_problems  # the DCASE2020 Task 1b template's fields
from typer.testing import CliRunner

import asc_auto.export as export_mod
from asc_auto.cli import app
from asc_auto.errors import AscError
from asc_auto.export import export_study
from asc_auto.ir import IR_FILE
from asc_auto.retrain import retrain
from asc_auto.search import SearchOptions, run_search
from asc_auto.techniques import TECHNIQUES

pytestmark = pytest.mark.slow
SPACES = Path(__file__).parent / "spaces"


SAID: dict[str, list[str]] = {}  # technique -> the status lines of its search and retrain


@pytest.fixture(scope="module", params=sorted(TECHNIQUES))
def retrained(request: pytest.FixtureRequest, tiny_dataset: Path,
              tmp_path_factory: pytest.TempPathFactory):
    name = request.param
    home = tmp_path_factory.mktemp(f"export-{name}")
    url = f"sqlite:///{home / 'asc.db'}"
    said = SAID.setdefault(name, [])
    study = run_search(SearchOptions(technique=name, data=tiny_dataset,
                                     space=SPACES / f"{name}.toml", trials=1, epochs=1,
                                     storage=url, home=home, progress=False,
                                     # lt: a budget its ~20 KB network must be pruned to meet
                                     # (one that fits unpruned trains once, as no ticket)
                                     budget_kb=10.0 if name == "lt" else None),
                       status=said.append)
    result = retrain(study, seeds=1, home=home, progress=False, status=said.append)
    return study, home, url, result


def test_the_cost_lines_count_every_training_a_fit_runs(retrained) -> None:
    """lt trains the dense network, then the ticket: its trial and its seed cost two trainings
    (the line once divided a whole dense training by one epoch, 40x too dear)."""
    study = retrained[0]
    name = study.user_attrs["technique"]
    trainings = "2 trainings of " if name == "lt" else ""
    if name == "lt":
        assert study.trials[0].user_attrs["pruned_weights"] > 0  # the ticket, then the dense
    cost = [line for line in SAID[name] if line.startswith("cost here: ")
            and "teacher" not in line]
    assert len(cost) == 2, SAID[name]
    assert f"so a trial ({trainings}1 epoch x " in cost[0]  # x the cross-validation folds
    assert f"so a seed ({trainings}1 epoch) takes about" in cost[1]


def test_export_round_trip(retrained, tmp_path: Path, tiny_dataset: Path) -> None:
    study, home, _, trained = retrained
    out = tmp_path / "pkg"
    r = export_study(study, out, label="Test_TAU_task1b_1", home=home,
                     eval_data=tiny_dataset / "audio", status=lambda m: None)
    names = {p.name for p in out.iterdir()}
    assert {"model.xml", "model.bin", "deployed.safetensors", "weights.safetensors",
            "export.json", "model_card.md", "Test_TAU_task1b_1.meta.yaml",
            "Test_TAU_task1b_1.output.csv"} <= names
    assert abs(r.accuracy - trained.seeds[0].accuracy) <= export_mod.DEFAULT_TOLERANCE
    assert r.size.fits and 0 < r.size.size_kb <= 500
    assert r.size.nonzero <= r.size.weights + r.size.biases
    exported = json.loads((out / "export.json").read_text())
    precision = exported["precision"]
    assert r.precision == precision
    # MACs counted on the retrained model are those the search judged the trial by (a structured
    # lottery ticket's planned shape included); dcase2020 sets no MACs limit: not in meta.yaml
    trial_macs = study.trials[trained.trial].user_attrs["macs"]
    assert r.macs == exported["macs"] == trial_macs > 0
    expected = {"fp16": ("f16",), "fp32": ("f32",), "int8": ("f32", "i8")}[precision]
    if precision == "fp16" and study.user_attrs["technique"] == "lt":
        # OpenVINO keeps a folded BatchNorm shift of sub-FP16 values (1e-6 after this test's
        # one epoch) in f32; lt's budget headroom counts folded biases at 4 bytes for it
        assert r.size.element_types in (("f16",), ("f16", "f32"))
    else:
        assert r.size.element_types == expected
    deployed = load_file(str(out / "deployed.safetensors"))
    if precision == "fp16":
        assert all(t.dtype.itemsize == 2 for t in deployed.values() if t.is_floating_point())
    meta = yaml.safe_load((out / "Test_TAU_task1b_1.meta.yaml").read_text())
    assert task1b_problems(meta, tuple(study.user_attrs["labels"])) == []  # every field
    assert meta["submission"]["label"] == "Test_TAU_task1b_1"
    _check_meta_is_what_ran(meta, study, trained.trial, precision)
    assert meta["results"]["development_dataset"]["overall"]["accuracy"] == pytest.approx(
        100 * r.accuracy, abs=0.01)
    assert set(meta["results"]["development_dataset"]["class_wise"]) == set(
        study.user_attrs["labels"])
    rows = (out / "Test_TAU_task1b_1.output.csv").read_text().splitlines()
    assert rows[0].split("\t") == ["filename", "scene_label", *study.user_attrs["labels"]]
    assert len(rows) == 1 + 48
    scores = np.array([[float(v) for v in row.split("\t")[2:]] for row in rows[1:]])
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)


def _check_meta_is_what_ran(meta: dict, study, trial_number: int, precision: str) -> None:
    """The meta.yaml says what the study did: its size as the rule counted it when the search
    sized the trial, the augmentation, precision, pruning and segment averaging used."""
    from asc_auto.compress.size import Precision, get_rule

    trial = study.trials[trial_number]
    rule = get_rule(study.user_attrs["rule"])
    desc, complexity = meta["system"]["description"], meta["system"]["complexity"]
    assert complexity["total_parameters"] == trial.user_attrs["counted_params"]
    values = complexity["total_parameters"] if rule.count_zeros \
        else complexity["total_parameters_non_zero"]
    assert complexity["model_size"] == pytest.approx(
        values * Precision(precision).bytes / rule.kb_bytes, abs=1e-3)  # the rule's arithmetic
    assert complexity["model_size"] == pytest.approx(trial.user_attrs["size_kb"], abs=0.5)
    waveform = study.user_attrs["technique"] in ("int8", "lt")  # AclNet
    augmentation = desc["data_augmentation"] or ""
    assert ("s crops, random gain" in augmentation) == waveform  # crop length per space
    import tomllib

    from asc_auto.train import TrainConfig

    train = {**vars(TrainConfig()), **tomllib.loads(
        Path(study.user_attrs["space_file"]).read_text()).get("train", {})}
    masks = train["freq_masks"] + train["time_masks"] > 0  # the test spaces set them apart
    assert ("SpecAugment" in augmentation) == (masks and not waveform)
    mixup = trial.user_attrs["config"].get("mixup_alpha", 0) > 0
    assert ("mixup" in augmentation) == mixup
    assert precision.upper() in desc["complexity_management"]
    assert ("lottery-ticket pruning" in desc["complexity_management"]) == (
        study.user_attrs["technique"] == "lt")
    assert (desc["decision_making"] is not None) == waveform
    name, abbreviation = meta["submission"]["name"], meta["submission"]["abbreviation"]
    assert f"trial {trial_number}" in name and len(abbreviation) <= 10


def test_export_fails_loudly_and_leaves_nothing(retrained, tmp_path: Path, monkeypatch) -> None:
    study, home, _, _ = retrained
    out = tmp_path / "pkg"

    def wrong(probs, y, n_classes):  # type: ignore[no-untyped-def]
        good = real(probs, y, n_classes)
        return dataclasses.replace(good, accuracy=good.accuracy - 0.5)

    real = export_mod.score
    monkeypatch.setattr(export_mod, "score", wrong)
    with pytest.raises(AscError, match="does not reproduce"):
        export_study(study, out, home=home, status=lambda m: None)
    monkeypatch.setattr(export_mod, "score", real)
    monkeypatch.setattr(export_mod, "study_context", _tiny_budget(export_mod.study_context))
    with pytest.raises(AscError, match="exceeds"):
        export_study(study, out, home=home, status=lambda m: None)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def _tiny_budget(real):  # type: ignore[no-untyped-def]
    def ctx(*args, **kwargs):  # type: ignore[no-untyped-def]
        c = real(*args, **kwargs)
        c.rule = dataclasses.replace(c.rule, limit_bytes=100)
        return c
    return ctx


def test_export_needs_a_retrain(tiny_dataset: Path, tmp_path: Path) -> None:
    import optuna

    study = optuna.create_study(study_name="bare")
    with pytest.raises(AscError, match="asc-auto retrain"):
        export_study(study, tmp_path / "pkg", home=tmp_path)


def test_export_cli(retrained, tmp_path: Path) -> None:
    study, home, url, _ = retrained
    if study.study_name != "kd":
        pytest.skip("the CLI wrapper is the same for every technique")
    result = CliRunner().invoke(app, [
        "export", "--study", study.study_name, "--storage", url, "--out", str(tmp_path / "pkg"),
        "--home", str(home), "--author", "Heittola;Toni;toni@example.org",
        "--affiliation", "TAU;Tampere University;Computing Sciences;Tampere, Finland",
        "--abbreviation", "TAU-KD"])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert re.search(r"reloaded IR accuracy \d\.\d{4} ± \d\.\d{3} on 13 clips \(retrain",
                     flat), flat
    assert (tmp_path / "pkg" / IR_FILE).exists()
    meta = yaml.safe_load((tmp_path / "pkg" / "Heittola_TAU_task1b_1.meta.yaml").read_text())
    assert task1b_problems(meta, tuple(study.user_attrs["labels"])) == []
    assert meta["submission"]["abbreviation"] == "TAU-KD"
    assert meta["submission"]["authors"][0]["affiliation"]["location"] == "Tampere, Finland"
    bad = CliRunner().invoke(app, ["export", "--study", study.study_name, "--storage", url,
                                   "--out", str(tmp_path / "pkg2"), "--home", str(home),
                                   "--label", "Test_task1b_1"])
    assert bad.exit_code == 2 and "not a DCASE submission label" in bad.output
    assert not (tmp_path / "pkg2").exists()


def test_export_takes_the_pick_s_retrain_whichever_trial_was_retrained_last(
        tiny_dataset: Path, tmp_path: Path) -> None:
    """The pick and the paper configuration retrained to compare them, the paper's last: export
    packages the pick (before: the latest retrain, the paper configuration), `--trial N`
    another retrained trial, and a trial not retrained is refused by name."""
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'asc.db'}"
    study = run_search(SearchOptions(technique="baseline", data=tiny_dataset,
                                     space=SPACES / "baseline.toml", trials=3, epochs=1,
                                     storage=url, home=home, progress=False, confirm_seeds=0),
                       status=lambda m: None)
    pick = retrain(study, seeds=1, home=home, progress=False, status=lambda m: None).trial
    other = next(t.number for t in study.trials if t.number != pick and t.value is not None)
    retrain(study, seeds=1, trial_number=other, home=home, progress=False,
            status=lambda m: None)
    assert study.user_attrs["retrain"]["trial"] == other  # the latest
    # the tables show the pick's retrain too, not the paper configuration's that came after it
    shown = CliRunner().invoke(app, ["show", "--study", study.study_name, "--storage", url,
                                     "--home", str(home), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["retrain"]["trial"] == pick
    assert json.loads(shown.output)["retrain"]["is_pick"] is True
    listed = CliRunner().invoke(app, ["studies", "--storage", url, "--home", str(home)])
    assert f"#{pick}: " in listed.output and f"#{other}: " not in listed.output, listed.output
    assert sorted(study.user_attrs["retrains"], key=int) == sorted(map(str, {pick, other}),
                                                                     key=int)
    r = export_study(study, tmp_path / "pick", home=home, status=lambda m: None)
    assert r.trial == pick
    assert json.loads((tmp_path / "pick" / "export.json").read_text())["trial"] == pick
    out = CliRunner().invoke(app, ["export", "--study", study.study_name, "--storage", url,
                                   "--home", str(home), "--out", str(tmp_path / "other"),
                                   "--trial", str(other)])
    assert out.exit_code == 0, out.output
    assert f"exported trial {other} seed 0" in " ".join(out.output.split())
    never = next(t.number for t in study.trials if t.number not in (pick, other))
    with pytest.raises(AscError, match=rf"trial {never} is not retrained \(retrained: trial "
                                       rf"{min(pick, other)}, {max(pick, other)}\); fix: run "
                                       rf"`asc-auto retrain --study {study.study_name} --trial "
                                       rf"{never}`"):
        export_study(study, tmp_path / "never", home=home, trial=never, status=lambda m: None)
    assert not (tmp_path / "never").exists()


def test_a_study_retrained_before_retrains_were_kept_per_trial_exports_its_latest() -> None:
    """Before 2026-12-05 a study kept only its latest retrain: that one is its pick's when the
    trials agree, and a pick retrained since (or never) is said by name."""
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    from asc_auto.records import retrained_summary

    study = optuna.create_study(direction="maximize", study_name="old")
    for value in (0.5, 0.7):
        study.add_trial(create_trial(value=value, params={"x": value},
                                     distributions={"x": FloatDistribution(0, 1)},
                                     user_attrs={"feasible": True, "size_kb": 10.0}))
    study.set_user_attr("retrain", {"trial": 1, "folder": "/x/trial-1", "seeds": 3})
    assert retrained_summary(study)["folder"] == "/x/trial-1"  # trial 1 is the pick
    assert retrained_summary(study, 1)["folder"] == "/x/trial-1"
    with pytest.raises(AscError, match=r"'old': trial 0 is not retrained \(retrained: trial 1\)"):
        retrained_summary(study, 0)
    study.set_user_attr("retrain", {"trial": 0, "folder": "/x/trial-0", "seeds": 3})
    with pytest.raises(AscError, match=r"its pick \(trial 1\) is not retrained \(retrained: "
                                       r"trial 0\); fix: run `asc-auto retrain --study old "
                                       r"--trial 1`"):
        retrained_summary(study)
