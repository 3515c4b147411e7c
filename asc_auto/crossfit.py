"""`asc-auto teacher-logits`: a study's configuration as a teacher for another search, with an
honest accuracy: trained once per grouped fold of fold1_train, each copy scoring the clips it
did not train on (out of fold), and once on all of fold1_train (the retrain seed).

Why not just `predict --logits` on the training clips: a search distilling from a model's
outputs on clips it trained on reads the teacher's validation accuracy as 1.000 (those clips
trained it), so it cannot warn when the teacher is no better than its students. The file written
here carries both: `logits` (the targets, by default the model trained on all of fold1_train)
and `heldout_logits` (the out-of-fold outputs), and a search measures the teacher on the latter.

Why the targets default to the all-clips model and not to the out-of-fold outputs, which are
softer (median top probability on office16's 154 training clips at T 1 / 4: 0.9987 / 0.676
against 0.99998 / 0.842): distilled into office16's int8 network (40 epochs, weight 0.5, T 4,
INT8 evaluate, seeds 0-2, docs/BENCHMARKS.md), the all-clips model's outputs gave 86.9 +- 1.3 %
and the out-of-fold ones 81.3 +- 2.7 % (alone: 82.3 +- 1.8 %): the teacher trained on every
clip knows more than any fold model, and its outputs on the clips it got wrong out of fold are
right. `targets="oof"` writes the out-of-fold outputs as the targets instead.

What is left: a student's validation clips in a search were seen by the teacher (it trained on
all of fold1_train), so the students' validation scores may be optimistic, as with any teacher
trained on those clips; the evaluate fold, which nothing here trains on, stays honest. Each
model is saved as a retrain seed is (resumable per epoch, reused when nothing it depends on
changed): the fold models under <home>/<study>/teacher-logits/, the all-clips model as the
trial's retrain seed, which `retrain` then reuses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from asc_auto.context import TrialContext, study_context
from asc_auto.cv import fold_contexts
from asc_auto.errors import UsageError
from asc_auto.ir import IR_FILE, IrModel
from asc_auto.keys import digest, study_folder
from asc_auto.records import pick_trial
from asc_auto.retrain import SeedResult, load_seed, retrain_folder, retrain_key, run_seed
from asc_auto.schema import StudyRecord, TrialRecord
from asc_auto.series import runs_in_processes, series_progress
from asc_auto.stats import accuracy_text, binomial_se
from asc_auto.teacher_logits import write_teacher_logits
from asc_auto.techniques.base import Technique, get_technique
from asc_auto.train import epochs_to_see

FOLDER = "teacher-logits"


@dataclass(frozen=True)
class FoldResult:
    """One fold model: its training and held-out clips and its accuracy on the held-out ones."""

    fold: int
    n_train: int
    n_heldout: int
    epochs: int
    accuracy: float  # of its deployed model (IR) on the held-out clips
    seconds: float  # of training (0 when it was on disk already)
    reused: bool


@dataclass(frozen=True)
class CrossfitResult:
    """What `teacher_logits` wrote and how good the teacher is, out of fold and on evaluate."""

    study: str
    trial: int
    folds: tuple[FoldResult, ...]
    oof_accuracy: float  # every fold1_train clip scored by the model that did not train on it
    oof_clips: int
    eval_accuracy: float | None  # of the targets written for the evaluate fold's clips
    eval_clips: int
    out: Path
    folder: Path
    targets: str = "all"  # "all": the all-clips model's outputs; "oof": the out-of-fold ones

    @property
    def oof_se(self) -> float:
        return binomial_se(self.oof_accuracy, self.oof_clips)

    @property
    def eval_se(self) -> float:
        return binomial_se(self.eval_accuracy or 0.0, self.eval_clips)


def _ir_logits(folder: Path, x: Any) -> np.ndarray:
    """The deployed model's logits (its IR on the CPU, as `predict` runs it)."""
    return IrModel(folder / IR_FILE).logits(x.float().numpy())


@dataclass
class FoldPlan:
    """What the fold models are: the technique, the retrain context (all of fold1_train, the
    evaluate fold), the configuration, one context and key per fold, their folder."""

    technique: Technique
    ctx: TrialContext
    trial: int
    config: dict[str, Any]
    contexts: tuple[TrialContext, ...]
    keys: tuple[str, ...]
    folder: Path


def fold_plan(study: optuna.Study, folds: int, seed: int, trial_number: int | None,
              home: Path, epochs: int | None, device: str, progress: bool,
              status: Callable[[str], None], data: Path | None) -> FoldPlan:
    """The study's fold models, as the parent and each side-by-side process rebuild them."""
    if folds < 2:
        raise UsageError(f"--folds {folds}: out-of-fold outputs need at least 2 folds")
    trial = pick_trial(study, trial_number)
    record = StudyRecord.from_study(study)
    technique = get_technique(str(record.technique))
    ctx = study_context(study, technique, home, epochs, device, progress, status, data)
    config = dict(TrialRecord.from_trial(trial).config or {})
    # Each fold model sees the clips a retrain seed does (the search's trainings', or `epochs`
    # of its own clips; a study made before clips_seen was recorded: the retrain's epochs).
    contexts = fold_contexts(ctx, ctx.dataset.train, folds, seed)
    seen = record.clips_seen
    if epochs is None and seen:
        contexts = tuple(dataclasses.replace(f, train_cfg=dataclasses.replace(
            f.train_cfg, epochs=epochs_to_see(seen, len(f.train_files)))) for f in contexts)
    keys = tuple(retrain_key(study, technique.name, fold_ctx, config) for fold_ctx in contexts)
    folder = (study_folder(home, study.study_name) / FOLDER
              / f"trial-{trial.number}-{digest([*keys, seed])[:12]}")
    return FoldPlan(technique, ctx, trial.number, config, contexts, keys, folder)


def teacher_logits(study: optuna.Study, out: Path, folds: int = 5, seed: int = 0,
                   trial_number: int | None = None, home: Path = Path("studies"),
                   epochs: int | None = None, device: str = "auto", progress: bool = True,
                   status: Callable[[str], None] = print, data: Path | None = None,
                   on_fold: Callable[[FoldResult], None] | None = None, jobs: int = 1,
                   storage: str | None = None, targets: str = "all") -> CrossfitResult:
    """Train the picked (or `trial_number`) configuration on each of `folds` grouped folds of
    fold1_train, score the clips each left out, and write `out` in the --teacher-logits format:
    every training clip's out-of-fold logits as `heldout_logits`, and as `logits` (the targets)
    the outputs of the model trained on all of fold1_train (`targets` "all", the retrain seed
    `seed`, trained here if missing) or the out-of-fold ones ("oof"; the evaluate clips then
    get the fold models' mean).
    `jobs` > 1: the missing fold models train side by side in that many processes (`storage`:
    the study's URL, which they open), each with its share of the cores or its own GPU."""
    if targets not in ("all", "oof"):
        raise UsageError(f"--targets {targets}: choose all or oof")
    plan = fold_plan(study, folds, seed, trial_number, home, epochs, device, progress, status,
                     data)
    technique, ctx, config, contexts, keys, folder = (plan.technique, plan.ctx, plan.config,
                                                      plan.contexts, plan.keys, plan.folder)
    trial_no = plan.trial
    missing = [i for i, k in enumerate(keys) if load_seed(folder / f"fold-{i}", k) is None]
    trained_now: dict[int, float] = {}
    if jobs > 1 and len(missing) > 1:
        if storage is None:
            raise ValueError("teacher-logits with jobs > 1 needs the study's storage URL")
        job = FoldJob(study.study_name, storage, trial_no, folds, seed, epochs, home, device,
                      data, keys)
        trained_now = folds_side_by_side(job, missing, jobs, status)
    labels = ctx.dataset.labels
    names: dict[str, np.ndarray] = {}
    eval_logits: list[np.ndarray] = []
    results: list[FoldResult] = []
    full_key = retrain_key(study, technique.name, ctx, config)
    full_dir = retrain_folder(home, study.study_name, trial_no, full_key) / f"seed-{seed}"
    full = targets == "all"
    todo = len(missing) - len(trained_now) + (full and load_seed(full_dir, full_key) is None)
    with series_progress(progress, "models", folds + full, todo, ctx.train_cfg.epochs,
                         "model", "--folds or --epochs", "held-out", status) as series:
        for i, (fold_ctx, key) in enumerate(zip(contexts, keys, strict=True)):
            fold_dir = folder / f"fold-{i}"
            cached = load_seed(fold_dir, key)
            if cached is None:
                status(f"teacher-logits: trial {trial_no}, fold {i + 1}/{folds}: training on "
                       f"{len(fold_ctx.train_files)} clips ({fold_ctx.train_cfg.epochs} epochs), "
                       f"scoring the {len(fold_ctx.val_files)} left out")
                technique.prepare(fold_ctx)  # kd: a teacher of its own, on this fold's clips
                hooks = series.start(f"fold {i + 1}", i + 1, technique, config)
                cached = run_seed(technique, fold_ctx, config, seed, fold_dir, key,
                                  on_epoch=hooks.on_epoch, on_step=hooks.on_step,
                                  on_built=hooks.on_built)
                took, reused = cached.seconds, False
            else:
                took, reused = trained_now.get(i, 0.0), i not in trained_now
            held_x, held_y = fold_ctx.val_xy
            logits = _ir_logits(fold_dir, held_x)
            names.update(zip(fold_ctx.val_files, logits, strict=True))
            if ctx.val_files and not full:
                eval_logits.append(_ir_logits(fold_dir, ctx.val_xy[0]))
            acc = float(np.mean(logits.argmax(axis=1) == held_y.numpy()))
            series.finished(f"fold {i + 1} held out: "
                            f"{accuracy_text(acc, len(fold_ctx.val_files))}")
            result = FoldResult(i, len(fold_ctx.train_files), len(fold_ctx.val_files),
                                fold_ctx.train_cfg.epochs, acc, took, reused)
            results.append(result)
            if on_fold is not None:
                on_fold(result)
        if full and load_seed(full_dir, full_key) is None:
            status(f"teacher-logits: trial {trial_no}, the targets' model: training on all "
                   f"{len(ctx.train_files)} clips ({ctx.train_cfg.epochs} epochs; it is the "
                   f"trial's retrain seed {seed})")
            technique.prepare(ctx)
            hooks = series.start("all clips", folds + 1, technique, config)
            run_seed(technique, ctx, config, seed, full_dir, full_key, on_epoch=hooks.on_epoch,
                     on_step=hooks.on_step, on_built=hooks.on_built)
        if full:
            series.finished("all clips")
    train_files = list(ctx.train_files)  # fold1_train, in the dataset's order
    oof = np.stack([names[f] for f in train_files])
    oof_acc = float(np.mean(oof.argmax(axis=1) == ctx.train_xy[1].numpy()))
    if full:
        train_rows = _ir_logits(full_dir, ctx.train_xy[0])
        eval_rows = (_ir_logits(full_dir, ctx.val_xy[0]) if ctx.val_files
                     else np.zeros((0, len(labels))))
    else:
        train_rows = oof
        eval_rows = (np.mean(eval_logits, axis=0) if eval_logits
                     else np.zeros((0, len(labels))))
    eval_acc = (float(np.mean(eval_rows.argmax(axis=1) == ctx.val_xy[1].numpy()))
                if ctx.val_files else None)
    write_teacher_logits(out, [*train_files, *ctx.val_files],
                         np.concatenate([train_rows, eval_rows]), labels=labels,
                         heldout=(train_files, oof))
    return CrossfitResult(study.study_name, trial_no, tuple(results), oof_acc,
                          len(train_files), eval_acc, len(ctx.val_files), Path(out), folder,
                          targets)


@dataclass(frozen=True)
class FoldJob:
    """What a fold-model process needs to rebuild the plan from the storage and the cache."""

    study: str
    storage: str
    trial: int
    folds: int
    seed: int
    epochs: int | None
    home: Path
    device: str
    data: Path | None
    keys: tuple[str, ...]  # the parent's: a process that would train under others refuses


def folds_side_by_side(job: FoldJob, folds: list[int], jobs: int,
                       status: Callable[[str], None] = print) -> dict[int, float]:
    """Train fold models `folds` in up to `jobs` spawned processes, as retrain's seeds
    (`series.runs_in_processes`); their training seconds."""
    results = runs_in_processes(
        job, folds, jobs, _fold_init, _fold_run,
        f"training fold models {', '.join(str(i + 1) for i in folds)}",
        lambda i, r: f"fold model {i + 1}: held-out accuracy {r.accuracy:.4f}", status)
    return {i: r.seconds for i, r in results.items()}


_FOLDING: dict[str, Any] = {}  # in a fold-model process: its plan


def _fold_init(job: FoldJob, threads: int, slots: Any) -> None:
    import torch

    from asc_auto.procs import take_slot
    from asc_auto.storage import open_storage
    from asc_auto.train import worker_device

    torch.set_num_threads(threads)
    index = take_slot(slots)
    study = optuna.load_study(study_name=job.study, storage=open_storage(job.storage))
    plan = fold_plan(study, job.folds, job.seed, job.trial, job.home, job.epochs,
                     worker_device(job.device, index), False, lambda message: None, job.data)
    if plan.keys != job.keys:
        raise RuntimeError(f"fold-model process {index}: the study {job.study} changed under "
                           "teacher-logits (its keys differ); run it again")
    _FOLDING.update(plan=plan, seed=job.seed)


def _fold_run(i: int) -> SeedResult:
    plan: FoldPlan = _FOLDING["plan"]
    plan.technique.prepare(plan.contexts[i])  # kd: a teacher of its own, on this fold's clips
    return run_seed(plan.technique, plan.contexts[i], plan.config, _FOLDING["seed"],
                    plan.folder / f"fold-{i}", plan.keys[i])
