"""`asc-auto`: thin typer commands; each validates its arguments, calls one library function and
prints the result with rich."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import optuna
import typer
from optuna.trial import FrozenTrial
from rich.markup import escape
from rich.table import Table
from typer.core import TyperArgument, TyperOption

from asc_auto import __version__, pruning
from asc_auto.cli_data import data_app
from asc_auto.compress.size import RULES
from asc_auto.console import console, user_errors
from asc_auto.design import KINDS
from asc_auto.errors import AscError
from asc_auto.records import feasible_trials, pick_trial
from asc_auto.report import (
    best_table,
    choices_table,
    config_table,
    confirmation_table,
    confirming_line,
    design_line,
    paper_table,
    pareto_table,
    reference_line,
    running_table,
    studies_table,
    summary_line,
    unfinished_line,
    untested_choices,
)
from asc_auto.schema import StudyRecord
from asc_auto.search import DEFAULT_HOME, SearchOptions, run_search
from asc_auto.space import resolve_space
from asc_auto.stats import accuracy_text, class_note, seeds_text
from asc_auto.storage import default_storage, open_storage
from asc_auto.teacher_summary import retrain_teacher_lines
from asc_auto.techniques import TECHNIQUES
from asc_auto.techniques.base import pretrainable
from asc_auto.verbosity import QUIET, set_verbosity, verbosity

app = typer.Typer(
    help="Search low-memory acoustic scene classifiers under a hard model-size limit.",
    no_args_is_help=True, rich_markup_mode="rich", pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(data_app, name="data", help="Synthesize or check a TAU-layout dataset.")

TechniqueName = Enum("TechniqueName", {name: name for name in sorted(TECHNIQUES)}, type=str)
RuleName = Enum("RuleName", {name: name for name in sorted(RULES)}, type=str)
InitialDesign = Enum("InitialDesign", {name: name for name in KINDS}, type=str)
PrunerKind = Enum("PrunerKind", {name: name for name in pruning.KINDS}, type=str)

HomeOpt = Annotated[Path, typer.Option(
    "--home", metavar="DIR",
    help="Folder for the demo data, feature/teacher caches and the default study DB.",
    envvar="ASC_AUTO_HOME")]
StorageOpt = Annotated[str | None, typer.Option(
    metavar="URL", envvar="ASC_AUTO_STORAGE",
    help="Optuna storage: sqlite:///FILE.db, journal:///ABS/PATH/FILE.log (many workers, one "
         "machine) or postgresql://USER:PASSWORD@HOST/DB (many machines) \\[default: sqlite:///<home>/asc.db].")]
StudyOpt = Annotated[str, typer.Option(metavar="NAME", help="Study name.")]
DeviceOpt = Annotated[str, typer.Option(metavar="DEVICE", help="auto, cpu, cuda, cuda:N.")]
MovedDataOpt = Annotated[Path | None, typer.Option(
    "--data", exists=True, file_okay=False, metavar="DIR",
    help="The study's dataset at another place (moved, or copied to this machine): used when "
         "its content is the study's \\[default: the folder the search used].")]


def _flag_type(self: TyperOption, ctx: typer.Context) -> str | None:
    """Flags take no value, so no "<bool>" beside them (--help, --force, --gcc/--no-gcc)."""
    if self.is_flag and self.metavar is None:
        return ""
    return _option_type(self, ctx)


def _argument_type(self: TyperArgument, ctx: typer.Context) -> str | None:
    """An argument with a metavar is named by it; no "<list[Path]>" type beside it."""
    return "" if self.metavar is not None else _plain_type(self, ctx)


# typer is pinned (pyproject); tests/test_cli.py renders every command's help and checks these.
_option_type = TyperOption.display_type_rich
_plain_type = TyperArgument.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]
TyperArgument.display_type_rich = _argument_type  # type: ignore[method-assign]


def _version(show: bool) -> None:
    """--version: the installed distribution's version (pyproject's), else the package's."""
    if show:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("asc-auto")
        except PackageNotFoundError:  # run from a source tree that was never installed
            found = __version__
        console.print(f"asc-auto {found}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    verbose: Annotated[int, typer.Option(
        "--verbose", "-v", count=True, metavar="", show_default=False,
        help="More output: -v adds Optuna's log lines, -vv its debug lines.")] = 0,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Results and errors only: no status lines, Optuna errors only.")
    ] = False,
) -> None:
    """Search low-memory acoustic scene classifiers under a hard model-size limit."""
    set_verbosity(QUIET if quiet else verbose)
    if not console.is_terminal:  # a log or a pipe: whole table lines, not 80-column cuts
        columns = os.environ.get("COLUMNS", "")
        console.width = int(columns) if columns.isdigit() else WIDE


def _live() -> bool:
    """Progress bars only on a terminal, and not with -q; a log gets one line per trial."""
    return verbosity() > QUIET and console.is_terminal


WIDE = 200  # columns of the tables written to a log or a pipe


def _say(msg: str) -> None:
    """A status line (dim), unless -q."""
    if verbosity() > QUIET:
        console.print(f"[dim]{escape(msg)}[/]")  # a message is text, not markup ([train])


@app.command()
@user_errors
def search(
    technique: Annotated[TechniqueName, typer.Option(help="Technique to search.")],
    data: Annotated[Path | None, typer.Option(
        exists=True, file_okay=False, metavar="DIR",
        help="TAU-layout dataset \\[default: built-in demo data].")
    ] = None,
    trials: Annotated[int | None, typer.Option(
        min=0, metavar="N", help="Trials to add to the study \\[default: 10; no limit when only "
        "--timeout is given]; a proposal over the size limit is recorded, not counted; 0 adds "
        "none and finishes an existing study (an interrupted confirmation).")] = None,
    timeout: Annotated[float | None, typer.Option(
        min=1, metavar="SECONDS", help="Stop starting trials after this long.")] = None,
    budget_kb: Annotated[float | None, typer.Option(
        min=1, metavar="KB",
        help="Model-size limit in the rule's KB \\[default: the rule's limit].")] = None,
    rule: Annotated[RuleName, typer.Option(
        metavar="RULE", help="Size rule: dcase2020, params (500 KB); dcase2021 (128 KB of non-zero "
        "values); dcase2022, dcase2023, dcase2024 (128 KB and 30 MMACs per second of audio).")
    ] = RuleName("dcase2020"),
    max_mmacs: Annotated[float | None, typer.Option(
        min=0.001, metavar="MMACS",
        help="MACs limit in millions per inference, counted as the rule counts them "
                        "\\[default: the rule's limit, if any].")] = None,
    storage: StorageOpt = None,
    study: Annotated[str | None, typer.Option(
        metavar="NAME", help="Study name \\[default: technique].")] = None,
    space: Annotated[Path | None, typer.Option(
        metavar="FILE|NAME", help="Search-space TOML, or a shipped space's name (kd-small) "
        "\\[default: the shipped <t>.toml].")
    ] = None,
    seed: Annotated[int, typer.Option(metavar="N", help="Seed of sampler, split and training.")
                    ] = 0,
    epochs: Annotated[int | None, typer.Option(min=1, metavar="N", help="Epochs per trial.")
                      ] = None,
    device: DeviceOpt = "auto",
    gcc: Annotated[bool | None, typer.Option(
        "--gcc/--no-gcc", help="gcc only: fix the GCC plane on/off \\[default: searched].")
    ] = None,
    teacher_epochs: Annotated[int | None, typer.Option(
        min=1, metavar="N", help="kd: train the teacher for N epochs (its min_clips_seen off) "
        "\\[default: the space's \\[teacher] budget].")] = None,
    jobs: Annotated[int, typer.Option(
        min=1, metavar="N",
        help="Worker processes on this machine sharing the study; they draw --trials from one "
        "budget, and the confirmation's runs go N at a time (with --trials 0 too).")] = 1,
    retry_failed: Annotated[int, typer.Option(
        min=0, metavar="N", help="Run a trial of a killed worker again, up to N times.")] = 0,
    cv: Annotated[int | None, typer.Option(
        min=0, metavar="K",
        help="Score each trial by K-fold cross-validation over fold1_train (grouped by "
                    "identifier); 0 = one validation split \\[default: 5 folds when the split "
                    "would validate on under 300 clips or on clips of under 5 identifiers, at most "
                    "one per identifier, else 0].")] = None,
    confirm_top: Annotated[int | None, typer.Option(
        min=1, metavar="N",
        help="After the trials, score the best N configurations and the paper's again ... "
        "\\[default: 3; 2 on the built-in demo]")] = None,
    confirm_seeds: Annotated[int | None, typer.Option(
        min=0, metavar="N",
        help="... with this many fresh seeds each; retrain and export take the best "
                    "mean (0 = the single best trial) \\[default: 2; 1 on the built-in "
                    "demo].")] = None,
    confirm_max_seeds: Annotated[int | None, typer.Option(
        min=0, metavar="N",
        help="... and the best two, while their means are under 2 standard errors apart, one "
             "more seed each up to N \\[default: twice --confirm-seeds; none on the built-in "
             "demo].")] = None,
    init_from: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, metavar="FILE",
        help="Start every trial's model from this safetensors checkpoint (asc-auto pretrain); "
             "fixes the architecture to the checkpoint's.")] = None,
    teacher: Annotated[list[Path] | None, typer.Option(
        exists=True, dir_okay=False, metavar="FILE",
        help="kd: start the teacher from this checkpoint (asc-auto pretrain --technique kd), "
             "fine-tuned here; repeat for an ensemble.")] = None,
    teacher_logits: Annotated[list[Path] | None, typer.Option(
        exists=True, dir_okay=False, metavar="FILE",
        help="kd, int8, lt: distil from stored teacher outputs (.npz: asc-auto teacher-logits, "
             "predict --logits; see docs/GUIDE.md); repeat for an ensemble (logits averaged).")
    ] = None,
    distil_from: Annotated[TechniqueName | None, typer.Option(
        metavar="TECHNIQUE",
        help="kd, int8, lt: distil from this technique's paper configuration (e.g. baseline, "
             "the DCASE CNN), trained first in study <study>-teacher-TECHNIQUE and made a "
             "teacher as teacher-logits does; reused on later runs.")] = None,
    distil_folds: Annotated[int, typer.Option(
        min=2, metavar="K", help="--distil-from: fold models measuring the teacher out of "
        "fold.")] = 5,
    initial_design: Annotated[InitialDesign, typer.Option(
        metavar="KIND", help="Start-up trials after the paper trial: 'pairs' covers every pair "
        "of categorical values, 'values' every value, each with the other parameters drawn to "
        "fit the limit; 'auto' = pairs when they take at most half of --trials, else values; "
        "'none' = TPE's random start-up only. Set when the study starts.")
    ] = InitialDesign("auto"),
    pruner: Annotated[PrunerKind, typer.Option(
        metavar="KIND", help="Stop trials early: 'hyperband' stops, at half the epochs, those "
        "in the bottom two thirds that trail the top third by more than the validation clips' "
        "noise; 'none' trains every trial to the end. Per run: a resumed study may change "
        "it.")] = PrunerKind("hyperband"),
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Search one technique's configurations under the size limit; resumes an existing study."""
    overrides: dict[str, dict[str, object]] = {}
    if gcc is not None:
        if technique.value != "gcc":
            raise AscError("--gcc/--no-gcc applies to --technique gcc only")
        overrides["gcc"] = {"use_gcc": gcc}
    if teacher_epochs is not None:  # the teacher's cost: its epochs, not a clips-seen budget
        if technique.value != "kd":
            raise AscError("--teacher-epochs applies to --technique kd only")
        overrides["teacher"] = {"epochs": teacher_epochs, "min_clips_seen": 0}
    if trials is None:  # --timeout alone: as many trials as fit in the time
        trials = None if timeout is not None else 10
    opts = SearchOptions(
        technique=technique.value, data=data, trials=trials, timeout=timeout,
        budget_kb=budget_kb, max_mmacs=max_mmacs, rule=rule.value, storage=storage,
        study=study, space=resolve_space(space),
        seed=seed, epochs=epochs, home=home, device=device, overrides=overrides,
        retry_failed=retry_failed, cv=cv, confirm_top=confirm_top, confirm_seeds=confirm_seeds,
        confirm_max_seeds=confirm_max_seeds,
        init_from=init_from, teachers=tuple(teacher or ()),
        teacher_logits=tuple(teacher_logits or ()), progress=_live(),
        initial_design=initial_design.value, pruner=pruner.value,
    )
    if distil_from is not None:  # the teacher first: its file joins --teacher-logits
        from asc_auto.distil_from import build_teacher

        made = build_teacher(opts, distil_from.value, folds=distil_folds, jobs=jobs,
                             status=_say)
        _say(made.line())
        opts = dataclasses.replace(opts, teacher_logits=(*opts.teacher_logits, made.file))
    if jobs > 1 and trials != 0:  # --trials 0: no trial for a worker to run
        from asc_auto.workers import run_parallel

        result = run_parallel(opts, jobs, status=_say)
    elif jobs > 1:  # finishing a study: its confirmation runs side by side in `jobs` processes
        from asc_auto.workers import confirm_pool

        result = run_search(opts, status=_say, score_many=confirm_pool(opts, jobs, _say))
    else:
        result = run_search(opts, status=_say)
    _print_study(result)
    if trials != 0:  # --trials 0 (finishing a confirmation): the user knows the way
        from asc_auto.overview import next_steps, studies_data

        try:
            others = studies_data(open_storage(storage or default_storage(home)))
        except AscError:  # nothing stored where the options point: nothing to compare with
            others = []
        _say(next_steps(result, others, _where(storage, home)))


@app.command()
@user_errors
def show(
    study: StudyOpt,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print the study as JSON (for scripts) instead of tables.")] = False,
    storage: StorageOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Print a study's best feasible trials and its accuracy/size Pareto front."""
    loaded = _load(study, storage, home)
    if json_out:
        from asc_auto.overview import show_data, studies_data

        row = next(r for r in studies_data(open_storage(storage or default_storage(home)))
                   if r["study"] == study)
        _print_json({**show_data(loaded), "vs_baseline": row["vs_baseline"],
                     "reference": row["reference"]})
    else:
        _print_study(loaded)
        picked = pick_trial(loaded).number if feasible_trials(loaded) else None
        retrained = StudyRecord.from_study(loaded).retrain_of(picked)
        if retrained:  # what retrain measured, and where its model stands
            from asc_auto.report import retrained_text

            console.print(escape(f"retrained, evaluate fold: {retrained_text(retrained, picked)}; "
                                 f"checkpoints in {retrained.get('folder', '?')}"))
            _print_baseline_line(storage or default_storage(home), study, _where(storage, home))


@app.command()
@user_errors
def studies(
    json_out: Annotated[bool, typer.Option(
        "--json", help="Print the list as JSON (for scripts) instead of a table.")] = False,
    storage: StorageOpt = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """List every study: technique, trials by state, best, pick, what was retrained."""
    from asc_auto.overview import studies_data, studies_overview_table

    rows = studies_data(open_storage(storage or default_storage(home)))
    if json_out:
        _print_json(rows)
    elif not rows:
        console.print(f"no studies in {storage or default_storage(home)}")
    else:
        console.print(studies_overview_table(rows))


def _print_json(data: object) -> None:
    """Plain JSON on stdout (no rich markup, highlighting or wrapping): pipe it to jq."""
    import json
    import sys

    sys.stdout.write(json.dumps(data, indent=2, allow_nan=False) + "\n")


def _load(study: str, storage: str | None, home: Path) -> optuna.Study:
    store = open_storage(storage or default_storage(home))
    try:
        return optuna.load_study(study_name=study, storage=store)
    except KeyError:
        names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(store)) or "none"
        raise AscError(f"no study {study!r} in {storage or default_storage(home)}; "
                       f"studies there: {names}") from None


@app.command()
@user_errors
def retrain(
    study: StudyOpt,
    storage: StorageOpt = None,
    seeds: Annotated[int, typer.Option(min=1, metavar="N", help="Seeds to retrain with.")] = 3,
    epochs: Annotated[int | None, typer.Option(
        min=1, metavar="N", help="Epochs \\[default: those that see the clips each search "
        "training saw].")] = None,
    trial: Annotated[int | None, typer.Option(
        metavar="N",
        help="Trial to retrain \\[default: the confirmed winner, else the best feasible].")] = None,
    device: DeviceOpt = "auto",
    home: HomeOpt = DEFAULT_HOME,
    data: MovedDataOpt = None,
    jobs: Annotated[int, typer.Option(
        min=1, metavar="N",
        help="Train N seeds side by side in processes, each with its share of the CPU cores "
        "or, on CUDA, the GPUs round robin.")] = 1,
) -> None:
    """Retrain the picked configuration (the confirmed winner, else the best feasible) on all of
    fold1_train; score the evaluate fold."""
    from asc_auto.retrain import retrain as run_retrain

    loaded = _load(study, storage, home)
    result = run_retrain(loaded, seeds=seeds, epochs=epochs, trial_number=trial, home=home,
                         device=device, progress=_live(), status=_say, data=data, jobs=jobs,
                         storage=storage or default_storage(home))
    table = Table(title=f"{study}: trial {result.trial} retrained, evaluate fold",
                  title_justify="left")
    counts = result.class_clips or (0,) * len(result.labels)
    ptq = any(s.accuracy_ptq is not None for s in result.seeds)  # int8 with QAT epochs
    for col in ("seed", "accuracy", "fp32 acc", *(("before QAT",) if ptq else ()), "log loss",
                *(f"{label} n={n}" if n else label for label, n in zip(result.labels, counts,
                                                                          strict=True))):
        table.add_column(col, justify="right")
    for s in result.seeds:
        before = () if not ptq else ("-" if s.accuracy_ptq is None else f"{s.accuracy_ptq:.4f}",)
        table.add_row(str(s.seed), f"{s.accuracy:.4f}", f"{s.accuracy_fp32:.4f}", *before,
                      f"{s.log_loss:.4f}", *(f"{p:.4f}" for p in s.per_class))
    console.print(table)
    said = seeds_text([s.accuracy for s in result.seeds], result.eval_clips,
                      [s.correct for s in result.seeds])
    console.print(f"evaluate accuracy {said}; "
                  f"checkpoints in {result.folder}")
    note = class_note(counts)
    if note:
        console.print(escape(note))
    for line in retrain_teacher_lines(result.teacher_accuracy, result.eval_clips or 0,
                                      [s.accuracy for s in result.seeds]):
        console.print(f"[yellow]{escape(line)}[/]" if line.startswith("warning") else escape(line))
    by_source = result.per_identifier_mean()
    if by_source:
        console.print(f"by identifier (mean over seeds; the fold holds {len(by_source)}, so its "
                      f"accuracy depends on which): "
                      + ", ".join(f"{k} {v:.4f}" + (f" (n={result.identifier_clips[k]})"
                                                    if k in result.identifier_clips else "")
                                  for k, v in by_source.items()))
    _print_baseline_line(storage or default_storage(home), study, _where(storage, home))


@app.command()
@user_errors
def pretrain(
    technique: Annotated[TechniqueName, typer.Option(
        help=f"Technique whose model to pretrain: {', '.join(pretrainable())} (kd: its teacher).")],
    data: Annotated[Path, typer.Option(
        exists=True, file_okay=False, metavar="DIR", help="Another labelled TAU-layout dataset.")],
    out: Annotated[Path, typer.Option(
        dir_okay=False, metavar="FILE",
        help="Checkpoint to write (.safetensors; a .json card beside it).")],
    space: Annotated[Path | None, typer.Option(
        metavar="FILE|NAME", help="Search-space TOML, or a shipped space's name (kd-small) "
        "\\[default: the shipped <t>.toml].")
    ] = None,
    epochs: Annotated[int | None, typer.Option(
        min=1, metavar="N",
        help="Epochs \\[default: the space's \\[train] (kd: \\[teacher]) budget].")
    ] = None,
    seed: Annotated[int, typer.Option(
        metavar="N", help="Seed of the initial weights and training.")] = 0,
    device: DeviceOpt = "auto",
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Pretrain a technique's model on another dataset, for search --init-from / --teacher."""
    from asc_auto.pretrain import PretrainOptions
    from asc_auto.pretrain import pretrain as run_pretrain

    r = run_pretrain(PretrainOptions(
        technique=technique.value, data=data, out=out, space=resolve_space(space),
        epochs=epochs, seed=seed, device=device, home=home, progress=_live()),
        status=_say)
    console.print(f"pretrained {technique.value} ({r.params:,} params, {r.seconds:.0f} s): "
                  f"evaluate accuracy {accuracy_text(r.accuracy, r.evaluate_clips)} on "
                  f"{r.evaluate_clips} clips; "
                  f"[bold]{r.checkpoint}[/] (sha256 {r.sha256[:12]}), card {r.card}")


@app.command()
@user_errors
def report(
    storage: StorageOpt = None,
    out: Annotated[Path | None, typer.Option(
        file_okay=False, metavar="DIR",
        help="Folder for plots and summary.md \\[default: <home>/report].")
    ] = None,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Compare all studies with the seed paper; write PNG plots and a Markdown summary."""
    from asc_auto.against_baseline import teacher_hint, warning_line
    from asc_auto.summary import write_report  # matplotlib only when asked for

    url = storage or default_storage(home)
    store = open_storage(url)
    if not optuna.get_all_study_summaries(store, include_best_trial=False):  # write nothing
        raise AscError(f"no studies in {url}; fix: run `asc-auto search --technique kd` first")
    summary, rows = write_report(store, out if out is not None else home / "report")
    console.print(studies_table(rows))
    for r in rows:  # what each technique says about its study (kd: the teacher)
        attrs = optuna.load_study(study_name=r.study, storage=store).user_attrs
        for line in _study_notes(attrs, r.best):
            console.print(escape(f"{r.study}: ") + (f"[yellow]{escape(line)}[/]"
                                                    if line.startswith("warning")
                                                    else escape(line.strip())))
        below = (warning_line(r.study, r.vs_baseline, teacher_hint(r.technique, r.sources))
                 if r.vs_baseline else None)
        if below:
            console.print(f"[yellow]{escape(below)}[/]")
    console.print(paper_table())
    console.print(f"plots and summary: [bold]{summary}[/]")


@app.command()
@user_errors
def clean(
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List what would be removed; remove nothing.")] = False,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Remove what asc-auto wrote under --home (DB, caches, retrains, reports); keep the rest."""
    from asc_auto.clean import clean as run_clean
    from asc_auto.clean import plan_clean

    plan = plan_clean(home) if dry_run else run_clean(home)
    verb = "would remove" if dry_run else "removed"
    for path in plan.remove:
        console.print(f"{verb} {path}")
    console.print(f"{verb} {len(plan.remove)} entries asc-auto wrote under {home}; kept "
                  f"{len(plan.keep)} it did not write"
                  + (f" ({', '.join(p.name for p in plan.keep[:5])}"
                     f"{', ...' if len(plan.keep) > 5 else ''})" if plan.keep else ""))


@app.command()
@user_errors
def dashboard(
    storage: StorageOpt = None,
    host: Annotated[str, typer.Option(
        metavar="ADDRESS", help="Interface to bind (loopback unless told).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, metavar="PORT", help="Port.")] = 8080,
    home: HomeOpt = DEFAULT_HOME,
) -> None:
    """Start optuna-dashboard on the study storage (Ctrl-C stops it)."""
    from optuna_dashboard import run_server

    from asc_auto.dashboard import name_objective

    url = storage or default_storage(home)
    store = open_storage(url)
    for summary in optuna.get_all_study_summaries(store, include_best_trial=False):
        if StudyRecord.from_attrs(summary.user_attrs).technique is not None:  # ours: older
            name_objective(optuna.load_study(  # ones unnamed; naming twice is harmless
                study_name=summary.study_name, storage=store))
    console.print(f"optuna-dashboard on [bold]http://{host}:{port}[/] for {url} (Ctrl-C stops)")
    # SIGTERM stops it wherever it lands: raised as KeyboardInterrupt inside a request being
    # answered, wsgiref's handler would log it and serve on. The server holds nothing to save.
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(130))
    run_server(store, host=host, port=port)


@app.command()
@user_errors
def export(
    study: Annotated[str, typer.Option(metavar="NAME", help="Study name (retrained).")],
    out: Annotated[Path, typer.Option(
        file_okay=False, metavar="DIR", help="Folder for the package.")],
    label: Annotated[str | None, typer.Option(
        metavar="LABEL", help="DCASE submission label <Lastname>_<Institute>_task1b_<1-4> "
        "\\[default: from the corresponding author, else asc-auto_<study>_task1b_1].")
    ] = None,
    info: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, metavar="FILE",
        help="TOML with \\[\\[authors]] (lastname, firstname, email, corresponding, "
             "\\[authors.affiliation] abbreviation, institute, department, location) and "
             "\\[submission] name, abbreviation, source_code (see docs/GUIDE.md).")] = None,
    author: Annotated[list[str] | None, typer.Option(
        metavar="'LAST;FIRST;EMAIL'",
        help="An author (repeat; the first is the corresponding one), instead of --info.")
    ] = None,
    affiliation: Annotated[str | None, typer.Option(
        metavar="'ABBR;INSTITUTE;DEPARTMENT;LOCATION'",
        help="The --author's affiliation.")] = None,
    name: Annotated[str | None, typer.Option(
        metavar="TEXT", help="System name \\[default: asc-auto <technique> trial N, PRECISION].")
    ] = None,
    abbreviation: Annotated[str | None, typer.Option(
        metavar="TEXT", help="System abbreviation, at most 10 characters "
        "\\[default: e.g. AA-KD-F16].")] = None,
    seed: Annotated[int, typer.Option(min=0, metavar="N", help="Retrain seed to export.")] = 0,
    trial: Annotated[int | None, typer.Option(
        min=0, metavar="N", help="Retrained trial to export \\[default: the pick, as retrain's].")
    ] = None,
    eval_data: Annotated[Path | None, typer.Option(
        exists=True, file_okay=False, metavar="DIR",
        help="Evaluation WAVs for <label>.output.csv.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an earlier export package at --out (never any other folder).")
    ] = False,
    storage: StorageOpt = None,
    home: HomeOpt = DEFAULT_HOME,
    data: MovedDataOpt = None,
) -> None:
    """Write the deployable model and the DCASE2020 Task 1b package; re-check it first."""
    from asc_auto.export import check_out_folder, export_study
    from asc_auto.submission import SubmissionInfo, info_from_options, merged, read_info

    check_out_folder(out, force)  # before any slow work
    who = merged(read_info(info) if info else SubmissionInfo(),
                 info_from_options(list(author or []), affiliation), name, abbreviation)
    r = export_study(_load(study, storage, home), out, label=label, seed=seed, home=home,
                     eval_data=eval_data, force=force, status=_say, info=who, data=data,
                     trial=trial)
    console.print(f"exported trial {r.trial} seed {r.seed} ({r.precision}) to [bold]{r.folder}[/]"
                  f": reloaded IR accuracy {r.accuracy_text} (retrain {r.accuracy_retrain:.4f}), "
                  f"{r.size.size_kb:.2f} KB of {r.size.limit_kb:.0f} KB")


@app.command()
@user_errors
def predict(
    model: Annotated[Path, typer.Option(exists=True, file_okay=False, metavar="DIR",
                                        help="Folder written by asc-auto export.")],
    files: Annotated[list[Path] | None, typer.Argument(
        metavar="WAV", help="WAV files (or --data).")] = None,
    data: Annotated[Path | None, typer.Option(
        exists=True, file_okay=False, metavar="DIR", help="Folder of WAV files.")] = None,
    out: Annotated[Path, typer.Option(dir_okay=False, metavar="FILE", help="Output CSV.")
                   ] = Path("output.csv"),
    logits: Annotated[Path | None, typer.Option(
        dir_okay=False, metavar="FILE",
        help="Also write the model's logits as stored teacher outputs (.npz) for search "
             "--teacher-logits; run on the dataset's folder (--data) so names match its CSVs.")
    ] = None,
) -> None:
    """Classify WAV files with an exported model; write the DCASE output CSV."""
    from asc_auto.package import read_export
    from asc_auto.predict import predict as run_predict
    from asc_auto.predict import wav_files, write_logits, write_output_csv

    if (data is None) == (not files):
        raise AscError("give either --data DIR or WAV files, not both and not neither")
    paths = wav_files(data) if data is not None else list(files or [])
    preds = run_predict(model, paths, root=data)
    labels = tuple(read_export(model)["labels"])
    write_output_csv(preds, labels, out)
    if logits is not None:
        rows = write_logits(preds, labels, logits)
        console.print(f"logits of {rows} files: [bold]{escape(str(logits))}[/] (search "
                      "--teacher-logits FILE distils from them)")
    failed = [p for p in preds if p.error]
    for p in failed:
        console.print(f"[red]{escape(f'{p.file}: {p.error}')}[/]")
    console.print(f"{len(preds) - len(failed)} of {len(preds)} files classified; "
                  f"[bold]{out}[/]")
    if failed:
        raise typer.Exit(1)


@app.command("teacher-logits")
@user_errors
def teacher_logits(
    study: StudyOpt,
    out: Annotated[Path, typer.Option(
        dir_okay=False, metavar="FILE",
        help="The .npz to write, for search --teacher-logits FILE.")],
    folds: Annotated[int, typer.Option(
        min=2, metavar="K", help="Grouped folds of fold1_train: K models, each trained on "
        "K-1 of them and scoring the one it left out.")] = 5,
    trial: Annotated[int | None, typer.Option(
        metavar="N",
        help="Trial to train \\[default: the confirmed winner, else the best feasible].")] = None,
    epochs: Annotated[int | None, typer.Option(
        min=1, metavar="N",
        help="Epochs of each fold model \\[default: those that see the clips each search "
        "training saw, as retrain's].")] = None,
    seed: Annotated[int, typer.Option(
        min=0, metavar="N", help="Seed of the folds and of the training.")] = 0,
    targets: Annotated[str, typer.Option(
        metavar="all|oof", help="What students learn from: the outputs of the model trained on "
        "all of fold1_train (the retrain seed; measured to teach more) or the out-of-fold ones. "
        "The out-of-fold ones are written either way, for the teacher's honest accuracy.")
    ] = "all",
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an existing --out file.")] = False,
    jobs: Annotated[int, typer.Option(
        min=1, metavar="N",
        help="Train N fold models side by side in processes, each with its share of the CPU "
        "cores or, on CUDA, the GPUs round robin.")] = 1,
    storage: StorageOpt = None,
    device: DeviceOpt = "auto",
    home: HomeOpt = DEFAULT_HOME,
    data: MovedDataOpt = None,
) -> None:
    """A study's configuration as a teacher for search --teacher-logits: its outputs to learn
    from, and out-of-fold ones (K fold models, each scoring the clips it left out) for an
    honest teacher accuracy."""
    from asc_auto.crossfit import teacher_logits as run_crossfit
    from asc_auto.stats import binomial_se

    if out.exists() and not force:
        raise AscError(f"{out}: exists; fix: another --out, or --force to replace it")
    table = Table(title=f"{study}: out-of-fold outputs", title_justify="left")
    for col in ("fold", "train clips", "held out", "epochs", "held-out acc", "training"):
        table.add_column(col, justify="right")

    def row(f: Any) -> None:
        se = binomial_se(f.accuracy, f.n_heldout)
        table.add_row(str(f.fold + 1), str(f.n_train), str(f.n_heldout), str(f.epochs),
                      f"{f.accuracy:.4f} ± {se:.4f}",
                      "on disk" if f.reused else f"{f.seconds:.0f} s")

    r = run_crossfit(_load(study, storage, home), out, folds=folds, seed=seed,
                     trial_number=trial, home=home, epochs=epochs, device=device,
                     progress=_live(), status=_say, data=data, on_fold=row, jobs=jobs,
                     storage=storage or default_storage(home), targets=targets)
    console.print(table)
    whose = ("the model trained on all of fold1_train" if r.targets == "all"
             else f"the {len(r.folds)} fold models' mean")
    console.print(f"trial {r.trial}: out-of-fold accuracy {r.oof_accuracy:.4f} ± {r.oof_se:.4f} "
                  f"on {r.oof_clips} training clips (what a search shows as the teacher's)"
                  + ("" if r.eval_accuracy is None else
                     f"; targets from {whose}, on the evaluate fold "
                     f"{r.eval_accuracy:.4f} ± {r.eval_se:.4f} ({r.eval_clips} clips)"))
    console.print(f"wrote [bold]{escape(str(r.out))}[/] (search --teacher-logits FILE distils "
                  f"from it); fold models in {escape(str(r.folder))}")


def _study_notes(attrs: dict[str, Any], best: FrozenTrial | None) -> list[str]:
    """What the study's technique prints about it (nothing for an unknown technique)."""
    technique = TECHNIQUES.get(str(StudyRecord.from_attrs(attrs).technique))
    return technique().study_notes(attrs, best) if technique is not None else []


def _where(storage: str | None, home: Path) -> str:
    """The --storage/--home options a suggested command needs: none that the environment
    already sets, and a server URL's password masked (it is not printed)."""
    said = ""
    if storage and os.environ.get("ASC_AUTO_STORAGE") != storage:
        said += " --storage " + re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", storage)
    if home != DEFAULT_HOME and os.environ.get("ASC_AUTO_HOME") != str(home):
        said += f" --home {home}"
    return said


def _print_baseline_line(url: str, study: str, where: str) -> None:
    """The retrained model against the baseline CNN on the same data (a warning in yellow)."""
    from asc_auto.overview import baseline_line

    for line in (baseline_line(open_storage(url), study, where) or "").splitlines():
        console.print(f"[yellow]{escape(line)}[/]" if line.startswith("warning")
                      else escape(line))


def _print_study(study: optuna.Study) -> None:
    console.print(f"[bold]{study.study_name}[/]: {summary_line(study)}")
    ranked = feasible_trials(study)
    for line in _study_notes(study.user_attrs, ranked[0] if ranked else None):
        console.print(f"[yellow]{escape(line)}[/]" if line.startswith("warning") else escape(line))
    running = running_table(study)
    if running is not None:
        console.print(running)
    if ranked:
        console.print(best_table(study))
        console.print(pareto_table(study))
    else:  # two empty tables said less than this
        console.print("no trial has finished inside the limits yet")
    tried = choices_table(study)
    if tried is not None:
        console.print(tried)
        for line in (design_line(study), untested_choices(study)):
            if line:
                console.print(escape(line))
    confirmed = confirmation_table(study)
    if confirmed is not None:
        console.print(confirmed)
    for line in (reference_line(study), confirming_line(study), unfinished_line(study)):
        if line is not None:
            console.print(escape(line))
    if ranked:
        best = pick_trial(study)
        how = "confirmed pick" if best.number != ranked[0].number or confirmed else "best"
        console.print(config_table(best, f"{how}: trial {best.number} (what retrain takes)"))


if __name__ == "__main__":  # pragma: no cover
    app()
