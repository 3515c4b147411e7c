"""`asc-auto export`: one retrained seed as a deployable, self-checked DCASE2020 Task 1b package.

The package (written to a temp folder beside `out`, renamed into place only when every check
passed): model.xml/.bin (OpenVINO IR at the trained precision), deployed.safetensors and
weights.safetensors (no pickle), export.json (what predict needs), <label>.meta.yaml, model_card.md
and, given evaluation audio, <label>.output.csv. Before the rename the IR is reloaded and re-run
on the evaluate fold: its accuracy must match the retrain's within `tolerance`, and its size,
counted from its own constants (asc_auto.ir.ir_size), must fit the study's budget.

`out` must be new, empty, or an earlier package (it has export.json), and an earlier package is
replaced only with `force`, and only when it holds nothing but what the tool wrote there: a
user's folder, or a file a user added to a package, is never deleted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from safetensors.torch import load_file

from asc_auto.compress.size import model_size_from_tensors
from asc_auto.context import TrialContext, study_context
from asc_auto.errors import AscError, CommandFailed, UsageError
from asc_auto.io import MANIFEST, atomic_dir, foreign_files
from asc_auto.ir import IR_FILE, IrModel, IrSize, ir_size
from asc_auto.package import EXPORT_JSON, FILES, MODEL_CARD, RESULT_JSON, SAFETENSORS, WEIGHTS
from asc_auto.predict import predict, wav_files, write_output_csv
from asc_auto.records import retrained_summary
from asc_auto.schema import StudyRecord, TrialRecord
from asc_auto.stats import accuracy_text
from asc_auto.submission import (
    FILL_IN,
    Complexity,
    SubmissionInfo,
    check_label,
    complexity_management,
    data_augmentation,
    decision_making,
    default_label,
    default_names,
    meta_yaml,
)
from asc_auto.techniques.base import get_technique
from asc_auto.train import score

# Accuracy gap allowed between the reloaded IR and the retrain's PyTorch figure: OpenVINO's
# kernels (fp16 weights, int8 arithmetic) round differently from PyTorch's simulation.
DEFAULT_TOLERANCE = 0.01


@dataclass(frozen=True)
class ExportResult:
    """What was exported and what the re-check measured."""

    folder: Path
    label: str
    trial: int
    seed: int
    precision: str
    accuracy: float  # the reloaded IR on the evaluate fold
    accuracy_retrain: float  # recorded by retrain (PyTorch)
    log_loss: float
    per_class: dict[str, tuple[float, float]]  # label -> (accuracy, log loss)
    size: IrSize
    output_csv: Path | None
    macs: int | None = None  # of one inference as the study's rule counts them; None: unknown
    clips: int = 0  # evaluate clips the reloaded IR was scored on (its accuracy's SE)

    @property
    def accuracy_text(self) -> str:
        """The reloaded IR's accuracy ± its binomial standard error on the evaluate clips."""
        text = accuracy_text(self.accuracy, self.clips)
        return f"{text} on {self.clips} clips" if self.clips else text


# Files an export wrote before packages carried the io.MANIFEST (older packages are recognised
# by these names; anything else in such a folder is the user's).
_LEGACY_PACKAGE = re.compile(r"^(model\.xml|model\.bin|deployed\.safetensors|weights\.safetensors|"
                             r"export\.json|model_card\.md|.+\.meta\.yaml|.+\.output\.csv)$")


def _user_files(folder: Path) -> list[str]:
    """Files in an export folder that no export wrote."""
    if (folder / MANIFEST).is_file():
        return foreign_files(folder)
    return [f for f in foreign_files(folder) if not _LEGACY_PACKAGE.match(f)]


def check_out_folder(out: Path, force: bool) -> None:
    """Refuse an `out` whose contents an export would destroy; see the module docstring."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise UsageError(f"{out}: exists and is not a folder; fix: choose a new --out folder")
    if not any(out.iterdir()):
        return
    if not (out / EXPORT_JSON).is_file():
        raise UsageError(f"{out}: not empty and not an asc-auto export package (no "
                         f"{EXPORT_JSON}); nothing was written; fix: choose a new or empty --out")
    if not force:
        raise UsageError(f"{out}: holds an earlier export; fix: pass --force to replace it, or "
                         "choose another --out")
    users = _user_files(out)
    if users:
        raise UsageError(f"{out}: holds files an export did not write ({', '.join(users[:3])}"
                         f"{', ...' if len(users) > 3 else ''}); nothing was replaced; fix: move "
                         "them out of the folder, or choose another --out")


def export_study(study: optuna.Study, out: Path, label: str | None = None, seed: int = 0,
                 home: Path = Path("studies"), eval_data: Path | None = None,
                 tolerance: float = DEFAULT_TOLERANCE, force: bool = False,
                 status: Callable[[str], None] = print,
                 info: SubmissionInfo | None = None, data: Path | None = None,
                 trial: int | None = None) -> ExportResult:
    """Export retrain seed `seed` of `study`'s pick, or of retrained `trial` (seed 0 by default:
    the seed is not picked by its evaluate score, which would flatter the figure); raise AscError
    and write nothing if a check fails. An existing package at `out` is replaced only with
    `force`. `info`: who submits and what the system is called (submission.py), for the
    meta.yaml. `data`: the study's dataset at another place (checked by content)."""
    check_out_folder(out, force)
    info = info or SubmissionInfo()
    label = check_label(label or default_label(info, study.study_name))
    record = StudyRecord.from_study(study)
    summary = retrained_summary(study, trial)
    seed_dir = Path(summary["folder"]) / f"seed-{seed}"
    try:
        doc = json.loads((seed_dir / RESULT_JSON).read_text())
    except (OSError, ValueError):
        raise AscError(f"{seed_dir}: no retrained seed {seed}; fix: run `asc-auto retrain "
                       f"--study {study.study_name} --seeds {seed + 1}`") from None
    missing = [f for f in FILES if not (seed_dir / f).exists()]
    if missing:
        raise AscError(f"{seed_dir}: {', '.join(missing)} missing (retrained before export "
                       f"existed?); fix: delete that folder and run asc-auto retrain again")
    technique = get_technique(str(record.technique))
    ctx = study_context(study, technique, home, None, "cpu", False, status, data)
    labels = tuple(ctx.dataset.labels)
    x, y = ctx.val_xy
    doc = {**doc, "rule": ctx.rule.name}
    def replaceable(folder: Path) -> bool:  # checked again at the rename: the folder may change
        check_out_folder(folder, force)
        return True

    with atomic_dir(out, replace=replaceable) as tmp:
        for name in FILES:
            shutil.copy2(seed_dir / name, tmp / name)
        for name in SAFETENSORS:
            load_file(str(tmp / name))  # loads without pickle, or raises
        probs = IrModel(tmp / IR_FILE, notice=status).probabilities(x.float().numpy())
        scores = score(probs, y.numpy(), len(labels))
        acc, loss = scores.accuracy, scores.log_loss
        per = {lab: (scores.per_class[i], scores.per_class_log_loss[i])
               for i, lab in enumerate(labels) if not math.isnan(scores.per_class[i])}
        recorded = float(doc["result"]["accuracy"])
        if abs(acc - recorded) > tolerance:
            raise CommandFailed(
                f"{seed_dir / IR_FILE}: reloaded IR scores {acc:.4f} on the evaluate fold, "
                f"retrain recorded {recorded:.4f} (tolerance {tolerance}); the export does not "
                "reproduce the trained model; nothing was written")
        size = ir_size(tmp / IR_FILE, ctx.rule)
        if not size.fits:
            raise CommandFailed(f"{seed_dir / IR_FILE}: {size.size_kb:.2f} KB counted from the "
                                f"IR's constants exceeds the {size.limit_kb:.0f} KB budget "
                                f"({ctx.rule.name}); nothing was written")
        macs = exported_macs(doc, study, int(summary["trial"]))
        if macs is not None and not ctx.rule.macs_fit(macs):
            raise CommandFailed(f"{seed_dir / RESULT_JSON}: {macs / 1e6:.3f} MMACs per inference "
                                f"exceed the {ctx.rule.max_mmacs:g} MMACs limit "
                                f"({ctx.rule.name}); nothing was written")
        (tmp / EXPORT_JSON).write_text(json.dumps({
            "study": study.study_name, "trial": summary["trial"], "seed": seed,
            "technique": technique.name, "precision": doc["precision"], "labels": list(labels),
            "features": doc["features"], "input_shape": doc["input_shape"],
            "config": doc["config"], "rule": ctx.rule.name, "macs": macs,
            "accuracy": round(acc, 4)}, indent=2))
        result = ExportResult(out, label, int(summary["trial"]), seed, str(doc["precision"]), acc,
                              recorded, loss, per, size, None, macs, clips=len(y))
        (tmp / f"{label}.meta.yaml").write_text(_meta(study, result, doc, ctx, info, tmp))
        if not info.authors:
            status(f"{label}.meta.yaml: authors left as '{FILL_IN}'; export again with --info "
                   "FILE or --author/--affiliation to submit it")
        (tmp / MODEL_CARD).write_text(model_card(result, doc, technique.name,
                                                      technique.summary, tolerance))
        csv = None
        if eval_data is not None:
            files = wav_files(eval_data)
            preds = predict(tmp, files, root=eval_data)
            bad = [p for p in preds if p.error]
            if bad:
                raise AscError(f"{bad[0].file}: {bad[0].error} ({len(bad)} of {len(preds)} "
                               "evaluation files failed); fix: repair or remove them")
            csv = write_output_csv(preds, labels, tmp / f"{label}.output.csv")
    return dataclasses.replace(result, output_csv=None if csv is None else out / csv.name)


def exported_macs(doc: dict[str, Any], study: optuna.Study, trial: int) -> int | None:
    """MACs of the retrained model (retrain records them since 2026-11-30), else those the
    trial was sized by (the same shape; before 2026-11-30 a structured lt ticket was counted
    unpruned, an upper bound); None when neither is known."""
    if doc.get("macs") is not None:
        return int(doc["macs"])
    frozen = {t.number: t for t in study.get_trials(deepcopy=False)}.get(trial)
    recorded = None if frozen is None else TrialRecord.from_trial(frozen).macs
    return None if recorded is None else int(recorded)


def _meta(study: optuna.Study, result: ExportResult, doc: dict[str, Any], ctx: TrialContext,
          info: SubmissionInfo, folder: Path) -> str:
    """The meta.yaml from what was done: the trial's record, the training settings, the size
    as the study's rule counts the trained weights."""
    trial = {t.number: t for t in study.get_trials(deepcopy=False)}[result.trial]
    features, config = doc["features"], doc["config"]
    augment = None
    if features.get("kind") == "waveform":  # AclNet (int8, lt): its crops, gain and noise
        from asc_auto.techniques.aclnet_common import augment_settings

        augment = augment_settings(ctx)
    weights = model_size_from_tensors(layer_tensors(load_file(str(folder / WEIGHTS))), ctx.rule)
    sources = StudyRecord.from_study(study).sources or {}
    used = [f"pre-trained model ({Path(sources['init_from']['path']).name})"
            if sources.get("init_from") else None,
            *(f"teacher pre-trained elsewhere ({Path(t['path']).name})"
              for t in sources.get("teachers") or ()),
            *(f"stored teacher outputs ({Path(t['path']).name})"
              for t in sources.get("teacher_logits") or ())]
    name, abbreviation = default_names(doc["technique"], result.precision, result.trial)
    description = {
        "acoustic_features": {"logmel": "log-mel energies", "waveform": "raw waveform",
                              "gcc": "log-mel energies, GCC-PHAT"}.get(
                                  features.get("kind", "logmel"), features.get("kind")),
        "embeddings": None,
        "data_augmentation": data_augmentation(
            features, get_technique(doc["technique"]).trial_train_config(config, ctx), augment),
        "machine_learning_method": "CNN",
        "ensemble_method_subsystem_count": None,
        "decision_making": decision_making(features, augment),
        "external_data_usage": "; ".join(u for u in used if u) or None,
        "complexity_management": complexity_management(doc["technique"], result.precision,
                                                       dict(trial.user_attrs), ctx.rule),
    }
    return meta_yaml(
        label=result.label, info=info, name=info.name or name,
        abbreviation=info.abbreviation or abbreviation, features=features,
        description=description,
        complexity=Complexity.of(weights, result.precision, ctx.rule, result.macs), rule=ctx.rule,
        external=list(info.external_datasets), accuracy=result.accuracy,
        log_loss=result.log_loss, per_class=result.per_class)


# What a layer stores as `weight`/`bias` (and pruning's `_orig`/`_mask`, BatchNorm's statistics,
# which the rules need to tell BatchNorm apart): the parameters a size rule counts. Other
# buffers (gcc's input normalisation) are constants of the frontend, not parameters.
_LAYER_KEYS = ("weight", "bias", "weight_orig", "bias_orig", "weight_mask", "bias_mask",
               "running_mean", "running_var", "num_batches_tracked")


def layer_tensors(state: dict[str, Any]) -> dict[str, Any]:
    """The entries of a state dict that are layer parameters (see _LAYER_KEYS)."""
    return {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] in _LAYER_KEYS}


def model_card(result: ExportResult, doc: dict[str, Any], technique: str, summary: str,
               tolerance: float) -> str:
    """A short Markdown card: what the model is, how big, how good, how it was made."""
    size = result.size
    config = "\n".join(f"| {k} | {v} |" for k, v in sorted(doc["config"].items()))
    return f"""# {result.label}

Acoustic scene classifier exported by `asc-auto export` (trial {result.trial}, seed
{result.seed} of the retrain; the seed is fixed, not picked by its score).

- **Technique**: `{technique}`: {summary}
- **Precision**: {result.precision} (OpenVINO IR `model.xml`/`model.bin`; PyTorch weights in
  `deployed.safetensors` and `weights.safetensors`, loadable without pickle)
- **Input**: features of shape {doc['input_shape']} per clip, frontend `{doc['features']}`
- **Size** (counted from the IR's constants, rule `{doc['rule']}` of the study):
  {size.size_kb:.2f} KB of {size.limit_kb:.0f} KB; {size.weights:,} weight and {size.biases:,}
  bias values ({size.nonzero:,} non-zero), stored as {', '.join(size.element_types)}
  (BatchNorm is folded into the layers there, so its shifts count as biases; the meta.yaml
  gives the rule's own count of the trained model, the one the search sized it by)
- **Evaluate-fold accuracy**: {result.accuracy_text} (reloaded IR; ± its binomial standard
  error), log loss
  {result.log_loss:.4f}; retrain recorded {result.accuracy_retrain:.4f} (tolerance {tolerance})
- **How it was obtained**: the study's search picked the configuration on a validation split of
  the training fold; retrain trained it on the whole training fold for {doc['epochs']} epochs
  and scored it on the evaluate fold, which the search never saw.

| parameter | value |
|---|---|
{config}
"""
