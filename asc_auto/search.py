"""The Optuna driver: one study per technique, validation accuracy as the single objective and the
size limit as a hard constraint.

Optuna 5 refuses pruners on multi-objective studies, so accuracy is the objective and size is a
constraint (`Trial.set_constraint`, which TPE reads): a configuration over the limit is sized
before training, recorded as infeasible (PRUNED without a value, constraint > 0: TPE learns from
it, the dashboard's value plots leave it out; see dashboard.py) and never trained. The
accuracy/size trade-off is read off the trials afterwards (report.pareto_front). A rule with a
MACs limit (dcase2022-2024, or --max-mmacs) adds a second constraint sized the same way; a
trial is feasible when both are met. A study is resumed when it exists: its split, size rule,
budget and MACs limit are fixed at creation and checked on every resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from asc_auto import confirm, design, epoch_state, fold_resume, portfolio, pruning, stop
from asc_auto.compress.macs import rule_macs
from asc_auto.compress.size import SizeReport
from asc_auto.context import ContextSettings, build_context
from asc_auto.cost import EpochClock, SearchPlan, count_text
from asc_auto.cv import CvScore, few_sources, fold_contexts, folds_for
from asc_auto.dashboard import name_objective, record_constraints
from asc_auto.data.demo import ensure_demo_dataset
from asc_auto.data.tau import TauDataset, dataset_fingerprint
from asc_auto.errors import AscError, UsageError
from asc_auto.keys import check_study_name, digest
from asc_auto.records import feasible_trials, pick_trial
from asc_auto.schema import (
    CONFIRM_FOLDS,
    DESIGN,
    MACS_CONSTRAINT,
    PAPER,
    PORTFOLIO,
    SEARCH,
    SIZE_CONSTRAINT,
    SIZING,
    TRAINED,
    StudyRecord,
    TrialRecord,
)
from asc_auto.search_progress import (
    SearchProgress,
    TrialBudget,
    fold_text,
    run_end_text,
    trial_label,
    trial_line,
)
from asc_auto.seeds import trial_seed
from asc_auto.shared_budget import SharedBudget
from asc_auto.space import SearchSpace, default_space_file, space_digest
from asc_auto.storage import (
    default_storage,
    fail_dead_trials,
    mark_worker,
    open_storage,
    redacted,
    storage_lock,
)
from asc_auto.study_resume import (
    RESUME_KEYS,
    check_resume,
    legacy_data,
    lost_design_rows,
    paper_pending,
)
from asc_auto.techniques.base import (
    Candidate,
    EpochHook,
    Outcome,
    StepHook,
    Technique,
    TrialContext,
    get_technique,
)
from asc_auto.train import TrainConfig, epochs_to_see
from asc_auto.transfer import feature_notes, resolve_sources
from asc_auto.verbosity import optuna_level

DEFAULT_HOME = Path("studies")


@dataclass(frozen=True)
class SearchOptions:
    """Everything `asc-auto search` can be told; defaults are the CLI's."""

    technique: str
    data: Path | None = None  # None: the built-in demo dataset (generated on first use)
    trials: int | None = 10
    timeout: float | None = None  # seconds
    budget_kb: float | None = None  # None: the rule's own limit
    max_mmacs: float | None = None  # MACs limit in millions; None: the rule's own (or none)
    rule: str = "dcase2020"
    storage: str | None = None
    study: str | None = None
    space: Path | None = None
    seed: int = 0
    epochs: int | None = None  # overrides the space file's train.epochs
    home: Path = DEFAULT_HOME
    val_fraction: float = 0.2
    device: str = "auto"
    progress: bool = True
    overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # table values
    retry_failed: int = 0  # trials of dead workers enqueued again up to this many times
    cv: int | None = None  # folds; None: cv.folds_for decides (small data), 0: off
    confirm_top: int | None = None  # after the trials, the best few configurations ...
    confirm_seeds: int | None = None  # ... scored again with this many fresh seeds (0: none;
    # None: confirm.default_top and default_seeds, read when the search starts)
    confirm_max_seeds: int | None = None  # the best two, while close, up to this many (None:
    # confirm.default_max_seeds)
    init_from: Path | None = None  # --init-from: every trial's model starts from it (transfer.py)
    teachers: tuple[Path, ...] = ()  # --teacher: kd teacher checkpoints (several: an ensemble)
    teacher_logits: tuple[Path, ...] = ()  # --teacher-logits: stored teacher outputs
    initial_design: str = "auto"  # design.KINDS: start-up trials covering categorical choices
    pruner: str = "hyperband"  # pruning.KINDS: which trials stop early
    run: str | None = None  # a `--jobs` run's id: its workers draw `trials` from one budget
    workers: int = 1  # ... and how many they are (what the cost line divides by)


@dataclass
class SearchSetup:
    """What a search needs before its first trial: built once, shared by every trial."""

    technique: Technique
    space: SearchSpace
    dataset: TauDataset
    context: TrialContext
    demo: bool
    folds: tuple[TrialContext, ...] = ()  # cross-validation: one context per fold, else none
    confirm_top: int = 0  # finish_search confirms this many top configurations ...
    confirm_seeds: int = 0  # ... with this many fresh seeds each
    confirm_max_seeds: int = 0  # ... the best two, while close, up to this many (confirm.undecided)
    stop_hopeless: bool = False  # stop a trial between folds once it cannot enter keep_top

    @property
    def keep_top(self) -> int:
        """How many of the best trials can still become the pick: confirmation's few, or the
        best alone when nothing is confirmed (pruning.hopeless stops a trial outside them)."""
        return max(1, self.confirm_top) if self.confirm_seeds else 1


def prepare_search(opts: SearchOptions, status: Callable[[str], None] = print,
                   split_seed: int | None = None) -> SearchSetup:
    """Load data, space and features; split train/validation (grouped by recording)."""
    technique = get_technique(opts.technique)
    demo = opts.data is None
    root = ensure_demo_dataset(opts.home / "data") if demo else Path(opts.data)
    ctx = build_context(technique, ContextSettings(
        data=root, space_file=opts.space or default_space_file(technique.name), rule=opts.rule,
        budget_kb=opts.budget_kb, max_mmacs=opts.max_mmacs, home=opts.home, demo=demo,
        overrides=opts.overrides,
        epochs=opts.epochs, seed=opts.seed, device=opts.device, progress=opts.progress,
        val_fraction=opts.val_fraction, split_seed=opts.seed if split_seed is None else split_seed,
        sources=resolve_sources(technique.name, technique.shape_params,
                                technique.teacher_files, opts.init_from, opts.teachers,
                                opts.teacher_logits),
    ), status)
    if ctx.sources.init_from is not None:  # a checkpoint that does not fit stops here, once
        technique.initialise(technique.build(dict(ctx.space.paper), ctx), ctx)
    for note in feature_notes(ctx.sources, technique.feature_config(ctx.space).key_dict()):
        status(note)
    return SearchSetup(technique, ctx.space, ctx.dataset, ctx, demo)




class _DropInterruptTraceback(logging.Filter):
    """Optuna logs a KeyboardInterrupt inside a trial with its traceback (and a second line,
    "failed with value None") before re-raising it; the CLI says 'interrupted' in one line
    instead. Other failures keep their traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.follow_up: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[0] if record.exc_info else None
        if exc is not None and issubclass(exc, KeyboardInterrupt):
            self.follow_up = record.getMessage().split(" failed ", 1)[0] + " failed with value"
            return False
        if self.follow_up and record.getMessage().startswith(self.follow_up):
            self.follow_up = None
            return False
        return True


_INTERRUPT_FILTER = _DropInterruptTraceback()


class TrialSeededTPE(optuna.samplers.TPESampler):
    """TPE whose random streams are re-seeded from (seed, trial number) before every trial.

    Trial numbers are unique across all workers of a study, so workers started together with the
    same --seed draw different configurations (one shared seed gave 5 distinct configurations
    out of 9 trials from 3 workers), while a study stays reproducible trial by trial. With
    `constant_liar` (Optuna's default) running trials count as pessimistic results, so TPE does
    not propose what another worker is training.
    """

    def __init__(self, seed: int, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self._base_seed = seed

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        state = np.random.SeedSequence([self._base_seed, trial.number]).generate_state(2)
        self._rng.rng.seed(int(state[0]))  # TPE's own draws
        self._random_sampler._rng.rng.seed(int(state[1]))  # the start-up trials' random draws
        super().before_trial(study, trial)


def run_search(opts: SearchOptions, status: Callable[[str], None] = print,
               finish: bool = True, score_many: confirm.ScoreMany | None = None
               ) -> optuna.Study:
    """Run (or resume) the study of one technique and return it.

    Safe with other workers on the same study (processes of `--jobs`, other machines): study
    creation, the resume checks and the paper trial's enqueue run under `storage_lock`; the
    caches they share are built once under their own locks. `finish` runs the technique's
    after-search step (e.g. the gcc ablation); `--jobs` runs it once, after all its workers.
    `score_many`: the confirmation's runs side by side (`search --trials 0 --jobs N`).
    """
    study, setup = setup_study(opts, status)
    objective = Objective(setup)
    objective.cost = EpochClock(SearchPlan(
        epochs=setup.context.train_cfg.epochs, folds=max(1, len(setup.folds)),
        trials=opts.trials, timeout=opts.timeout,
        # the top few and the paper point as their reference, each with fresh seeds
        # and the best two, while close, more up to confirm_max_seeds
        confirmations=((setup.confirm_top + 1) * setup.confirm_seeds
                       + 2 * max(0, setup.confirm_max_seeds - setup.confirm_seeds)
                       if finish and setup.confirm_seeds else 0),
        workers=opts.workers,
        rung=pruning.first_rung(opts.pruner, setup.context.train_cfg.epochs)), status)
    shared = (SharedBudget(opts.storage or default_storage(opts.home), opts.run, opts.trials)
              if opts.run is not None and opts.trials is not None else None)
    objective.shared = shared
    budget = TrialBudget(opts.trials, status, opts.timeout, shared=shared, workers=opts.workers)
    with SearchProgress(opts.trials, enabled=opts.progress) as progress:
        objective.progress = progress
        objective.fold_line = None if opts.progress else status
        line = progress.on_trial_end if opts.progress else trial_line(status, budget)
        # stop.check first: a SIGTERM that Optuna's gc after the trial swallowed ends the run
        # here, before another trial starts; the line says the count the budget has just taken
        callbacks = [stop.check, budget, line]
        if shared is not None:
            callbacks.append(shared)  # last: it holds the lock until the next trial starts
        gate = shared.first(study) if shared is not None else contextlib.nullcontext(True)
        with gate as may_start:
            if opts.trials != 0 and may_start:
                study.optimize(objective, n_trials=None, timeout=opts.timeout,
                               catch=(Exception,), callbacks=callbacks, gc_after_trial=True)
    if budget.over:
        status(f"{budget.over} proposals over the limit were sized, recorded and not trained; "
               f"they do not count toward --trials")
    if finish:
        finish_search(study, setup, status, score_many=score_many, progress=opts.progress)
    return study


def setup_study(opts: SearchOptions, status: Callable[[str], None] = print
                ) -> tuple[optuna.Study, SearchSetup]:
    """Everything before the first trial: storage, study (created or resumed and checked),
    features, the technique's shared work (the teacher), the paper trial's enqueue."""
    optuna.logging.set_verbosity(optuna_level())  # WARNING unless -v/-q said otherwise
    logging.getLogger("optuna.study._optimize").addFilter(_INTERRUPT_FILTER)
    study_name = check_study_name(opts.technique if opts.study is None else opts.study)
    url = opts.storage or default_storage(opts.home)
    storage = open_storage(url, create=True, retry_failed=opts.retry_failed)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    if opts.trials == 0 and study_name not in existing:
        raise UsageError(f"--trials 0 finishes an existing study without adding trials, and "
                         f"there is no study {study_name!r} in {redacted(url)}: give --trials N")
    split_seed, cv = opts.seed, opts.cv
    if study_name in existing:  # resumed: its split and folds, unless asked otherwise
        recorded = StudyRecord.from_attrs(existing[study_name].user_attrs).split_seed
        split_seed = opts.seed if recorded is None else int(recorded)
        folds = StudyRecord.from_attrs(existing[study_name].user_attrs).cv_folds
        if cv is None and folds is not None:
            cv = int(folds)
        elif cv is None and existing[study_name].n_trials:  # older than --cv: one split
            cv = 0
        # else a study another worker has just created and not yet described: decide as it
        # did (the same options and data give the same folds), not "older study"
    setup = prepare_search(opts, status, split_seed=split_seed)
    setup.confirm_top = (confirm.default_top(setup.demo) if opts.confirm_top is None
                         else opts.confirm_top)
    setup.confirm_seeds = (confirm.default_seeds(setup.demo) if opts.confirm_seeds is None
                           else opts.confirm_seeds)
    setup.confirm_max_seeds = max(setup.confirm_seeds, (
        confirm.default_max_seeds(setup.confirm_seeds, setup.demo)
        if opts.confirm_max_seeds is None else opts.confirm_max_seeds))
    setup.stop_hopeless = opts.pruner != "none"
    ctx = setup.context
    val_files = set(ctx.val_files)
    val_groups = len({c.identifier for c in setup.dataset.train if c.filename in val_files})
    n_folds = folds_for(cv, len(ctx.val_files),
                        len({c.identifier for c in setup.dataset.train}), setup.demo, val_groups)
    if n_folds:
        setup.folds = fold_contexts(ctx, setup.dataset.train, n_folds, split_seed)
        status(f"scoring each trial by {n_folds}-fold cross-validation over "
               f"{len(setup.dataset.train)} clips (a single validation split would hold "
               f"{len(ctx.val_files)} from {val_groups} identifier(s); --cv 0 turns this off)")
    elif few_sources(val_groups) and not setup.demo:
        status(f"warning: the validation split holds clips of {val_groups} identifier(s) "
               f"(speakers, locations): a trial's standard error counts clips, not sources, so "
               f"it understates how the pick does on others; --cv K scores over all of them")
    sampler = TrialSeededTPE(seed=opts.seed, n_startup_trials=5)
    epochs = ctx.train_cfg.epochs
    rung_clips = len(setup.folds[0].val_files) if setup.folds else len(ctx.val_files)
    pruner = pruning.make_pruner(opts.pruner, epochs, rung_clips)
    status(training_plan(ctx, setup.folds, opts.epochs is not None, opts.pruner,
                         several=setup.technique.epoch_scale is not None))
    with storage_lock(url):
        study = optuna.create_study(storage=storage, study_name=study_name,
                                    direction="maximize", sampler=sampler, pruner=pruner,
                                    load_if_exists=True)
        check_resume(study, StudyRecord(
            technique=opts.technique, rule=opts.rule,
            budget_kb=ctx.rule.limit_kb if opts.budget_kb is None else opts.budget_kb,
            max_mmacs=ctx.rule.max_mmacs, split_seed=split_seed, val_fraction=opts.val_fraction,
            overrides=opts.overrides, epochs=ctx.train_cfg.epochs,
            data_sha256=dataset_fingerprint(setup.dataset, opts.home / "cache"),
            space_sha256=space_digest(setup.space),
            sources_sha256=ctx.sources.digests(), cv_folds=n_folds,
            epoch_scale=setup.technique.epoch_scale,
            fit_version=setup.technique.fit_version or None,
        ).to_attrs(RESUME_KEYS) | legacy_data(study, setup.dataset),
            where={"data": str(setup.dataset.root), "space_file": str(setup.space.file)})
        if StudyRecord.from_study(study).uid is None:  # tells it from another of that name
            StudyRecord(uid=uuid.uuid4().hex).write(study)
        name_objective(study)  # "validation accuracy" in the dashboard, not "Objective 0"
        StudyRecord(data=str(setup.dataset.root), labels=list(setup.dataset.labels),
                    space_file=str(setup.space.file), demo=setup.demo,
                    train_clips=len(ctx.train_files), val_clips=len(ctx.val_files),
                    cv_folds=n_folds, sources=ctx.sources.attrs()).write(study)  # sources: paths
        status(_retrain_plan(study, setup))
    for key, value in _prepare(setup, status).items():  # the teacher(s): their own lock
        study.set_user_attr(key, value)
    with storage_lock(url):
        dead = fail_dead_trials(study)
        if dead:
            status(f"trials {', '.join(map(str, dead))} of a stopped run marked FAIL")
        fresh = not study.get_trials(deepcopy=False)
        if not paper_pending(study) and opts.trials != 0:  # 0: no trial may be left waiting
            study.enqueue_trial(setup.space.paper_trial_params(),
                                user_attrs=TrialRecord(source=PAPER).to_attrs())
        if opts.trials != 0:  # the entries it has not tried, on every run (portfolio.py)
            made = portfolio.enqueue_portfolio(study, setup.space, _room(study, opts.trials),
                                               _fits(setup))
            if line := made.describe():
                status(line)
        if fresh and opts.trials != 0:  # once, when the study starts: a resume adds none
            _enqueue_design(study, setup, opts, status)
        if opts.trials != 0:
            _enqueue_lost_design(study, opts.trials, status)
    return study, setup


def _enqueue_design(study: optuna.Study, setup: SearchSetup, opts: SearchOptions,
                    status: Callable[[str], None]) -> None:
    """Enqueue the initial design's trials after the paper trial (design.py says why)."""
    entries = sum(TrialRecord.from_trial(t).source == PORTFOLIO
                  for t in study.get_trials(deepcopy=False))
    trials = None if opts.trials is None else opts.trials - entries  # the rest after them
    made = design.initial_design(setup.space, opts.initial_design, trials, _fits(setup),
                                 opts.seed)
    for params in made.rows:
        study.enqueue_trial(params, user_attrs=TrialRecord(source=DESIGN).to_attrs())
    StudyRecord(initial_design={"kind": made.kind, "rows": len(made.rows),
                                "left_out": made.left_out, "cut": made.cut}).write(study)
    if made.kind != "none" and (made.rows or made.left_out):
        status(made.describe([p.name for p in design.categoricals(setup.space)]))


def _room(study: optuna.Study, trials: int | None) -> int | None:
    """How many more trials this run's `trials` leaves room to enqueue after those already
    waiting (None: no count, --timeout alone): one left waiting after the run would stop the
    confirmation."""
    if trials is None:
        return None
    return max(0, trials - len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))))


def _enqueue_lost_design(study: optuna.Study, trials: int | None,
                         status: Callable[[str], None]) -> None:
    """Enqueue the design rows a stopped run lost (`lost_design_rows`), as many as this run's
    `trials` leave room for: a trial left waiting after the run would stop the confirmation."""
    lost = lost_design_rows(study)
    room = _room(study, trials)
    if room is not None:
        lost = lost[:room]
    for params in lost:
        study.enqueue_trial(params, user_attrs=TrialRecord(source=DESIGN).to_attrs())
    if lost:
        status(f"{len(lost)} initial-design row{'s' if len(lost) > 1 else ''} of a stopped run "
               "enqueued again")


def training_plan(ctx: TrialContext, folds: Sequence[TrialContext], fixed: bool,
                  pruner: str = "hyperband", several: bool = False) -> str:
    """What one trial costs, said before the first one starts: a laptop user should learn that
    a 5-fold, 50,000-clip trial is hours on a CPU from this line, not from a progress bar.
    `several`: a fit trains more than once (lt), the pruner reading the first training."""
    epochs = ctx.train_cfg.epochs
    given = int(ctx.space.train.get("epochs", TrainConfig.epochs))
    why = ("--epochs" if fixed else
           f"the space's train.epochs = {given}, raised to reach train.min_clips_seen = "
           f"{ctx.train_cfg.min_clips_seen:,}" if epochs > given else "the space's train.epochs")
    if folds:
        lo, hi = min(len(f.train_files) for f in folds), max(len(f.train_files) for f in folds)
        clips = f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"
        seen = (f"{clips} clips per fold x {len(folds)} folds = "
                f"{epochs * sum(len(f.train_files) for f in folds):,} clips seen")
    else:
        seen = f"{len(ctx.train_files):,} clips = {epochs * len(ctx.train_files):,} clips seen"
    between = (", and between folds once it can no longer enter the top few"
               if folds and pruner != "none" else "")
    per, first = (" per training", " of its first training") if several else ("", "")
    return (f"each trial trains {count_text(epochs, 'epoch')}{per} ({why}) of {seen}; "
            f"{pruning.describe(pruner, epochs, first)}{between}")


def clips_per_training(ctx: TrialContext, folds: Sequence[TrialContext]) -> int:
    """Clips one search training sees: its epochs x its training clips (the folds' mean)."""
    sizes = [len(f.train_files) for f in folds] or [len(ctx.train_files)]
    return round(ctx.train_cfg.epochs * sum(sizes) / len(sizes))


def _retrain_plan(study: optuna.Study, setup: SearchSetup) -> str:
    """Record the clips each training sees in a new study (retrain trains as many) and say what
    retrain will train; a study made before that was recorded keeps retraining its epochs."""
    record = StudyRecord.from_study(study)
    n_all = len(setup.dataset.train)
    if record.clips_seen is None and study.get_trials(deepcopy=False):
        trained = count_text(int(record.epochs or 0), "epoch")
        return (f"retrain trains this study's {trained} on all "
                f"{n_all:,} clips of fold1_train (it was made before searches recorded the "
                "clips each training sees, which retrain now trains)")
    seen = record.clips_seen or clips_per_training(setup.context, setup.folds)
    if record.clips_seen is None:
        StudyRecord(clips_seen=seen).write(study, ["clips_seen"])
    epochs = count_text(epochs_to_see(seen, n_all), "epoch")
    return (f"retrain trains {epochs} of all {n_all:,} clips of "
            f"fold1_train: the {seen:,} clips each search training sees (--epochs of retrain "
            "sets others)")


def _prepare(setup: SearchSetup, status: Callable[[str], None]) -> dict[str, Any]:
    """The technique's once-per-search work on the split, or on every fold (a KD teacher per
    fold); numbers recorded as their mean over folds, with the per-fold values beside."""
    if not setup.folds:
        return setup.technique.prepare(setup.context)
    per_fold = []
    own = type(setup.technique).prepare is not Technique.prepare  # else nothing to say
    for k, fctx in enumerate(setup.folds):
        if own:
            status(f"fold {k + 1} of {len(setup.folds)}: preparing {setup.technique.name}")
        per_fold.append(setup.technique.prepare(fctx))
    out: dict[str, Any] = dict(per_fold[0])
    for key in per_fold[0]:
        values = [attrs.get(key) for attrs in per_fold]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[key] = round(statistics.fmean(values), 4)
            out[f"{key}_per_fold"] = values
    return out


def rescore(objective: Objective, trial: FrozenTrial, seed_index: int,
            study: optuna.Study | None = None, say: Callable[[str], None] | None = None
            ) -> CvScore:
    """A finished trial's configuration trained again with seed index >= 1 (confirmation).

    With `study`, a cross-validated run records each fold as it ends (CONFIRM_FOLDS, one
    attribute per run, so processes confirming side by side never write the same one) and a
    run interrupted between folds resumes from them: a fold's seeds depend only on (trial,
    fold, seed index), so the resumed run scores what the whole one would have. A fsdd int8
    confirmation run is four folds of about 20 min on a 2-core CPU, so `say` (a log, no
    progress display) hears of each fold as it ends and of the run's score, and
    `objective.progress` (a terminal) shows the run's training steps. The score: its mean is
    the run's value, its standard error said beside it."""
    config = dict(TrialRecord.from_trial(trial).config or {})
    key = CONFIRM_FOLDS.format(trial=trial.number, seed=seed_index)
    folds = len(objective.setup.folds)
    resumed = None
    if study is not None and folds:
        done = [float(a) for a in study.user_attrs.get(key) or []][:folds - 1]
        if done:
            resumed = fold_resume.Resumed(
                trial=trial.number, seed_trial=trial.number, accuracies=tuple(done),
                details=(None,) * len(done), val_history=(), reports=())
    label = f"confirming trial {trial.number} with seed {seed_index}"
    reused, t0 = (0 if resumed is None else resumed.folds), time.perf_counter()
    bar = objective.progress
    short = f"trial {trial.number} seed {seed_index}"  # the bar's: a terminal line is short
    if bar is not None:
        bar.start_run(short)

    def on_fold(fold: int, score: CvScore, details: list[dict[str, Any] | None]) -> None:
        if study is not None:
            study.set_user_attr(key, [round(a, 4) for a in score.accuracies])
        if say is not None and reused <= fold < folds - 1:
            say(fold_text(label, fold, folds, score, time.perf_counter() - t0, reused, "run"))
        if bar is not None:
            bar.fold(fold + 1, folds, score.mean)

    # Each fold's training resumes at its last epoch after a stop too (epoch_state.py).
    epoch_key = None if study is None else run_key(study, trial.number, seed_index, config)
    score = objective.score_config(config, trial.number, seed_index, on_fold=on_fold,
                                   on_step=None if bar is None else bar.step,
                                   resumed=resumed, epoch_key=epoch_key)[0]
    end = run_end_text(label, score, trial.value, time.perf_counter() - t0)
    if say is not None:
        say(end)
    if bar is not None:
        bar.end_run(f"last: {short} {score.text}")
    return score


def run_key(study: optuna.Study, number: int, seed_index: int, config: dict[str, Any]) -> str:
    """What a run of `config` (seeded by trial `number`, seed index 0 for the trial itself, 1..
    for confirmation) depends on beyond each training's own settings and data: the key its
    folds' saved epochs are found by (epoch_state.py)."""
    return digest({"study": [study.study_name, StudyRecord.from_study(study).uid],
                   "trial": number, "seed": seed_index, "config": config})


def finish_search(study: optuna.Study, setup: SearchSetup,
                  status: Callable[[str], None] = print,
                  score_many: confirm.ScoreMany | None = None, progress: bool = False) -> None:
    """After a search's trials: confirm the top few configurations with fresh seeds (the pick
    that retrain and export take), then the technique's own step (e.g. the gcc ablation).
    `score_many`: `--jobs N` runs the confirmation in N processes (workers.confirm_pool);
    `progress`: a bar for the confirmation's runs, else a line per fold and run."""
    ranked = feasible_trials(study)
    others = _others_running(study)
    confirming = bool(setup.confirm_seeds) and len(ranked) >= 2
    if confirming and others:
        status(f"{len(others)} trials of other workers still running or waiting: the last "
               "worker to finish confirms the top configurations")
    elif confirming and (holder := confirm.live_claim(study)):
        status(f"worker {holder['host']} pid {holder['pid']} is confirming the top "
               "configurations: it confirms this run's new top trials when it has finished "
               "those, and runs what follows (should it stop, `search --trials 0` confirms)")
        return
    elif confirming and (other := confirm.claim(study)):
        status(f"worker {other['host']} pid {other['pid']}, finishing at the same moment, "
               "confirms the top configurations and runs what follows")
        return  # it also runs the technique's step below, on the pick it confirms
    elif confirming:
        _confirm_until_settled(study, setup, status, score_many, progress)
    ranked = feasible_trials(study)
    best = pick_trial(study) if ranked else None
    for key, value in setup.technique.after_search(best, setup.context, setup.folds).items():
        study.set_user_attr(key, value)


def _others_running(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))


def _paper(ranked: list[FrozenTrial]) -> FrozenTrial | None:
    """The paper trial among the feasible ones: the reference every confirmation scores."""
    return next((t for t in ranked if TrialRecord.from_trial(t).is_paper), None)


def _confirm_until_settled(study: optuna.Study, setup: SearchSetup,
                           status: Callable[[str], None],
                           score_many: confirm.ScoreMany | None, progress: bool = False) -> None:
    """Confirm the top few under this worker's claim, then look again with the claim released:
    a worker that finished meanwhile left its trials to this one (`confirm.live_claim`), so new
    top trials are confirmed too (the runs of those still there are kept), until none came in,
    another worker's trials still run (the last to finish confirms), or another claimed."""
    objective = Objective(setup)
    ranked = feasible_trials(study)
    paper = _paper(ranked)
    # Said before runs that leave the paper out; once the record covers today's top few (a
    # resumed `--trials 0`) the confirmation table's footnote says it, and nothing is run.
    if (not confirm.settled(study, ranked, setup.confirm_top, paper)
            and (note := confirm.reference_note(ranked, setup.confirm_top, paper))):
        status(note)
    bar_on = progress and score_many is None  # runs in other processes: a line each instead
    say = None if bar_on else status  # in a terminal the bar says it
    with SearchProgress(None, enabled=bar_on, unit="confirmation runs") as bar:
        objective.progress = bar if bar_on else None
        _confirm_rounds(study, objective, ranked, paper, status,
                        lambda trial, seed: rescore(objective, trial, seed, study, say).mean,
                        score_many)


def _confirm_rounds(study: optuna.Study, objective: Objective, ranked: list[FrozenTrial],
                    paper: FrozenTrial | None, status: Callable[[str], None],
                    score: confirm.Score, score_many: confirm.ScoreMany | None) -> None:
    """`_confirm_until_settled`'s rounds: confirm, look again, until settled."""
    setup = objective.setup
    while True:
        with confirm.holding(study):
            confirmed = confirm.confirm_top(
                study, ranked, score,
                setup.confirm_top, setup.confirm_seeds, status, reference=paper,
                score_many=score_many, max_seeds=setup.confirm_max_seeds)
        if confirmed:
            status("confirmed: " + "; ".join(
                f"trial {c.trial} {c.mean:.4f}"
                + (f" ± {c.standard_error:.3f} over {len(c.fresh)} fresh seeds"
                   if len(c.fresh) > 1 else " on 1 fresh seed")
                + f" (search {c.search_value:.4f})" for c in confirmed)
                + f"; pick: trial {confirmed[0].trial}")
        ranked = feasible_trials(study)
        paper = _paper(ranked)
        if not confirmed or confirm.settled(study, ranked, setup.confirm_top, paper):
            return
        if _others_running(study) or confirm.claim(study) is not None:
            return  # the worker finishing last, or the one that claimed, confirms them
        status("trials another worker finished during the confirmation entered the top: "
               "confirming the new top configurations")


# A fold of a cross-validated trial ended: (fold from 0, the score so far, each fold's details).
FoldHook = Callable[[int, CvScore, list[dict[str, Any] | None]], None]

def sized(setup: SearchSetup, candidate: Candidate, macs: bool = True
          ) -> tuple[SizeReport, int | None, bool]:
    """Size, MACs of one inference as the rule counts them (its counter, its window of audio;
    None when `macs` is False and the rule sets no MACs limit) and whether both fit."""
    ctx = setup.context
    size = setup.technique.size(candidate, ctx.rule)
    count = None
    if macs or ctx.rule.max_macs is not None:
        count = rule_macs(candidate.macs_model(), ctx.rule, ctx.example_input,
                          setup.technique.feature_config(ctx.space))
    return size, count, size.fits and (count is None or ctx.rule.macs_fit(count))


def _fits(setup: SearchSetup) -> Callable[[dict[str, Any]], bool]:
    """Whether a configuration's model fits the limits: built and sized, never trained (the
    initial design's check; the global RNG is left as it was)."""
    def fits(config: dict[str, Any]) -> bool:
        with torch.random.fork_rng(devices=[]):
            candidate = setup.technique.build(config, setup.context)
            return sized(setup, candidate, macs=False)[2]
    return fits


class Objective:
    """One trial: sample -> build -> size (stop if over budget) -> fit -> record.

    An exception inside a trial marks that trial FAIL (Optuna logs its traceback) and the search
    goes on: one bad configuration (e.g. out of GPU memory) must not end a night-long search.
    Ctrl-C is not an Exception and still stops everything.
    """

    def __init__(self, setup: SearchSetup) -> None:
        self.setup = setup
        self.progress: SearchProgress | None = None
        self.cost: EpochClock | None = None  # says the search's cost once, from trial epochs
        self.shared: SharedBudget | None = None  # a --jobs worker's gate (shared_budget.py)
        # Without a progress display (a log, a --jobs worker): a line per cross-validation fold
        # that ends before the trial does, since a default-budget trial on a CPU is hours of
        # folds (fsdd int8: about 20 min a fold) and a log would otherwise say nothing meanwhile.
        self.fold_line: Callable[[str], None] | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        if self.shared is not None:  # counted by every worker of the run from here
            self.shared.started(trial)
        mark_worker(trial)
        fail_dead_trials(trial.study)  # a worker of this host killed meanwhile: failed at once
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # the trial fails; its reason is kept beside it
            TrialRecord(fail_reason=f"{type(exc).__name__}: {exc}"[:500]).write(trial)
            raise

    def _run(self, trial: optuna.Trial) -> float:
        setup, ctx = self.setup, self.setup.context
        # The paper trial is the reference and a portfolio entry is what the study exists to
        # try: both train to the end, never judged by half a schedule (portfolio.py).
        full = TrialRecord.from_trial(trial).source in (PAPER, PORTFOLIO)
        if TrialRecord.from_trial(trial).source is None:  # not the paper's, not designed
            TrialRecord(source=SEARCH).write(trial)
        config = setup.space.suggest(trial)
        TrialRecord(config=config).write(trial)
        # An interrupted trial of this configuration: its finished folds are taken over, the
        # rest trained from its seeds (fold_resume.py says why).
        resumed = fold_resume.find(trial.study, trial.number, trial.params,
                                   max(1, len(setup.folds)))
        seed_number = trial.number if resumed is None else resumed.seed_trial
        if resumed is not None:
            TrialRecord(resumed_from=resumed.trial, seed_trial=seed_number,
                        folds_reused=resumed.folds).write(trial)
        # Initial weights from (seed, trial number): a trial is the same whichever trials ran
        # before it in this process (a resumed study, another worker).
        torch.manual_seed(trial_seed(ctx.train_cfg.seed, seed_number))
        candidate = setup.technique.build(config, ctx)
        setup.technique.initialise(candidate, ctx)  # --init-from
        size, macs, feasible = sized(setup, candidate)
        TrialRecord(
            precision=candidate.precision.value, rule=ctx.rule.name,
            size_kb=round(size.size_kb, 2), size_bytes=size.size_bytes, params=size.params,
            counted_params=size.counted_params, macs=macs,
            budget_kb=round(ctx.rule.limit_bytes / ctx.rule.kb_bytes, 2),
            max_mmacs=ctx.rule.max_mmacs, feasible=feasible, extra=dict(candidate.info),
        ).write(trial, SIZING)
        limits = {SIZE_CONSTRAINT: float(size.size_bytes - ctx.rule.limit_bytes)}
        if ctx.rule.max_macs is not None:  # a second hard limit: TPE reads both
            limits[MACS_CONSTRAINT] = float(macs - ctx.rule.max_macs)
        record_constraints(trial, limits)  # named for TPE, listed for the dashboard
        if self.progress is not None:
            self.progress.start_trial(trial.number, TrialRecord.from_trial(trial),
                                      size.size_kb, feasible)
        if not feasible:  # size or MACs: recorded, never trained, no accuracy to plot
            raise optuna.TrialPruned("over the limit: not trained")
        history: list[float] = []
        if resumed is not None and resumed.folds:  # fold 0 ran in the interrupted trial
            history.extend(resumed.val_history)
            TrialRecord(val_history=history).write(trial)
            for step, acc in resumed.reports:
                trial.report(acc, step)  # its curve, as it was judged then: not judged again
        epochs = ctx.train_cfg.epochs
        all_epochs = epochs * setup.technique.trainings(config, candidate)

        def stop(reason: str) -> None:
            TrialRecord(stop_reason=reason).write(trial)
            raise optuna.TrialPruned(reason)

        def on_epoch(epoch: int, acc: float) -> None:
            """Epoch `epoch` of all the fit's trainings (see Technique.fit) ended."""
            history.append(round(acc, 4))
            TrialRecord(val_history=history).write(trial)
            trial.report(acc, epoch + 1)
            if self.cost is not None:
                self.cost.epoch(epoch)
            if self.progress is not None:
                self.progress.epoch(epoch + 1, all_epochs, acc)
            # The rung sits in the first training (half of it): later trainings (a lottery
            # ticket's) report their curve but are never compared at a step of their own.
            if not full and epoch < epochs and trial.should_prune():
                stop(pruning.stop_reason(trial.study.pruner, trial.number, epoch + 1, acc))

        t0 = time.perf_counter()
        if self.cost is not None:
            self.cost.start(trial.number, setup.technique.trainings(config, candidate),
                            setup.technique.fine_tune_epochs(config))

        def on_step(done: int, total: int) -> None:
            if self.progress is not None:
                self.progress.step(done, total)
            if self.cost is not None:
                self.cost.step(done, total)

        reused = 0 if resumed is None else resumed.folds
        if resumed is not None and self.fold_line is not None:
            self.fold_line(resumed.text(trial.number))

        def on_fold(fold: int, score: CvScore, details: list[dict[str, Any] | None]) -> None:
            TrialRecord(cv_accuracies=[round(a, 4) for a in score.accuracies],
                        cv_details=details).write(trial)
            if self.fold_line is not None and reused <= fold < len(setup.folds) - 1:
                self.fold_line(fold_text(trial_label(trial), fold, len(setup.folds), score,
                                         time.perf_counter() - t0, reused))
            if self.progress is not None:
                self.progress.fold(fold + 1, len(setup.folds), score.mean)
            if not full and setup.stop_hopeless:
                values = [float(t.value) for t in feasible_trials(trial.study)]
                why = pruning.hopeless(score.accuracies, [len(c.val_files) for c in setup.folds],
                                       values, setup.keep_top)
                if why is not None:
                    stop(why)

        # A stop mid-fold: the next run of this configuration (fold_resume.find) continues
        # the fold's training from its last finished epoch, its curve replayed (epoch_state.py).
        score, outcomes, details = self.score_config(
            config, seed_number, 0, candidate=candidate, on_epoch=on_epoch, on_step=on_step,
            on_fold=on_fold, resumed=resumed,
            epoch_key=run_key(trial.study, seed_number, 0, config))
        final = max((o.size for o in outcomes), key=lambda s: s.size_bytes)  # zeros may drop
        if not final.fits:
            raise AscError(f"trial {trial.number}: the trained model is {final.size_kb:.2f} KB, "
                           f"over the {ctx.rule.limit_bytes / ctx.rule.kb_bytes:.0f} KB budget it "
                           "was sized within; this is a bug in the technique's size()")
        # Over every fold, the reused ones included; None where one did not record it.
        fp32 = fold_resume.combined(details, "accuracy_fp32", "mean")
        size_kb = fold_resume.combined(details, "size_kb_trained", "max")
        train_s = fold_resume.combined(details, "train_seconds", "sum")
        fb_s = fold_resume.combined(details, "forward_backward_seconds", "sum")
        first = details[0] if details and details[0] else {}
        TrialRecord(
            size_kb_trained=None if size_kb is None else round(size_kb, 2),
            accuracy_fp32=None if fp32 is None else round(fp32, 4),
            value_se=round(score.standard_error, 4),
            train_seconds=None if train_s is None else round(train_s, 2),
            forward_backward_seconds=None if fb_s is None else round(fb_s, 2),
            trial_seconds=round(time.perf_counter() - t0, 2),  # this run's: not the lost ones'
            extra=dict(first.get("info") or {}),  # the technique's own results (fold 0's)
        ).write(trial, TRAINED)
        return float(score.mean)

    def score_config(self, config: dict[str, Any], number: int, seed_index: int,
                     candidate: Candidate | None = None,
                     on_epoch: EpochHook | None = None, on_step: StepHook | None = None,
                     on_fold: FoldHook | None = None, resumed: fold_resume.Resumed | None = None,
                     epoch_key: str | None = None,
                     ) -> tuple[CvScore, list[FoldOutcome], list[dict[str, Any] | None]]:
        """Train `config` on the search's split, or on each cross-validation fold, and score it:
        the score, the folds trained here and every fold's details (fold_resume.DETAIL_KEYS).

        Seed index 0 is the trial itself (fold 0 starts from the trial's own initial weights,
        and only fold 0 reports epochs to the pruner); `confirm` passes 1, 2, ... for the same
        configuration trained from other initial weights and batch orders. `resumed`: the
        folds an interrupted run of the trial finished, taken as they are (`number` is then
        that trial's seed number, so the rest train as they would have there). `epoch_key`:
        what the run depends on; each fold's training then resumes at its last finished epoch
        after a stop (epoch_state.py).
        """
        setup = self.setup
        contexts = setup.folds or (setup.context,)
        outcomes: list[FoldOutcome] = []
        # Recorded to 4 decimals: back to the exact share of its fold's clips each one was.
        accs = [fold_resume.exact(a, len(c.val_files))
                for a, c in zip(resumed.accuracies if resumed else (), contexts, strict=False)]
        details: list[dict[str, Any] | None] = list(resumed.details) if resumed else []
        score = CvScore(tuple(accs), tuple(len(c.val_files) for c in contexts[:len(accs)]))
        for fold in range(len(accs)):  # the hopeless check sees them as it would have
            if on_fold is not None:
                on_fold(fold, CvScore(score.accuracies[:fold + 1], score.n_val[:fold + 1]),
                        details[:fold + 1])
        for fold, fctx in enumerate(contexts):
            if fold < len(details):
                continue
            scope = None if epoch_key is None else f"{epoch_key} fold {fold}"
            with (contextlib.nullcontext() if scope is None else epoch_state.resumable(
                    epoch_state.scope_folder(fctx.cache_root, scope), scope)):
                score = self._fold(config, number, seed_index, fold, fctx, candidate, on_epoch,
                                   on_step, on_fold, accs, details, outcomes)
        return score, outcomes, details

    def _fold(self, config: dict[str, Any], number: int, seed_index: int, fold: int,
              fctx: TrialContext, candidate: Candidate | None, on_epoch: EpochHook | None,
              on_step: StepHook | None, on_fold: FoldHook | None, accs: list[float],
              details: list[dict[str, Any] | None], outcomes: list[FoldOutcome]) -> CvScore:
        """Train fold `fold` of `score_config` and record it (appended to accs, details,
        outcomes); the score over the folds so far."""
        setup = self.setup
        contexts = setup.folds or (setup.context,)
        if seed_index:
            fctx = dataclasses.replace(fctx, train_cfg=dataclasses.replace(
                fctx.train_cfg, seed=trial_seed(fctx.train_cfg.seed, number, fold, seed_index)))
        if candidate is None or fold or seed_index:
            torch.manual_seed(trial_seed(fctx.train_cfg.seed, number, fold, seed_index))
            cand = setup.technique.build(config, fctx)
            setup.technique.initialise(cand, fctx)
        else:
            cand = candidate  # built and seeded by the caller, as every trial always was
        outcome = setup.technique.fit(cand, config, fctx, on_epoch=on_epoch if not fold
                                      else None, on_step=on_step)
        size = setup.technique.size(cand, fctx.rule)  # trained weights: zeros may drop
        outcomes.append(FoldOutcome(cand, outcome, size))
        accs.append(float(outcome.accuracy))
        details.append(fold_resume.detail(
            outcome.accuracy, outcome.accuracy_fp32, size.size_kb, size.size_bytes,
            outcome.train.seconds_total, outcome.train.seconds_forward_backward,
            outcome.info))
        score = CvScore(tuple(accs), tuple(len(c.val_files) for c in contexts[:fold + 1]))
        if on_fold is not None and setup.folds:
            on_fold(fold, score, details)
        return score


@dataclass
class FoldOutcome:
    """A trained candidate and what its fit returned, for one fold (or the single split)."""

    candidate: Candidate
    outcome: Outcome
    size: SizeReport  # of the trained candidate, under the context's rule
