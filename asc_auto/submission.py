"""The DCASE2020 Task 1b `<label>.meta.yaml` of an export, filled from what was really done.

The fields are those of the task's submission template, checked by its organisers' validator
(toni-heittola/dcase2020_task1_submission_validator: `submission` label/name/abbreviation/
authors with lastname/firstname/email/affiliation and one corresponding author, a label
`<Lastname>_<Institute>_task1b_<1-4>`, an abbreviation of at most 10 characters; `system`
description/complexity/external_datasets/source_code; `results.development_dataset` overall
and class-wise accuracy and logloss). Who submits comes from `--info FILE` (a small TOML) or
`--author`/`--affiliation`; what the system is comes from the study: the augmentation that ran
(SpecAugment and mixup as configured, AclNet's random crops, gain and noise), the precision,
quantization and pruning, AclNet's segment averaging, and the size as the study's rule counts it.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asc_auto.compress.size import Precision, SizeReport, SizeRule
from asc_auto.errors import ConfigError, UsageError

TASK = "task1b"  # the meta.yaml is the DCASE2020 Task 1b one
FILL_IN = "FILL IN"  # what an export without --info/--author writes where a person belongs
_AFFILIATION = ("abbreviation", "institute", "department", "location")
_AUTHOR = ("lastname", "firstname", "email", "corresponding", "affiliation")
_LABEL = re.compile(r"^[A-Za-z][A-Za-z0-9-]*_[A-Za-z0-9-]+_task1[ab]?_[1-4]$")
# Abbreviations by technique: at most 10 characters with the precision (DCASE's limit).
_SHORT = {"kd": "KD", "int8": "Q8", "lt": "LT", "gcc": "GCC", "baseline": "BL"}
_PRECISION_SHORT = {"fp32": "F32", "fp16": "F16", "int8": "I8"}


@dataclass(frozen=True)
class Affiliation:
    abbreviation: str
    institute: str
    department: str
    location: str


@dataclass(frozen=True)
class Author:
    lastname: str
    firstname: str
    email: str
    affiliation: Affiliation
    corresponding: bool = False


@dataclass(frozen=True)
class SubmissionInfo:
    """Who submits and what the system is called (all optional: defaults are derived)."""

    authors: tuple[Author, ...] = ()
    name: str | None = None
    abbreviation: str | None = None
    source_code: str | None = None
    external_datasets: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def _text(file: Path | str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(file, key, f"must be non-empty text, got {value!r}")
    return value.strip()


def _affiliation(file: Path | str, key: str, table: Any) -> Affiliation:
    if not isinstance(table, dict):
        raise ConfigError(file, key, "must be a table with " + ", ".join(_AFFILIATION))
    unknown = set(table) - set(_AFFILIATION)
    if unknown:
        raise ConfigError(file, f"{key}.{sorted(unknown)[0]}", "unknown key",
                          "allowed: " + ", ".join(_AFFILIATION))
    return Affiliation(*(_text(file, f"{key}.{k}", table.get(k)) for k in _AFFILIATION))


def read_info(file: Path) -> SubmissionInfo:
    """`--info FILE`: `[submission]` name/abbreviation/source_code, `[[authors]]` with
    lastname/firstname/email/corresponding and an `[authors.affiliation]` table."""
    try:
        doc = tomllib.loads(Path(file).read_text())
    except OSError as err:
        raise ConfigError(file, "-", f"cannot be read ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(file, "-", f"not valid TOML ({err})") from None
    unknown = set(doc) - {"submission", "authors", "external_datasets"}
    if unknown:
        raise ConfigError(file, sorted(unknown)[0], "unknown key",
                          "allowed: submission, authors, external_datasets")
    sub = doc.get("submission", {})
    extra = set(sub) - {"name", "abbreviation", "source_code"}
    if extra:
        raise ConfigError(file, f"submission.{sorted(extra)[0]}", "unknown key",
                          "allowed: name, abbreviation, source_code")
    authors = []
    for i, row in enumerate(doc.get("authors", [])):
        key = f"authors[{i}]"
        unknown = set(row) - set(_AUTHOR)
        if unknown:
            raise ConfigError(file, f"{key}.{sorted(unknown)[0]}", "unknown key",
                              "allowed: " + ", ".join(_AUTHOR))
        corresponding = row.get("corresponding", False)
        if not isinstance(corresponding, bool):
            raise ConfigError(file, f"{key}.corresponding", "must be true or false")
        authors.append(Author(_text(file, f"{key}.lastname", row.get("lastname")),
                              _text(file, f"{key}.firstname", row.get("firstname")),
                              _text(file, f"{key}.email", row.get("email")),
                              _affiliation(file, f"{key}.affiliation", row.get("affiliation")),
                              corresponding))
    datasets = []
    for i, row in enumerate(doc.get("external_datasets", [])):
        missing = {"name", "url", "total_audio_length"} - set(row)
        if missing:
            raise ConfigError(file, f"external_datasets[{i}].{sorted(missing)[0]}", "missing",
                              "give name, url and total_audio_length (minutes)")
        datasets.append(dict(row))
    info = SubmissionInfo(tuple(authors), sub.get("name"), sub.get("abbreviation"),
                          sub.get("source_code"), tuple(datasets))
    return checked(info, str(file))


def info_from_options(authors: list[str], affiliation: str | None) -> SubmissionInfo:
    """`--author "Lastname;Firstname;email"` (repeatable; the first is the corresponding one)
    with `--affiliation "ABBR;Institute;Department;Location"` for all of them."""
    if not authors:
        if affiliation:
            raise UsageError("--affiliation needs --author; fix: add --author "
                             "'Lastname;Firstname;email'")
        return SubmissionInfo()
    if not affiliation:
        raise UsageError("--author needs --affiliation 'ABBR;Institute;Department;Location'")
    parts = [p.strip() for p in affiliation.split(";")]
    if len(parts) != 4 or not all(parts):
        raise UsageError(f"--affiliation {affiliation!r}: give 4 parts separated by ';': "
                         "abbreviation;institute;department;location")
    aff = Affiliation(*parts)
    out = []
    for i, text in enumerate(authors):
        fields = [p.strip() for p in text.split(";")]
        if len(fields) != 3 or not all(fields):
            raise UsageError(f"--author {text!r}: give 'Lastname;Firstname;email'")
        out.append(Author(*fields, affiliation=aff, corresponding=i == 0))
    return SubmissionInfo(tuple(out))


def merged(base: SubmissionInfo, options: SubmissionInfo, name: str | None,
           abbreviation: str | None) -> SubmissionInfo:
    """--info FILE, then --author/--affiliation, then --name/--abbreviation on top."""
    info = SubmissionInfo(options.authors or base.authors, name or base.name,
                          abbreviation or base.abbreviation, base.source_code,
                          base.external_datasets)
    return checked(info, "--name/--abbreviation")


def checked(info: SubmissionInfo, where: str) -> SubmissionInfo:
    """One corresponding author (the first when none is marked), abbreviation <= 10."""
    if info.abbreviation is not None and not 0 < len(info.abbreviation) <= 10:
        raise UsageError(f"{where}: abbreviation {info.abbreviation!r} has "
                         f"{len(info.abbreviation)} characters; fix: at most 10 (DCASE's limit)")
    marked = [a for a in info.authors if a.corresponding]
    if len(marked) > 1:
        raise UsageError(f"{where}: {len(marked)} corresponding authors; fix: mark one")
    if info.authors and not marked:
        first = info.authors[0]
        info = SubmissionInfo((Author(first.lastname, first.firstname, first.email,
                                      first.affiliation, True), *info.authors[1:]),
                              info.name, info.abbreviation, info.source_code,
                              info.external_datasets)
    return info


def default_label(info: SubmissionInfo, study: str) -> str:
    """`<Lastname>_<Institute>_task1b_1` of the corresponding author, as DCASE names systems;
    without authors `asc-auto_<study>_task1b_1` (the study name without '_' or '.')."""
    lead = next((a for a in info.authors if a.corresponding), None)
    if lead is not None:
        parts = (lead.lastname, lead.affiliation.abbreviation)
    else:
        parts = ("asc-auto", study)
    clean = [re.sub(r"[^A-Za-z0-9-]", "", p) or "x" for p in parts]
    return f"{clean[0]}_{clean[1]}_{TASK}_1"


def check_label(label: str) -> str:
    """A DCASE submission label: it names the meta and output files and the validator splits
    it into four parts."""
    if not _LABEL.match(label):
        raise UsageError(f"--label {label!r} is not a DCASE submission label; fix: use "
                         f"<Lastname>_<Institute>_{TASK}_<1-4>, e.g. Heittola_TAU_{TASK}_1")
    return label


def default_names(technique: str, precision: str, trial: int) -> tuple[str, str]:
    """(name, abbreviation) said in full, not cut from the label: e.g. ('asc-auto kd trial 3,
    FP16', 'AA-KD-F16')."""
    short = _SHORT.get(technique, technique.upper())
    abbreviation = f"AA-{short}-{_PRECISION_SHORT.get(precision, precision.upper())}"
    if len(abbreviation) > 10:
        abbreviation = f"AA-{short}"[:10]  # an unknown technique with a long name
    return f"asc-auto {technique} trial {trial}, {precision.upper()}", abbreviation


def data_augmentation(features: dict[str, Any], train: Any, augment: Any | None) -> str | None:
    """What the training really did, from `train`, the trial's settings
    (`Technique.trial_train_config`: its searched mixup, kd's student without SpecAugment when
    its `spec_augment` is "off"): AclNet (raw waveform) takes random crops with gain and noise
    (`augment`) and no SpecAugment; spectrogram models SpecAugment and mixup as `train` has them."""
    parts = []
    if features.get("kind") == "waveform" and augment is not None:
        parts.append(f"random {augment.crop_seconds:g} s crops")
        if augment.gain_db > 0:
            parts.append(f"random gain (±{augment.gain_db:g} dB)")
        if augment.noise_prob > 0:
            parts.append(f"additive noise (SNR {augment.snr_db:g}-{augment.snr_db + 30:g} dB, "
                         f"{augment.noise_prob:.0%} of crops)")
    elif train.freq_masks or train.time_masks:
        parts.append(f"SpecAugment ({train.freq_masks} frequency masks up to "
                     f"{train.freq_width} bands, {train.time_masks} time masks up to "
                     f"{train.time_width} frames)")
    alpha = float(train.mixup_alpha)
    if alpha > 0:
        parts.append(f"mixup (alpha {alpha:g})")
    return ", ".join(parts) or None


def complexity_management(technique: str, precision: str, record: dict[str, Any],
                          rule: SizeRule) -> str:
    """Precision, quantization, pruning and the search that sized the model, in words."""
    parts = [{"fp32": "FP32 weights (no quantization)",
              "fp16": "FP16 weights (half-precision rounding)",
              "int8": "INT8 post-training quantization (NNCF, 7-bit weights)"}.get(
                  precision, precision)]
    if int(record.get("qat_epochs") or 0) > 0:
        parts.append(f"quantization-aware fine-tuning ({record['qat_epochs']} epochs)")
    if record.get("pruning"):
        rounds = record.get("rounds", 1)
        # channel_ratio is the share of channels removed (pruning.round_ratios)
        how = (f"{int(record['pruned_weights']):,} weights zeroed by global magnitude"
               if record.get("pruned_weights") is not None else
               f"{float(record.get('channel_ratio', 0.0)):.0%} of the channels removed")
        if record.get("weights_removed") is not None:
            how += f", {float(record['weights_removed']):.0%} of the conv/linear weights"
        parts.append(f"lottery-ticket pruning ({record['pruning']}, {rounds} round(s), "
                     f"rewind to epoch {record.get('rewind_epoch', 0)}; {how})")
    if technique == "kd":
        parts.append("knowledge distillation from a larger VGG teacher")
    config = record.get("config") or {}
    if float(config.get("distill_weight") or 0.0) > 0:  # int8, lt with --teacher-logits
        parts.append(f"knowledge distillation from stored teacher outputs (weight "
                     f"{float(config['distill_weight']):.2f}, temperature "
                     f"{float(config.get('distill_temperature', 1.0)):.2f})")
    parts.append(f"widths and precision searched under the {rule.limit_kb:g} KB limit "
                 f"(rule {rule.name}, Optuna TPE)")
    return "; ".join(parts)


def decision_making(features: dict[str, Any], augment: Any | None) -> str | None:
    """AclNet classifies 1 s segments and averages their class probabilities over the clip."""
    if features.get("kind") == "waveform" and augment is not None:
        return (f"average of the class probabilities of {augment.crop_seconds:g} s "
                "non-overlapping segments")
    return None


@dataclass(frozen=True)
class Complexity:
    """The size as the study's rule counts the deployed model (what the search constrained)."""

    total_parameters: int  # values the rule counts, zeros included (BatchNorm per the rule)
    nonzero: int
    model_size_kb: float  # (non-zero, or all under rules that count zeros) x bytes / KB
    macs: int | None = None  # per inference, written under rules with a MACs limit (2022-2024)

    @classmethod
    def of(cls, report: SizeReport, precision: str, rule: SizeRule,
           macs: int | None = None) -> Complexity:
        values = report.counted_params if rule.count_zeros else report.nonzero
        return cls(report.counted_params, report.nonzero,
                   values * Precision(precision).bytes / rule.kb_bytes,
                   macs if rule.max_macs is not None else None)


def _q(value: Any) -> str:
    """A YAML scalar: numbers as is, None as !!null, strings JSON-quoted (valid YAML)."""
    if value is None:
        return "!!null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


def meta_yaml(*, label: str, info: SubmissionInfo, name: str, abbreviation: str,
              features: dict[str, Any], description: dict[str, Any], complexity: Complexity,
              rule: SizeRule, external: list[dict[str, Any]], accuracy: float,
              log_loss: float, per_class: dict[str, tuple[float, float]]) -> str:
    """<label>.meta.yaml in the DCASE2020 Task 1b layout."""
    channels = features.get("channels", "mean")
    rate = features.get("sample_rate", 0) / 1000
    lines = ["# DCASE2020 Task 1b submission metadata written by asc-auto export.",
             "submission:",
             f"  label: {_q(label)}",
             f"  name: {_q(name)}",
             f"  abbreviation: {_q(abbreviation)}",
             "  authors:"]
    authors = info.authors or (Author(FILL_IN, FILL_IN, FILL_IN, Affiliation(
        FILL_IN, FILL_IN, FILL_IN, FILL_IN), True),)
    if not info.authors:
        lines[-1] += "  # fill in, or export again with --info FILE or --author/--affiliation"
    for a in authors:
        lines += [f"    - lastname: {_q(a.lastname)}", f"      firstname: {_q(a.firstname)}",
                  f"      email: {_q(a.email)}", f"      corresponding: {_q(a.corresponding)}",
                  "      affiliation:",
                  *(f"        {k}: {_q(getattr(a.affiliation, k))}" for k in _AFFILIATION)]
    lines += ["system:", "  description:",
              f"    input_channels: "
              f"{_q({'mean': 'mono', 'stereo': 'binaural'}.get(channels, channels))}",
              f"    input_sampling_rate: {_q(f'{rate:g}kHz')}",
              *(f"    {k}: {_q(v)}" for k, v in description.items()),
              "  complexity:",
              f"    # as rule {rule.name} counts the deployed model: model_size = "
              f"{'all' if rule.count_zeros else 'non-zero'} values x bytes / {rule.kb_bytes}",
              f"    total_parameters: {complexity.total_parameters}",
              f"    total_parameters_non_zero: {complexity.nonzero}",
              f"    model_size: {round(complexity.model_size_kb, 3)}  # KB"]
    if complexity.macs is not None:
        lines.append(f"    macs: {complexity.macs}  # per inference of "
                     f"{rule.macs_window_seconds:g} s, counted as the rule counts them"
                     if rule.macs_window_seconds is not None else
                     f"    macs: {complexity.macs}  # per inference of one clip")
    if external:
        lines.append("  external_datasets:")
        for d in external:
            lines += [f"    - name: {_q(d.get('name'))}", f"      url: {_q(d.get('url'))}",
                      f"      total_audio_length: {_q(d.get('total_audio_length'))}"]
    else:
        lines.append("  external_datasets: []")
    lines += [f"  source_code: {_q(info.source_code)}",
              "results:", "  development_dataset:", "    overall:",
              f"      accuracy: {round(100 * accuracy, 2)}",
              f"      logloss: {round(log_loss, 4)}", "    class_wise:"]
    for lab, (acc, loss) in per_class.items():
        lines += [f"      {_q(lab)}:", f"        accuracy: {round(100 * acc, 2)}",
                  f"        logloss: {round(loss, 4) if math.isfinite(loss) else _q('inf')}"]
    return "\n".join(lines) + "\n"
