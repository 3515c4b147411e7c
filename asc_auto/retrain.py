"""`asc-auto retrain`: the best feasible configuration, retrained on the whole training fold with
several seeds and scored on the evaluate fold (which the search never saw).

Each finished seed is saved under <home>/<study>/retrain/trial-<n>-<key>/seed-<s>/ (the trained
FP32 weights as safetensors and result.json, written atomically), so an interrupted retrain
resumes with the seeds still missing. <key> digests everything a seed depends on (the study's
uid, the features and so the dataset, the split, the space, the training settings, the
configuration and the epochs): another study of the same name, other data or other settings
never reuse a seed, and never overwrite one either. The summary is recorded in the study (user
attr "retrain"), where the dashboard and `asc-auto report` show it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from asc_auto import epoch_state
from asc_auto.compress.macs import rule_macs
from asc_auto.context import TrialContext, study_context
from asc_auto.cost import count_text
from asc_auto.data.tau import Clip
from asc_auto.io import atomic_dir
from asc_auto.ir import IR_FILE
from asc_auto.keys import digest, study_folder
from asc_auto.package import RESULT_JSON, write_deployed, write_weights
from asc_auto.procs import float_setting
from asc_auto.records import pick_trial
from asc_auto.schema import StudyRecord, TrialRecord
from asc_auto.series import runs_in_processes, series_progress
from asc_auto.space import space_digest
from asc_auto.stats import accuracy_text
from asc_auto.techniques.base import Candidate, EpochHook, StepHook, Technique, get_technique
from asc_auto.train import resolve_device


@dataclass(frozen=True)
class SeedResult:
    """One seed's scores on the evaluate fold."""

    seed: int
    accuracy: float
    accuracy_fp32: float
    log_loss: float
    per_class: tuple[float, ...]
    seconds: float
    # Accuracy per recording identifier (speaker, location) when the evaluate fold has at most
    # FEW_IDENTIFIERS: the fold's accuracy then depends on which sources it holds.
    per_identifier: dict[str, float] = field(default_factory=dict)
    # CPU threads and kernel level (torch's "AVX2", "AVX512", ...) it trained with; None: a seed
    # recorded before they were. Another count or CPU sums floats in another order, and a long
    # schedule carries that far (docs/GUIDE.md "Same seed, other threads").
    threads: int | None = None
    cpu: str | None = None
    # '1'/'0' per evaluate clip in the fold's order (right or wrong): the seeds' shares per clip
    # give the mean's SE from which clips the fold holds, and, against the baseline retrained on
    # the same clips, the difference's (stats.evaluate_se, paired_clip_se). "": recorded before.
    correct: str = ""
    # int8 with QAT epochs: the evaluate accuracy of the post-training-quantized network before
    # QAT fine-tuned it, so a user sees what QAT changed on their data (office16: the int8 pick's
    # QAT in train mode cost one seed 9 points, docs/BENCHMARKS.md). None: no QAT, or before.
    accuracy_ptq: float | None = None


# fsdd's evaluate fold is two speakers: one kd model classified 36.0 % of one's clips and 63.6 %
# of the other's; shown per identifier up to this many (TAU's fold has hundreds of locations).
FEW_IDENTIFIERS = 10


def correct_clips(probs: np.ndarray, labels: np.ndarray) -> str:
    """'1'/'0' per scored clip in order, right or wrong (`SeedResult.correct`)."""
    return "".join("1" if ok else "0" for ok in probs.argmax(axis=1) == labels)


def per_identifier(ctx: TrialContext, probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy on the clips of each identifier of the scored fold; {} above FEW_IDENTIFIERS."""
    ident = {c.filename: c.identifier for c in ctx.dataset.all_clips()}
    groups = np.array([ident[f] for f in ctx.val_files])
    names = sorted(set(groups.tolist()))
    if len(names) > FEW_IDENTIFIERS:
        return {}
    right = probs.argmax(axis=1) == y
    return {name: round(float(right[groups == name].mean()), 4) for name in names}


def _fold_counts(ctx: TrialContext, key: Callable[[Clip], str]) -> Counter[str]:
    """The scored fold's clips counted by `key` (their label, their identifier)."""
    of = {c.filename: key(c) for c in ctx.dataset.all_clips()}
    return Counter(of[f] for f in ctx.val_files)


def class_counts(ctx: TrialContext) -> tuple[int, ...]:
    """The scored fold's clips of each label, in the dataset's label order."""
    counts = _fold_counts(ctx, lambda c: c.label)
    return tuple(counts.get(label, 0) for label in ctx.dataset.labels)


def identifier_counts(ctx: TrialContext) -> dict[str, int]:
    """The scored fold's clips of each identifier (recording location, speaker), where
    `per_identifier` scores them apart (at most FEW_IDENTIFIERS); else {}."""
    counts = _fold_counts(ctx, lambda c: c.identifier)
    return dict(sorted(counts.items())) if len(counts) <= FEW_IDENTIFIERS else {}


@dataclass(frozen=True)
class RetrainResult:
    """All seeds of one retrain, with the trial they came from."""

    study: str
    trial: int
    labels: tuple[str, ...]
    seeds: tuple[SeedResult, ...]
    folder: Path
    # kd: the teacher the seeds distilled from (trained on all of fold1_train), scored on the
    # same evaluate fold: on fsdd at 10 epochs it reached 82.4 % while its students stayed
    # at 29.8 % (docs/BENCHMARKS.md), which one validation number per fold did not show.
    teacher_accuracy: float | None = None
    eval_clips: int | None = None  # the evaluate fold's clips (the accuracies' binomial SE)
    # digest of the evaluate fold's file names in order: two retrains' `correct` strings are
    # compared clip by clip only when theirs are the same
    eval_files: str | None = None
    # evaluate clips of each label, in `labels`' order: a class's accuracy is over these few
    class_clips: tuple[int, ...] = ()
    identifier_clips: dict[str, int] = field(default_factory=dict)  # as `per_identifier`

    @property
    def mean(self) -> float:
        return statistics.fmean(s.accuracy for s in self.seeds)

    @property
    def std(self) -> float:
        """The seeds' sample standard deviation (n - 1), as confirmation and the benchmarks
        compute it: the population form understated 3 seeds' spread by 18 % (office16 baseline
        89.4 / 89.4 / 86.4 %: shown ± 1.4 beside docs/BENCHMARKS.md's ± 1.7)."""
        return statistics.stdev(s.accuracy for s in self.seeds) if len(self.seeds) > 1 else 0.0

    def per_identifier_mean(self) -> dict[str, float]:
        """Mean over seeds of each identifier's accuracy; {} when not every seed has them."""
        if not self.seeds or not all(s.per_identifier for s in self.seeds):
            return {}
        names = self.seeds[0].per_identifier
        return {n: round(statistics.fmean(s.per_identifier.get(n, float("nan"))
                                          for s in self.seeds), 4) for n in names}

    def summary(self) -> dict[str, Any]:
        """What is recorded in the study."""
        n = len(self.seeds)
        return {
            "trial": self.trial, "seeds": n, "mean": round(self.mean, 4),
            "std": round(self.std, 4),
            "log_loss_mean": round(statistics.fmean(s.log_loss for s in self.seeds), 4),
            "per_class_mean": {lab: round(statistics.fmean(s.per_class[i] for s in self.seeds), 4)
                               for i, lab in enumerate(self.labels)},
            "per_identifier_mean": self.per_identifier_mean(),
            "per_seed": [dataclasses.asdict(s) for s in self.seeds],
            "folder": str(self.folder),
            **({} if self.eval_clips is None else {"eval_clips": self.eval_clips}),
            **({} if self.eval_files is None else {"eval_files": self.eval_files}),
            **({"class_clips": dict(zip(self.labels, self.class_clips, strict=True))}
               if self.class_clips else {}),
            **({} if self.teacher_accuracy is None
               else {"teacher_accuracy": round(self.teacher_accuracy, 4)}),
        }


def retrain(study: optuna.Study, seeds: int = 3, epochs: int | None = None,
            trial_number: int | None = None, home: Path = Path("studies"), device: str = "auto",
            progress: bool = True, status: Callable[[str], None] = print,
            on_seed: Callable[[SeedResult], None] | None = None,
            data: Path | None = None, jobs: int = 1, storage: str | None = None
            ) -> RetrainResult:
    """Retrain the picked configuration with `seeds` seeds; resume seeds already on disk.
    `data`: the study's dataset at another place (checked by content). `jobs` > 1: the missing
    seeds train side by side in that many processes (`storage`: the study's URL, which they
    open), each with its share of the CPU cores or its own GPU (`seeds_side_by_side`)."""
    trial = pick_trial(study, trial_number)
    technique = get_technique(str(StudyRecord.from_study(study).technique))
    ctx = study_context(study, technique, home, epochs, device, progress, status, data)
    config = dict(TrialRecord.from_trial(trial).config or {})
    key = retrain_key(study, technique.name, ctx, config)
    folder = retrain_folder(home, study.study_name, trial.number, key)
    teacher = technique.prepare(ctx).get("teacher_val_accuracy")  # kd: on the evaluate fold
    missing = [seed for seed in range(seeds) if load_seed(folder / f"seed-{seed}", key) is None]
    if jobs > 1 and len(missing) > 1:
        if storage is None:
            raise ValueError("retrain with jobs > 1 needs the study's storage URL")
        job = SeedJob(study.study_name, storage, trial.number, epochs, home, device, data, key,
                      folder)
        seeds_side_by_side(job, missing, jobs, status)  # on disk now: the loop below loads them
    done: list[SeedResult] = []
    todo = sum(load_seed(folder / f"seed-{seed}", key) is None for seed in range(seeds))
    # Seeds done of all, and the current seed's training steps: each with its time remaining.
    with series_progress(progress, "seeds", seeds, todo, ctx.train_cfg.epochs, "seed",
                         "--seeds or --epochs", "evaluate", status) as series:
        for seed in range(seeds):
            seed_dir = folder / f"seed-{seed}"
            cached = load_seed(seed_dir, key)
            if cached is None:
                length = count_text(ctx.train_cfg.epochs, "epoch")
                status(f"retraining trial {trial.number} with seed {seed} "
                       f"({len(ctx.train_files)} clips, {length} = "
                       f"{len(ctx.train_files) * ctx.train_cfg.epochs:,} clips seen)")
                hooks = series.start(f"seed {seed}", seed, technique, config)
                cached = run_seed(technique, ctx, config, seed, seed_dir, key,
                                  on_epoch=hooks.on_epoch, on_step=hooks.on_step,
                                  on_built=hooks.on_built)
            done.append(cached)
            series.finished(f"seed {seed}: evaluate accuracy "
                            f"{accuracy_text(cached.accuracy, len(ctx.val_files))}")
            if on_seed is not None:
                on_seed(cached)
    result = RetrainResult(study.study_name, trial.number, ctx.dataset.labels, tuple(done), folder,
                           teacher_accuracy=None if teacher is None else float(teacher),
                           eval_clips=len(ctx.val_files), eval_files=files_digest(ctx.val_files),
                           class_clips=class_counts(ctx), identifier_clips=identifier_counts(ctx))
    summary = result.summary()
    earlier = StudyRecord.from_study(study).retrains or {}
    StudyRecord(retrain=summary, retrains={**earlier, str(trial.number): summary}).write(study)
    return result


@dataclass(frozen=True)
class SeedJob:
    """What a retrain process needs to rebuild the retrain's context from the storage and the
    cache (not the context itself: its tensors are the whole dataset, too large to send)."""

    study: str
    storage: str
    trial: int
    epochs: int | None
    home: Path
    device: str
    data: Path | None
    key: str  # the parent's: a process that would train under another refuses
    folder: Path


def seeds_side_by_side(job: SeedJob, seeds: list[int], jobs: int,
                       status: Callable[[str], None] = print) -> None:
    """Train `seeds` in up to `jobs` spawned processes (`series.runs_in_processes`), each
    with its share of the cores and, on CUDA, the GPUs round robin; each seed is on disk as it
    finishes."""
    runs_in_processes(
        job, seeds, jobs, _seed_init, _seed_run,
        f"retraining trial {job.trial} with seeds {', '.join(map(str, seeds))}",
        lambda seed, r: f"retrained trial {job.trial} seed {seed}: evaluate accuracy "
                        f"{r.accuracy:.4f}", status)


_SEEDING: dict[str, Any] = {}  # in a retrain process: its technique, context and configuration


def _seed_init(job: SeedJob, threads: int, slots: Any) -> None:
    """A retrain process's start: its threads, its device (slot i), the study's context."""
    import torch

    from asc_auto.procs import take_slot
    from asc_auto.storage import open_storage
    from asc_auto.train import worker_device

    torch.set_num_threads(threads)
    index = take_slot(slots)
    study = optuna.load_study(study_name=job.study, storage=open_storage(job.storage))
    technique = get_technique(str(StudyRecord.from_study(study).technique))
    ctx = study_context(study, technique, job.home, job.epochs,
                        worker_device(job.device, index), False, lambda message: None, job.data)
    config = dict(TrialRecord.from_trial(pick_trial(study, job.trial)).config or {})
    if retrain_key(study, technique.name, ctx, config) != job.key:
        raise RuntimeError(f"retrain process {index}: the study {job.study} changed under the "
                           "retrain (its key differs); run retrain again")
    technique.prepare(ctx)  # kd: the teacher, from the cache the parent filled
    _SEEDING.update(technique=technique, ctx=ctx, config=config, job=job)


def _seed_run(seed: int) -> SeedResult:
    job: SeedJob = _SEEDING["job"]
    return run_seed(_SEEDING["technique"], _SEEDING["ctx"], _SEEDING["config"], seed,
                     job.folder / f"seed-{seed}", job.key)


def files_digest(files: Sequence[str]) -> str:
    """Short digest of an evaluate fold's clip names in order (`RetrainResult.eval_files`)."""
    return digest(list(files))[:16]


def retrain_folder(home: Path, study: str, trial: int, key: str) -> Path:
    """Where a trial's retrained seeds live (seed-<s>/ inside), for retrain and for
    teacher-logits, whose model on all of fold1_train is the retrain seed."""
    return study_folder(home, study) / "retrain" / f"trial-{trial}-{key[:12]}"


def study_uid(study: optuna.Study) -> str:
    """The study's uid (set by search; given to an older study on first use)."""
    uid = StudyRecord.from_study(study).uid
    if not uid:
        uid = uuid.uuid4().hex
        StudyRecord(uid=uid).write(study)
    return str(uid)


def retrain_key(study: optuna.Study, technique: str, ctx: TrialContext,
                config: dict[str, Any]) -> str:
    """Digest of everything a retrained seed depends on; the seed itself is the folder name."""
    train = {k: v for k, v in dataclasses.asdict(ctx.train_cfg).items()
             if k not in ("seed", "device")}
    sources = ctx.sources.digests()  # sha256s of --init-from/--teacher files; {}: none
    # A technique whose training changed (lt: one training where nothing is pruned) says so in
    # `fit_version`; 0 leaves the keys of seeds made before it valid.
    version = get_technique(technique).fit_version
    return digest({"study": study_uid(study), "technique": technique,
                   "split": ctx.split_digest(), "space": space_digest(ctx.space),
                   "train": train, "rule": ctx.rule, "config": config, "format": 2,
                   **({"sources": sources} if sources else {}),
                   **({"fit_version": version} if version else {})})


def run_seed(technique: Technique, ctx: TrialContext, config: dict[str, Any], seed: int,
              seed_dir: Path, key: str, on_epoch: EpochHook | None = None,
              on_step: StepHook | None = None,
              on_built: Callable[[Candidate], None] | None = None) -> SeedResult:
    """Train `config` with `seed` on `ctx`'s training clips, score its validation clips, save
    the seed under `seed_dir` (atomically; resumable per epoch): a retrain seed, or a fold
    model of `teacher-logits` (crossfit.py)."""
    import torch

    ctx.train_cfg = dataclasses.replace(ctx.train_cfg, seed=seed)
    torch.manual_seed(seed)
    cand = technique.build(config, ctx)
    technique.initialise(cand, ctx)  # the study's --init-from, as its trials started
    if on_built is not None:
        on_built(cand)
    # A stop mid-seed (Ctrl-C, a killed process, a session's end) resumes at its last epoch.
    scope = f"retrain {key} seed {seed}"
    with epoch_state.resumable(epoch_state.scope_folder(ctx.cache_root, scope), scope):
        return _train_seed(technique, ctx, config, seed, seed_dir, key, cand, on_epoch, on_step)


def _train_seed(technique: Technique, ctx: TrialContext, config: dict[str, Any], seed: int,
                seed_dir: Path, key: str, cand: Candidate, on_epoch: EpochHook | None,
                on_step: StepHook | None) -> SeedResult:
    outcome = technique.fit(cand, config, ctx, on_epoch=on_epoch, on_step=on_step)
    device = "cpu" if cand.precision.value == "int8" else resolve_device(ctx.train_cfg.device)
    scores = technique.evaluate(outcome.deployed, *ctx.val_xy, ctx, device=device)
    labels = ctx.val_xy[1].cpu().numpy()
    # Accuracies unrounded: a mean of seeds rounded to 4 decimals can round the other way when
    # shown (56/66 on three seeds: 0.8485 each, shown 84.9 % for 84.8 %).
    result = SeedResult(seed, scores.accuracy, outcome.accuracy_fp32,
                        round(scores.log_loss, 4), tuple(round(p, 4) for p in scores.per_class),
                        round(outcome.train.seconds_total, 2),
                        per_identifier(ctx, scores.probs, labels), **float_setting(),
                        correct=correct_clips(scores.probs, labels),
                        accuracy_ptq=outcome.info.get("accuracy_ptq"))
    example = ctx.val_xy[0][:1].float()
    # MACs of what was trained (a structured ticket has fewer than the trial's dense count), on
    # the CPU: the model may sit on the training device; export checks them against the rule.
    macs = rule_macs(copy.deepcopy(cand.model).cpu(), ctx.rule, ctx.example_input,
                     technique.feature_config(ctx.space))
    with atomic_dir(seed_dir) as tmp:
        write_weights(cand.model, tmp)
        write_deployed(outcome.deployed, cand.precision, example, tmp)
        (tmp / RESULT_JSON).write_text(json.dumps({
            "key": key, "config": config, "epochs": ctx.train_cfg.epochs,
            "precision": cand.precision.value, "macs": macs,
            "technique": technique.name, "labels": list(ctx.dataset.labels),
            "features": technique.feature_config(ctx.space).key_dict(),
            "input_shape": list(example.shape[1:]), "result": dataclasses.asdict(result)},
            indent=2))
    return result


def load_seed(seed_dir: Path, key: str) -> SeedResult | None:
    """A finished seed made under the same key, or None."""
    try:
        doc = json.loads((seed_dir / RESULT_JSON).read_text())
        if doc.get("key") != key or not (seed_dir / IR_FILE).exists():
            return None
        r = doc["result"]
        return SeedResult(r["seed"], r["accuracy"], r["accuracy_fp32"], r["log_loss"],
                          tuple(r["per_class"]), r["seconds"], dict(r.get("per_identifier", {})),
                          r.get("threads"), r.get("cpu"), str(r.get("correct") or ""),
                          r.get("accuracy_ptq"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
