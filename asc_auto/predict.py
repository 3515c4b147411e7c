"""`asc-auto predict`: classify WAV files with an exported model (its OpenVINO IR on the CPU).

Features are computed per file with the frontend the model was trained on (recorded in the
package's export.json), rounded through float16 as the feature cache stores them. A file that
cannot be read or has the wrong channel count gets its own error; the other files go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asc_auto.errors import AscError, DataError
from asc_auto.features.config import frontend_config_from_dict
from asc_auto.features.frontends import load_waveform, make_frontend
from asc_auto.io import write_text_atomic
from asc_auto.ir import IR_FILE, IrModel, softmax
from asc_auto.package import EXPORT_JSON, read_export
from asc_auto.teacher_logits import write_teacher_logits


@dataclass(frozen=True)
class Prediction:
    """One file's scene label and class probabilities, or the reason it has none."""

    file: Path
    name: str  # the filename column of the output CSV
    label: str | None
    scores: tuple[float, ...]
    error: str | None = None
    logits: tuple[float, ...] = ()  # the model's scores before softmax (`--logits`)


# What a user does about an unreadable file among those classified (the dataset's fix, "remove
# its rows from the CSV files", has no CSV here).
PREDICT_FIX = "re-copy this file, or leave it out (the other files are classified)"


def wav_files(data: Path) -> list[Path]:
    """Every .wav under a folder (a TAU layout's audio/ folder included), sorted."""
    files = sorted(p for p in Path(data).rglob("*") if p.suffix.lower() == ".wav")
    if not files:
        raise AscError(f"{data}: no .wav files found; fix: pass a folder of WAV files")
    return files


def predict(model_dir: Path, files: list[Path], root: Path | None = None) -> list[Prediction]:
    """Classify each file; names in the CSV are relative to `root` when given."""
    doc = read_export(model_dir)
    cfg = frontend_config_from_dict(doc["features"], Path(model_dir) / EXPORT_JSON)
    frontend = make_frontend(cfg).eval()
    model = IrModel(Path(model_dir) / IR_FILE)
    labels = tuple(doc["labels"])
    shape = tuple(doc["input_shape"])
    out: list[Prediction] = []
    for file in files:
        name = str(file.relative_to(root)) if root is not None else file.name
        try:
            with torch.inference_mode():
                feats = frontend(load_waveform(file, cfg)[None]).to(torch.float16).float()
            if tuple(feats.shape[1:]) != shape:
                raise ValueError(f"features of shape {tuple(feats.shape[1:])}, model takes "
                                 f"{shape}")
            if not torch.isfinite(feats).all():
                raise ValueError("audio gives NaN or infinite features")
            logits = model.logits(feats.numpy())[0]
        except DataError as err:  # the file is named beside it; its fix here is not a CSV's
            out.append(Prediction(file, name, None, (), f"{err.problem}; fix: {PREDICT_FIX}"))
            continue
        except Exception as err:  # one bad file must not stop the others
            out.append(Prediction(file, name, None, (), f"{type(err).__name__}: {err}"))
            continue
        probs = softmax(logits)
        out.append(Prediction(file, name, labels[int(np.argmax(probs))],
                              tuple(float(p) for p in probs), logits=tuple(map(float, logits))))
    return out


def write_logits(predictions: list[Prediction], labels: tuple[str, ...], out: Path) -> int:
    """Write the classified files' logits as stored teacher outputs (teacher_logits.py), so an
    exported model (the baseline CNN's, say) teaches another search (`--teacher-logits`);
    returns how many rows. Names are as the output CSV writes them: run on the dataset's own
    folder (`--data DIR`) they are the clip names of its CSVs (`audio/x.wav`)."""
    good = [p for p in predictions if p.error is None]
    if not good:
        raise AscError(f"{out}: no file was classified, so there are no outputs to write")
    write_teacher_logits(out, [p.name for p in good], np.array([p.logits for p in good]),
                         labels=labels)
    return len(good)


def output_csv(predictions: list[Prediction], labels: tuple[str, ...]) -> str:
    """DCASE2020 Task 1 output: tab-separated filename, scene_label, one score column per class
    (files that failed are left out)."""
    lines = ["\t".join(("filename", "scene_label", *labels))]
    for p in predictions:
        if p.error is None:
            lines.append("\t".join((p.name, str(p.label), *(f"{s:.6f}" for s in p.scores))))
    return "\n".join(lines) + "\n"


def write_output_csv(predictions: list[Prediction], labels: tuple[str, ...], out: Path) -> Path:
    """Write the output CSV atomically."""
    write_text_atomic(out, output_csv(predictions, labels))
    return out
