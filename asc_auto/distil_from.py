"""`search --distil-from TECHNIQUE`: another technique's paper configuration as the search's
teacher, in one command.

By hand it is three (docs/GUIDE.md, "Stored teacher outputs"): `search --technique baseline
--trials 1 --cv 0`, `teacher-logits --study ...` and `search --teacher-logits FILE`. Why it is
worth one flag: on small data the DCASE baseline CNN out-learns the raw-waveform AclNet networks
(office16 at the default budget: 97.5 % against the int8 pick's 92.9 % FP32), and its outputs
lift them (the same network distilled: 97.0 % FP32 on every seed; docs/BENCHMARKS.md).

The teacher study is `<study>-teacher-<technique>` in the same storage: its paper trial, at the
search's --epochs and --seed, on the search's data, under the default size rule (a teacher is
never submitted). Its file, `<home>/<teacher study>/teacher-logits-trial<N>-folds<K>-seed<S>.npz`,
is keyed by everything it depends on (the study fixes data, epochs, space and split; the name
the trial, folds and seed) and reused, never rewritten, so a resumed student study finds the
sha256 it recorded. Several workers building it at once build it once (a file lock).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna

from asc_auto.errors import UsageError
from asc_auto.io import atomic_path, build_lock
from asc_auto.keys import study_folder
from asc_auto.records import feasible_trials
from asc_auto.schema import TrialRecord
from asc_auto.search import SearchOptions, run_search
from asc_auto.stats import binomial_se
from asc_auto.storage import default_storage, open_storage
from asc_auto.techniques import TECHNIQUES
from asc_auto.techniques.base import get_technique

LOGITS = "teacher_logits"  # the kind of teacher file a distilling technique takes


@dataclass(frozen=True)
class DistilTeacher:
    """The teacher a search distils from: its file and how good it is, measured out of fold
    (every training clip by a model that did not train on it) and on the evaluate fold."""

    technique: str
    study: str
    trial: int
    file: Path
    oof_accuracy: float
    oof_clips: int
    eval_accuracy: float | None
    eval_clips: int
    reused: bool  # an earlier run's file

    def line(self) -> str:
        """One line for the search's log: where the teacher is and its honest accuracy."""
        oof = (f"{self.oof_accuracy:.4f} ± {binomial_se(self.oof_accuracy, self.oof_clips):.4f}"
               f" out of fold ({self.oof_clips} clips)")
        ev = ("" if self.eval_accuracy is None else
              f", {self.eval_accuracy:.4f} ± "
              f"{binomial_se(self.eval_accuracy, self.eval_clips):.4f} on the evaluate fold "
              f"({self.eval_clips} clips)")
        how = "reused" if self.reused else "built"
        return (f"teacher: {self.technique}'s paper configuration (study '{self.study}', trial "
                f"{self.trial}), {oof}{ev}; {how} {self.file}")


def teacher_study_name(student_study: str, technique: str) -> str:
    """The teacher's study beside the student's, named after both."""
    return f"{student_study}-teacher-{technique}"


def distilling_techniques() -> list[str]:
    """Techniques that learn from stored teacher outputs (what --distil-from teaches)."""
    return sorted(n for n in TECHNIQUES if LOGITS in get_technique(n).teacher_files)


def check_distil_from(student: str, teacher: str) -> None:
    """Refuse, before any training, a student that cannot learn from stored outputs."""
    get_technique(teacher)  # an unknown name: one line listing the known ones
    if LOGITS not in get_technique(student).teacher_files:
        raise UsageError(f"--distil-from applies to --technique "
                         f"{', '.join(distilling_techniques())} (they learn from stored teacher "
                         f"outputs), not {student}")


def build_teacher(opts: SearchOptions, teacher: str, folds: int = 5, jobs: int = 1,
                  status: Callable[[str], None] = print) -> DistilTeacher:
    """The teacher file for `opts`' search: `teacher`'s paper trial trained (once) in its own
    study, then made a teacher by `teacher-logits` (`folds` fold models for its honest
    accuracy, the all-clips model's outputs as the targets), or an earlier run's file."""
    from asc_auto.crossfit import teacher_logits

    check_distil_from(opts.technique, teacher)
    if folds < 2:
        raise UsageError(f"--distil-folds {folds}: out-of-fold outputs need at least 2 folds")
    name = teacher_study_name(opts.study or opts.technique, teacher)
    url = opts.storage or default_storage(opts.home)
    done = _existing(name, url)
    trained = done is not None and _paper_trial(done) is not None
    if not trained:
        status(f"teacher: training {teacher}'s paper configuration in study '{name}'")
    # Done already: --trials 0 only runs the resume checks, so a teacher study made on other
    # data, epochs or seed is refused in one line instead of teaching this search.
    study = run_search(SearchOptions(
        technique=teacher, data=opts.data,
        trials=0 if trained else 1,
        storage=opts.storage, study=name, seed=opts.seed, epochs=opts.epochs, home=opts.home,
        device=opts.device, progress=opts.progress, cv=0, confirm_seeds=0,
        initial_design="none", pruner="none"), status=status)
    paper = _paper_trial(study)
    if paper is None:
        raise UsageError(f"study '{name}': {teacher}'s paper configuration did not finish "
                         "within the size limit, so there is no teacher; fix: see "
                         f"`asc-auto show --study {name}`")
    out = (study_folder(opts.home, name)
           / f"teacher-logits-trial{paper}-folds{folds}-seed{opts.seed}.npz")
    numbers = out.with_suffix(".json")
    with build_lock(out, status):
        if out.exists() and numbers.exists():
            made = json.loads(numbers.read_text())
            return DistilTeacher(teacher, name, paper, out, made["oof_accuracy"],
                                 made["oof_clips"], made["eval_accuracy"], made["eval_clips"],
                                 reused=True)
        r = teacher_logits(study, out, folds=folds, seed=opts.seed, trial_number=paper,
                           home=opts.home, device=opts.device, progress=opts.progress,
                           status=status, data=opts.data, jobs=jobs, storage=url)
        made = {"oof_accuracy": r.oof_accuracy, "oof_clips": r.oof_clips,
                "eval_accuracy": r.eval_accuracy, "eval_clips": r.eval_clips}
        with atomic_path(numbers) as tmp:  # last: a file without its numbers is built again
            tmp.write_text(json.dumps(made, indent=1))
    return DistilTeacher(teacher, name, paper, out, r.oof_accuracy, r.oof_clips,
                         r.eval_accuracy, r.eval_clips, reused=False)


def _existing(study: str, url: str) -> optuna.Study | None:
    """The study, None before it exists."""
    try:
        return optuna.load_study(study_name=study, storage=open_storage(url, create=True))
    except KeyError:  # no such study yet
        return None


def _paper_trial(study: optuna.Study) -> int | None:
    """The number of the study's finished paper trial within the limit; None without one."""
    return next((t.number for t in feasible_trials(study)
                 if TrialRecord.from_trial(t).is_paper), None)
