"""The DCASE2020 Task 1b meta.yaml: every field of the task's template, filled from what ran.

`task1b_problems` encodes the template as the organisers' validator checks it
(toni-heittola/dcase2020_task1_submission_validator, main.py's subtask B parameters and
validators.py's rules), plus the affiliation fields of the template; test_export.py runs it on
real exports of every technique.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from asc_auto.compress.size import SizeReport, get_rule
from asc_auto.errors import ConfigError, UsageError
from asc_auto.submission import (
    Complexity,
    SubmissionInfo,
    check_label,
    complexity_management,
    data_augmentation,
    decision_making,
    default_label,
    default_names,
    info_from_options,
    merged,
    meta_yaml,
    read_info,
)
from asc_auto.techniques import TECHNIQUES
from asc_auto.techniques.aclnet_common import AugmentSettings
from asc_auto.train import TrainConfig

LABELS = ("indoor", "outdoor", "transportation")
# The template's fields, as the validator requires them for subtask B.
SUBMISSION = ("label", "name", "abbreviation", "authors")
AUTHOR = ("lastname", "firstname", "email", "affiliation")
AFFILIATION = ("abbreviation", "institute", "department", "location")  # the template's
SYSTEM = ("description", "complexity", "external_datasets", "source_code")
DESCRIPTION = ("input_sampling_rate", "acoustic_features", "embeddings", "data_augmentation",
               "machine_learning_method", "ensemble_method_subsystem_count", "decision_making",
               "external_data_usage", "complexity_management")
COMPLEXITY = ("total_parameters", "total_parameters_non_zero", "model_size")
EXTERNAL = ("name", "url", "total_audio_length")


def task1b_problems(meta: dict[str, Any], labels: tuple[str, ...] = LABELS) -> list[str]:
    """What the DCASE2020 Task 1b validator would refuse in a parsed meta.yaml (empty: none)."""
    bad: list[str] = []

    def need(block: Any, fields: tuple[str, ...], where: str) -> None:
        if not isinstance(block, dict):
            bad.append(f"{where}: not a block")
            return
        bad.extend(f"{where}.{f} missing" for f in fields if f not in block)

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) \
            and math.isfinite(value)

    need(meta, ("submission", "system", "results"), "meta")
    sub = meta.get("submission", {})
    need(sub, SUBMISSION, "submission")
    authors = sub.get("authors") or []
    if not authors:
        bad.append("submission.authors empty")
    for i, a in enumerate(authors):
        need(a, AUTHOR, f"authors[{i}]")
        need(a.get("affiliation"), AFFILIATION, f"authors[{i}].affiliation")
    if sum(bool(a.get("corresponding")) for a in authors) != 1:
        bad.append("not exactly one corresponding author")
    parts = str(sub.get("label", "")).split("_")
    if len(parts) != 4 or parts[2] != "task1b" or parts[3] not in ("1", "2", "3", "4"):
        bad.append(f"label {sub.get('label')!r} is not <Lastname>_<Institute>_task1b_<1-4>")
    if len(str(sub.get("abbreviation", ""))) > 10:
        bad.append("abbreviation longer than 10")
    system = meta.get("system", {})
    need(system, SYSTEM, "system")
    need(system.get("description"), DESCRIPTION, "system.description")
    complexity = system.get("complexity", {})
    need(complexity, COMPLEXITY, "system.complexity")
    if not isinstance(complexity.get("total_parameters"), int):
        bad.append("total_parameters not an integer")
    datasets = system.get("external_datasets")
    if not isinstance(datasets, list):  # the validator iterates it
        bad.append("external_datasets is not a list")
    for i, d in enumerate(datasets or []):
        need(d, EXTERNAL, f"external_datasets[{i}]")
    dev = meta.get("results", {}).get("development_dataset", {})
    need(dev, ("overall", "class_wise"), "results.development_dataset")
    overall = dev.get("overall", {})
    need(overall, ("accuracy", "logloss"), "overall")
    bad.extend(f"overall.{k} not numeric" for k, v in overall.items() if not number(v))
    class_wise = dev.get("class_wise", {})
    need(class_wise, labels, "class_wise")
    for lab, row in class_wise.items():
        need(row, ("accuracy", "logloss"), f"class_wise.{lab}")
        bad.extend(f"class_wise.{lab}.{k} not numeric" for k, v in row.items() if not number(v))
    return bad


INFO = """
[submission]
name = "KD student searched under 500 KB"
abbreviation = "KDsearch"
source_code = "https://example.org/asc-auto"

[[authors]]
lastname = "Heittola"
firstname = "Toni"
email = "toni@example.org"
corresponding = true
[authors.affiliation]
abbreviation = "TAU"
institute = "Tampere University"
department = "Computing Sciences"
location = "Tampere, Finland"

[[authors]]
lastname = "Mesaros"
firstname = "Annamaria"
email = "annamaria@example.org"
[authors.affiliation]
abbreviation = "TAU"
institute = "Tampere University"
department = "Computing Sciences"
location = "Tampere, Finland"
"""


def _meta(info: SubmissionInfo, **kw: Any) -> dict[str, Any]:
    rule = get_rule("dcase2020")
    report = SizeReport("dcase2020", None, 253_000, 252_713, 252_700, 0, 0.0, 500.0, True)
    text = meta_yaml(
        label=kw.get("label", default_label(info, "kd")), info=info, name="n",
        abbreviation="AA-KD-F16",
        features={"kind": "logmel", "sample_rate": 16000, "channels": "mean"},
        description={"acoustic_features": "log-mel energies", "embeddings": None,
                     "data_augmentation": "SpecAugment", "machine_learning_method": "CNN",
                     "ensemble_method_subsystem_count": None, "decision_making": None,
                     "external_data_usage": None, "complexity_management": "FP16"},
        complexity=Complexity.of(report, "fp16", rule), rule=rule,
        external=list(info.external_datasets), accuracy=0.8123, log_loss=0.51,
        per_class={lab: (0.8, 0.5) for lab in LABELS})
    return yaml.safe_load(text)


def test_a_filled_meta_yaml_has_every_template_field(tmp_path: Path) -> None:
    (tmp_path / "info.toml").write_text(INFO)
    info = read_info(tmp_path / "info.toml")
    meta = _meta(info)
    assert task1b_problems(meta) == []
    sub = meta["submission"]
    assert sub["label"] == "Heittola_TAU_task1b_1"  # the corresponding author's, as DCASE names
    assert sub["authors"][0]["affiliation"] == {
        "abbreviation": "TAU", "institute": "Tampere University",
        "department": "Computing Sciences", "location": "Tampere, Finland"}
    assert [a["corresponding"] for a in sub["authors"]] == [True, False]
    assert meta["system"]["source_code"] == "https://example.org/asc-auto"
    complexity = meta["system"]["complexity"]
    assert complexity == {"total_parameters": 252_713, "total_parameters_non_zero": 252_700,
                          "model_size": round(252_700 * 2 / 1024, 3)}  # non-zero x FP16 bytes
    assert meta["results"]["development_dataset"]["overall"]["accuracy"] == 81.23


def test_without_authors_it_says_what_to_fill_in() -> None:
    meta = _meta(SubmissionInfo())
    assert meta["submission"]["label"] == "asc-auto_kd_task1b_1"
    assert meta["submission"]["authors"][0]["lastname"] == "FILL IN"
    assert task1b_problems(meta) == []  # the layout is complete; the people are to be named


def test_authors_from_options() -> None:
    info = merged(SubmissionInfo(), info_from_options(
        ["Heittola;Toni;toni@example.org", "Mesaros;Annamaria;a@example.org"],
        "TAU;Tampere University;Computing Sciences;Tampere, Finland"), "My system", "MySys")
    assert [a.corresponding for a in info.authors] == [True, False]
    assert info.authors[1].affiliation.location == "Tampere, Finland"
    meta = _meta(info)
    assert task1b_problems(meta) == [] and meta["submission"]["label"] == "Heittola_TAU_task1b_1"
    with pytest.raises(UsageError, match="Lastname;Firstname;email"):
        info_from_options(["Heittola Toni"], "TAU;T;C;L")
    with pytest.raises(UsageError, match="4 parts"):
        info_from_options(["Heittola;Toni;t@x.org"], "TAU;Tampere University")
    with pytest.raises(UsageError, match="--affiliation"):
        info_from_options(["Heittola;Toni;t@x.org"], None)


@pytest.mark.parametrize(("text", "key"), [
    (INFO.replace('institute = "Tampere University"', 'institut = "x"', 1),
     "authors[0].affiliation.institut"),
    (INFO.replace('email = "toni@example.org"', 'email = ""'), "authors[0].email"),
    (INFO.replace("[submission]", "[submision]"), "submision"),
    (INFO + "\n[[external_datasets]]\nname = 'AudioSet'\n",
     "external_datasets[0].total_audio_length"),
])
def test_a_bad_info_file_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    f = tmp_path / "info.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_info(f)
    assert f"key '{key}'" in str(err.value) and str(f) in str(err.value)


def test_abbreviation_and_corresponding_author_rules(tmp_path: Path) -> None:
    f = tmp_path / "info.toml"
    f.write_text(INFO.replace('"KDsearch"', '"KD-search-500"'))
    with pytest.raises(UsageError, match="at most 10"):
        read_info(f)
    f.write_text(INFO.replace('email = "annamaria@example.org"',
                              'email = "annamaria@example.org"\ncorresponding = true'))
    with pytest.raises(UsageError, match="2 corresponding authors"):
        read_info(f)
    f.write_text(INFO.replace("corresponding = true\n", ""))
    assert read_info(f).authors[0].corresponding  # none marked: the first one


def test_labels_and_default_names() -> None:
    assert check_label("Heittola_TAU_task1b_1") == "Heittola_TAU_task1b_1"
    for bad in ("Test_task1b_1", "a_b_task1b_5", "a_b_c_task1b_1", "_b_task1b_1"):
        with pytest.raises(UsageError, match="not a DCASE submission label"):
            check_label(bad)
    assert default_label(SubmissionInfo(), "kd_small.v2") == "asc-auto_kdsmallv2_task1b_1"
    for technique in TECHNIQUES:
        for precision in ("fp32", "fp16", "int8"):
            name, abbreviation = default_names(technique, precision, 3)
            assert 0 < len(abbreviation) <= 10 and technique in name and "trial 3" in name
            assert not "asc-auto_kd_task1b_1".startswith(abbreviation)  # not cut from a label
    assert default_names("kd", "fp16", 0)[1] == "AA-KD-F16"


def test_data_augmentation_is_what_ran() -> None:
    train = TrainConfig()  # SpecAugment 2 x 8 bands, 2 x 20 frames; mixup 0.2
    logmel = {"kind": "logmel"}
    assert data_augmentation(logmel, TrainConfig(mixup_alpha=0.3), None) == (
        "SpecAugment (2 frequency masks up to 8 bands, 2 time masks up to 20 frames), "
        "mixup (alpha 0.3)")
    assert data_augmentation(logmel, TrainConfig(mixup_alpha=0.0), None).startswith("SpecAugment")
    off = TrainConfig(freq_masks=0, time_masks=0, mixup_alpha=0.0)
    assert data_augmentation(logmel, off, None) is None
    wave = {"kind": "waveform"}
    text = data_augmentation(wave, train, AugmentSettings())
    assert text == ("random 1 s crops, random gain (±6 dB), additive noise (SNR 20-50 dB, 50% "
                    "of crops), mixup (alpha 0.2)")  # AclNet: no SpecAugment
    assert decision_making(wave, AugmentSettings()) == (
        "average of the class probabilities of 1 s non-overlapping segments")
    assert decision_making(logmel, None) is None


def test_complexity_management_names_precision_quantization_pruning() -> None:
    rule = get_rule("dcase2020")
    lt = complexity_management("lt", "fp16", {"pruning": "unstructured", "rounds": 2,
                                              "rewind_epoch": 1, "pruned_weights": 12345}, rule)
    assert lt.startswith("FP16 weights") and "lottery-ticket pruning (unstructured, 2 round(s)" \
        in lt and "12,345 weights zeroed" in lt and "500 KB limit (rule dcase2020" in lt
    structured = complexity_management("lt", "fp32", {"pruning": "structured", "rounds": 1,
                                                      "channel_ratio": 0.2,
                                                      "weights_removed": 0.36}, rule)
    assert "20% of the channels removed, 36% of the conv/linear weights" in structured
    q8 = complexity_management("int8", "int8", {"qat_epochs": 3}, rule)
    assert "INT8 post-training quantization" in q8 and "quantization-aware fine-tuning (3" in q8
    assert "knowledge distillation" in complexity_management("kd", "fp32", {}, rule)
    assert "distillation" not in q8  # no teacher, or the paper trial's weight 0
    paper = {"qat_epochs": 0, "config": {"distill_weight": 0.0, "distill_temperature": 1.0}}
    assert "distillation" not in complexity_management("int8", "int8", paper, rule)
    taught = complexity_management("int8", "int8", {"config": {"distill_weight": 0.456,
                                                               "distill_temperature": 3.21}}, rule)
    assert "knowledge distillation from stored teacher outputs (weight 0.46, temperature " \
        "3.21)" in taught
