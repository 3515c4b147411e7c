"""The Optuna driver: one study per technique, validation accuracy as the single objective and the
size limit as a hard constraint.

Optuna 5 refuses pruners on multi-objective studies, so accuracy is the objective and size is a
constraint (`Trial.set_constraint`, which TPE reads): a configuration over the limit is sized
before training, recorded as infeasible (objective 0.0, constraint > 0) and never trained. The
accuracy/size trade-off is read off the trials afterwards (report.pareto_front). A study is
resumed when it exists: its split, size rule and budget are fixed at creation and checked on
every resume.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from asc_auto.compress.macs import count_macs
from asc_auto.context import ContextSettings, build_context
from asc_auto.data.demo import ensure_demo_dataset
from asc_auto.data.tau import TauDataset, dataset_fingerprint
from asc_auto.errors import AscError, UsageError
from asc_auto.keys import check_study_name, space_digest
from asc_auto.records import feasible_trials
from asc_auto.space import SearchSpace, default_space_file
from asc_auto.storage import (
    default_storage,
    fail_dead_trials,
    mark_worker,
    open_storage,
    storage_lock,
)
from asc_auto.techniques.base import Technique, TrialContext, get_technique
from asc_auto.transfer import resolve_sources

PAPER = "paper"
DEFAULT_HOME = Path("studies")


@dataclass(frozen=True)
class SearchOptions:
    """Everything `asc-auto search` can be told; defaults are the CLI's."""

    technique: str
    data: Path | None = None  # None: the built-in demo dataset (generated on first use)
    trials: int | None = 10
    timeout: float | None = None  # seconds
    budget_kb: float = 500.0
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
    init_from: Path | None = None  # --init-from: every trial's model starts from it (transfer.py)
    teachers: tuple[Path, ...] = ()  # --teacher: kd teacher checkpoints (several: an ensemble)
    teacher_logits: tuple[Path, ...] = ()  # --teacher-logits: stored teacher outputs


@dataclass
class SearchSetup:
    """What a search needs before its first trial: built once, shared by every trial."""

    technique: Technique
    space: SearchSpace
    dataset: TauDataset
    context: TrialContext
    demo: bool


def prepare_search(opts: SearchOptions, status: Callable[[str], None] = print,
                   split_seed: int | None = None) -> SearchSetup:
    """Load data, space and features; split train/validation (grouped by recording)."""
    technique = get_technique(opts.technique)
    demo = opts.data is None
    root = ensure_demo_dataset(opts.home / "data") if demo else Path(opts.data)
    ctx = build_context(technique, ContextSettings(
        data=root, space_file=opts.space or default_space_file(technique.name), rule=opts.rule,
        budget_kb=opts.budget_kb, home=opts.home, demo=demo, overrides=opts.overrides,
        epochs=opts.epochs, seed=opts.seed, device=opts.device, progress=opts.progress,
        val_fraction=opts.val_fraction, split_seed=opts.seed if split_seed is None else split_seed,
        sources=resolve_sources(technique.name, technique.shape_params,
                                "teacher" in technique.tables, opts.init_from, opts.teachers,
                                opts.teacher_logits),
    ), status)
    if ctx.sources.init_from is not None:  # a checkpoint that does not fit stops here, once
        technique.initialise(technique.build(dict(ctx.space.paper), ctx), ctx)
    return SearchSetup(technique, ctx.space, ctx.dataset, ctx, demo)


CONSTRAINT = "size_bytes_over_budget"  # <= 0 is feasible


# What a study fixes at creation: a resumed run that differs in any of these would mix trials
# that cannot be compared. Attribute -> how the refusal names it.
RESUME_KEYS = {
    "technique": "technique (--technique)", "rule": "size rule (--rule)",
    "budget_kb": "budget (--budget-kb)", "split_seed": "split seed (--seed)",
    "val_fraction": "validation fraction", "overrides": "table overrides (--gcc/--no-gcc)",
    "epochs": "epochs per trial (--epochs or [train] epochs)",
    "data_fingerprint": "dataset (--data: its CSV files, file sizes and times)",
    "space_sha256": "search space (--space: its settings, params and paper point)",
    "sources_sha256": "starting points (--init-from, --teacher, --teacher-logits: their sha256)",
}


def _check_resume(study: optuna.Study, attrs: dict[str, Any], where: dict[str, str]) -> None:
    """A resumed study must keep everything its trials depend on; else results mix.

    `where` has this run's data folder and space file, named in the refusal beside the study's.
    """
    for key, value in attrs.items():
        old = study.user_attrs.get(key)
        if old is None:
            study.set_user_attr(key, value)
        elif old != value:
            what = RESUME_KEYS.get(key, key)
            if key == "data_fingerprint":
                old, value = (f"{study.user_attrs.get('data')} ({old[:12]})",
                              f"{where['data']} ({value[:12]})")
            elif key == "space_sha256":
                old, value = (f"{study.user_attrs.get('space_file')} ({old[:12]})",
                              f"{where['space_file']} ({value[:12]})")
            raise UsageError(
                f"study '{study.study_name}' was created with another {what}: {old!r}, this run "
                f"has {value!r}; fix: run with the study's original settings, or start a new "
                "study with --study NEW_NAME")


def _paper_pending(study: optuna.Study) -> bool:
    """True when the paper's trial completed, runs or waits; a failed one is enqueued again.

    Call after `fail_dead_trials`: a RUNNING paper trial of a killed worker must not count.
    """
    alive = {TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING}
    return any(t.user_attrs.get("source") == PAPER and t.state in alive
               for t in study.get_trials(deepcopy=False))


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
               finish: bool = True) -> optuna.Study:
    """Run (or resume) the study of one technique and return it.

    Safe with other workers on the same study (processes of `--jobs`, other machines): study
    creation, the resume checks and the paper trial's enqueue run under `storage_lock`; the
    caches they share are built once under their own locks. `finish` runs the technique's
    after-search step (e.g. the gcc ablation); `--jobs` runs it once, after all its workers.
    """
    study, setup = setup_study(opts, status)
    objective = Objective(setup)
    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = []
    with SearchProgress(opts.trials, enabled=opts.progress) as progress:
        objective.progress = progress
        callbacks.append(progress.on_trial_end if opts.progress else _trial_line(status))
        study.optimize(objective, n_trials=opts.trials, timeout=opts.timeout,
                       catch=(Exception,), callbacks=callbacks, gc_after_trial=True)
    if finish:
        finish_search(study, setup)
    return study


def setup_study(opts: SearchOptions, status: Callable[[str], None] = print
                ) -> tuple[optuna.Study, SearchSetup]:
    """Everything before the first trial: storage, study (created or resumed and checked),
    features, the technique's shared work (the teacher), the paper trial's enqueue."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna.study._optimize").addFilter(_INTERRUPT_FILTER)
    study_name = check_study_name(opts.technique if opts.study is None else opts.study)
    url = opts.storage or default_storage(opts.home)
    storage = open_storage(url, create=True, retry_failed=opts.retry_failed)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    split_seed = opts.seed
    if study_name in existing:
        split_seed = int(existing[study_name].user_attrs.get("split_seed", opts.seed))
    setup = prepare_search(opts, status, split_seed=split_seed)
    ctx = setup.context
    sampler = TrialSeededTPE(seed=opts.seed, n_startup_trials=5)
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=ctx.train_cfg.epochs,
                                            reduction_factor=3)
    with storage_lock(url):
        study = optuna.create_study(storage=storage, study_name=study_name,
                                    direction="maximize", sampler=sampler, pruner=pruner,
                                    load_if_exists=True)
        _check_resume(study, {
            "technique": opts.technique, "rule": opts.rule, "budget_kb": opts.budget_kb,
            "split_seed": split_seed, "val_fraction": opts.val_fraction,
            "overrides": opts.overrides, "epochs": ctx.train_cfg.epochs,
            "data_fingerprint": dataset_fingerprint(setup.dataset),
            "space_sha256": space_digest(setup.space),
            "sources_sha256": ctx.sources.digests(),
        }, where={"data": str(setup.dataset.root), "space_file": str(setup.space.file)})
        if "uid" not in study.user_attrs:  # tells this study from another of the same name
            study.set_user_attr("uid", uuid.uuid4().hex)
        study.set_user_attr("data", str(setup.dataset.root))
        study.set_user_attr("labels", list(setup.dataset.labels))
        study.set_user_attr("space_file", str(setup.space.file))
        study.set_user_attr("demo", setup.demo)
        study.set_user_attr("train_clips", len(ctx.train_files))
        study.set_user_attr("val_clips", len(ctx.val_files))
        study.set_user_attr("sources", ctx.sources.attrs())  # paths: where retrain finds them
    for key, value in setup.technique.prepare(ctx).items():  # the teacher: its own lock
        study.set_user_attr(key, value)
    with storage_lock(url):
        dead = fail_dead_trials(study)
        if dead:
            status(f"trials {', '.join(map(str, dead))} of a stopped run marked FAIL")
        if not _paper_pending(study):
            study.enqueue_trial(setup.space.paper_trial_params(), user_attrs={"source": PAPER})
    return study, setup


def finish_search(study: optuna.Study, setup: SearchSetup) -> None:
    """The technique's step after a search's trials (e.g. the gcc ablation), recorded."""
    ranked = feasible_trials(study)
    best = ranked[0] if ranked else None
    for key, value in setup.technique.after_search(best, setup.context).items():
        study.set_user_attr(key, value)


def _trial_line(status: Callable[[str], None]) -> Callable[[optuna.Study, FrozenTrial], None]:
    """Without a progress display (a log, another worker): one line per finished trial."""

    def on_trial_end(study: optuna.Study, trial: FrozenTrial) -> None:
        del study
        value = f" val acc {trial.value:.4f}" if trial.value is not None else ""
        size = trial.user_attrs.get("size_kb")
        size_text = f" at {size} KB" if size is not None else ""
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        reason = trial.user_attrs.get("fail_reason")
        why = f": {reason}" if reason and trial.state == TrialState.FAIL else ""
        status(f"trial {trial.number} {trial.state.name}{value}{size_text} "
               f"({seconds:.1f} s){why}")

    return on_trial_end


class Objective:
    """One trial: sample -> build -> size (stop if over budget) -> fit -> record.

    An exception inside a trial marks that trial FAIL (Optuna logs its traceback) and the search
    goes on: one bad configuration (e.g. out of GPU memory) must not end a night-long search.
    Ctrl-C is not an Exception and still stops everything.
    """

    def __init__(self, setup: SearchSetup) -> None:
        self.setup = setup
        self.progress: SearchProgress | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        mark_worker(trial)
        fail_dead_trials(trial.study)  # a worker of this host killed meanwhile: failed at once
        try:
            return self._run(trial)
        except optuna.TrialPruned:
            raise
        except Exception as exc:  # the trial fails; its reason is kept beside it
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}"[:500])
            raise

    def _run(self, trial: optuna.Trial) -> float:
        setup, ctx = self.setup, self.setup.context
        is_paper = trial.user_attrs.get("source") == PAPER
        if not is_paper:
            trial.set_user_attr("source", "search")
        config = setup.space.suggest(trial)
        trial.set_user_attr("config", config)
        # Initial weights from (seed, trial number): a trial is the same whichever trials ran
        # before it in this process (a resumed study, another worker).
        torch.manual_seed(int(np.random.SeedSequence([ctx.train_cfg.seed, trial.number])
                              .generate_state(1)[0]))
        candidate = setup.technique.build(config, ctx)
        setup.technique.initialise(candidate, ctx)  # --init-from
        size = setup.technique.size(candidate, ctx.rule)
        macs = count_macs(candidate.model, ctx.example_input())
        record = {
            "precision": candidate.precision.value, "rule": ctx.rule.name,
            "size_kb": round(size.size_kb, 2), "size_bytes": size.size_bytes,
            "params": size.params, "counted_params": size.counted_params, "macs": macs,
            "budget_kb": round(ctx.rule.limit_bytes / ctx.rule.kb_bytes, 2),
            "feasible": size.fits, **candidate.info,
        }
        for key, value in record.items():
            trial.set_user_attr(key, value)
        trial.set_constraint(CONSTRAINT, float(size.size_bytes - ctx.rule.limit_bytes))
        if self.progress is not None:
            self.progress.start_trial(trial.number, is_paper, size.size_kb, size.fits)
        if not size.fits:
            return 0.0  # infeasible: recorded, never trained
        history: list[float] = []

        def on_epoch(epoch: int, acc: float) -> None:
            history.append(round(acc, 4))
            trial.set_user_attr("val_history", history)
            trial.report(acc, epoch + 1)
            if self.progress is not None:
                self.progress.epoch(epoch + 1, ctx.train_cfg.epochs, acc)
            if not is_paper and trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch + 1}: val acc {acc:.3f}")

        t0 = time.perf_counter()
        on_step = self.progress.step if self.progress is not None else None
        outcome = setup.technique.fit(candidate, config, ctx, on_epoch=on_epoch, on_step=on_step)
        final = setup.technique.size(candidate, ctx.rule)  # trained weights: zeros may drop
        if not final.fits:
            raise AscError(f"trial {trial.number}: the trained model is {final.size_kb:.2f} KB, "
                           f"over the {ctx.rule.limit_bytes / ctx.rule.kb_bytes:.0f} KB budget it "
                           "was sized within; this is a bug in the technique's size()")
        trial.set_user_attr("size_kb_trained", round(final.size_kb, 2))
        trial.set_user_attr("accuracy_fp32", round(outcome.accuracy_fp32, 4))
        trial.set_user_attr("train_seconds", round(outcome.train.seconds_total, 2))
        trial.set_user_attr("forward_backward_seconds",
                            round(outcome.train.seconds_forward_backward, 2))
        trial.set_user_attr("trial_seconds", round(time.perf_counter() - t0, 2))
        for key, value in outcome.info.items():
            trial.set_user_attr(key, value)
        return float(outcome.accuracy)


class SearchProgress:
    """Two rich bars: trials of the search, steps of the current trial's training."""

    def __init__(self, n_trials: int | None, enabled: bool = True) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), disable=not enabled,
        )
        self.trials = self.bar.add_task("trials", total=n_trials, info="")
        self.steps = self.bar.add_task("training", total=None, info="", visible=False)
        self.best: str = ""

    def __enter__(self) -> SearchProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def start_trial(self, number: int, paper: bool, size_kb: float, fits: bool) -> None:
        tag = " (paper)" if paper else ""
        fit = "" if fits else " over budget: not trained"
        self.bar.update(self.steps, description=f"trial {number}{tag}", completed=0, total=None,
                        visible=fits, info=f"{size_kb:.1f} KB{fit}")

    def step(self, done: int, total: int) -> None:
        self.bar.update(self.steps, completed=done, total=total)

    def epoch(self, epoch: int, epochs: int, acc: float) -> None:
        self.bar.update(self.steps, info=f"epoch {epoch}/{epochs} val acc {acc:.3f}")

    def on_trial_end(self, study: optuna.Study, trial: FrozenTrial) -> None:
        feasible = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if t.user_attrs.get("feasible")]
        if feasible:
            best = max(feasible, key=lambda t: (t.value, -t.user_attrs["size_kb"]))
            self.best = f"best #{best.number}: {best.value:.3f} at {best.user_attrs['size_kb']} KB"
        self.bar.update(self.trials, advance=1, info=self.best)
        self.bar.update(self.steps, visible=False)
