"""The initial design: start-up trials that cover the space's categorical choices before TPE.

Why: TPE starts from a few random trials and then exploits what they found. A choice the random
start-up misses, or meets once in a poor combination, is rarely tried again. Measured: a 24-trial
kd search on fsdd (spoken digits) sampled kernel 7 once, with the average pool, and then tried
kernel 5 twenty times, while the kernel-7 max-pool student it never trained is 27-39 points
better at the same budget (docs/BENCHMARKS.md). Designed start-up trials are what SMAC and Ax
do; here every pair of categorical values is covered (a strength-2 covering array from
allpairspy, seeded with the paper trial's values) when the trial budget affords it, else every
single value. The other parameters of each row are drawn at random (Optuna's RandomSampler,
through the space's own `suggest`) until the model fits the size limit, so no designed trial is
wasted over the limit: a size check is milliseconds, a trial minutes to hours.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from allpairspy import AllPairs
from optuna.trial import TrialState

from asc_auto.errors import UsageError
from asc_auto.space import ParamSpec, SearchSpace

KINDS = ("auto", "pairs", "values", "none")
ATTEMPTS = 64  # random draws per row before it is left out as not fitting the limit


@dataclass
class Design:
    """What `initial_design` chose: full trial params per row, and the rows it left out."""

    kind: str  # "pairs", "values" or "none" (what "auto" resolved to)
    rows: list[dict[str, Any]] = field(default_factory=list)
    left_out: list[dict[str, Any]] = field(default_factory=list)  # categorical values only
    cut: int = 0  # rows not enqueued because --trials has no room for them

    def describe(self, names: Sequence[str]) -> str:
        """One status line: what the design covers, and how to turn it off (for a design with
        rows: search says nothing of an empty one)."""
        what = "pair" if self.kind == "pairs" else "value"
        line = (f"initial design: {len(self.rows)} trials after the paper trial cover every "
                f"{what} of {' x '.join(names)} before TPE "
                "(--initial-design none turns this off)")
        if self.cut:
            line = line.replace(" cover every", " cover part of every") + (
                f"; {self.cut} more rows do not fit in --trials")
        for row in self.left_out:
            line += (f"; left out {_show(row)}: none of {ATTEMPTS} random draws of the other "
                     "parameters fits the limit")
        return line


def categoricals(space: SearchSpace) -> list[ParamSpec]:
    """The searched categorical parameters with more than one choice."""
    return [p for p in space.params if p.type == "categorical" and len(p.choices) > 1]


def categorical_rows(space: SearchSpace, kind: str) -> list[dict[str, Any]]:
    """The categorical values of each designed trial; the paper trial's values count as run.

    "pairs": every pair of values of two parameters appears in the paper trial or a row;
    "values": every value of every parameter does, in as few rows as the widest parameter needs,
    with as many pairs as those rows can cover (one parameter: always this).
    """
    cats = categoricals(space)
    if kind == "none" or not cats:
        return []
    names = [p.name for p in cats]
    paper = [space.paper[n] for n in names]
    if kind == "pairs" and len(cats) >= 2:
        rows = [list(r) for r in AllPairs([list(p.choices) for p in cats],
                                          previously_tested=[paper])]
    else:
        rows = _value_rows([p.choices for p in cats], paper)
    return [dict(zip(names, row, strict=True)) for row in rows]


def _value_rows(choices: Sequence[Sequence[Any]], paper: Sequence[Any],
                steps: int = 4000, seed: int = 0) -> list[list[Any]]:
    """Rows that show every value not in the paper trial, as many as the widest parameter needs,
    arranged to cover as many pairs as those rows can (with the paper trial's).

    Why the arrangement: value i of every parameter in row i put all two-level parameters in
    lockstep (every int8 row with content crops also had log1p, every lt one also structured
    pruning at FP32), so no trial could say which of them its value owed. A seeded hill climb
    over the spare cells finds e.g. an lt design where each pair of its four two-level
    parameters appears in all four combinations, in the same 4 rows.
    """
    new = [[v for v in c if v != p] for c, p in zip(choices, paper, strict=True)]
    height = max(len(n) for n in new)
    if height == 0:
        return []
    rng = random.Random(seed)
    wide = max(range(len(new)), key=lambda j: len(new[j]))
    # each column: its new values, then spare cells; the widest keeps the choices' order
    cols = [n + [rng.choice(list(c)) for _ in range(height - len(n))]
            for c, n in zip(choices, new, strict=True)]
    for j, col in enumerate(cols):
        if j != wide:
            rng.shuffle(col)

    def shows_every_value(col: list[Any], j: int) -> bool:
        return all(v in col for v in new[j])

    def score() -> int:
        runs = [list(paper), *zip(*cols, strict=True)]
        return len({(a, r[a], b, r[b]) for r in runs
                    for a, b in itertools.combinations(range(len(cols)), 2)})

    best = score()
    free = [j for j, c in enumerate(choices) if j != wide and len(c) > 1]
    for _ in range(steps if free else 0):
        j, i = rng.choice(free), rng.randrange(height)
        old = cols[j][i]
        cols[j][i] = rng.choice(list(choices[j]))
        now = score() if shows_every_value(cols[j], j) else -1
        if now >= best:
            best = now
        else:
            cols[j][i] = old
    return [list(r) for r in zip(*cols, strict=True)]


def resolve_kind(space: SearchSpace, kind: str, trials: int | None) -> str:
    """"auto": pairs when they take at most half of the trials (with the paper trial), else
    values; with no trial count (--timeout alone) pairs."""
    if kind not in KINDS:
        raise UsageError(f"--initial-design {kind!r}: choose one of {', '.join(KINDS)}")
    if kind in ("auto", "pairs") and len(categoricals(space)) < 2:
        return "values"  # one parameter has no pairs
    if kind != "auto":
        return kind
    pairs = categorical_rows(space, "pairs")
    return "pairs" if trials is None or 1 + len(pairs) <= trials // 2 else "values"


def initial_design(space: SearchSpace, kind: str, trials: int | None,
                   fits: Callable[[dict[str, Any]], bool], seed: int) -> Design:
    """Full Optuna params for each designed trial, each checked by `fits(config)` (the size
    limit) before it is accepted; `trials` (the search's) decides "auto"."""
    kind = resolve_kind(space, kind, trials)
    design = Design(kind)
    rows = categorical_rows(space, kind)
    if trials is not None and len(rows) > trials - 1:  # the paper trial is one of `trials`
        design.cut = len(rows) - max(0, trials - 1)
        rows = rows[:max(0, trials - 1)]
    scratch = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for row in rows:
        for _ in range(ATTEMPTS):
            scratch.enqueue_trial(row)
            trial = scratch.ask()
            ok = fits(space.suggest(trial))
            scratch.tell(trial, state=TrialState.PRUNED)  # FAIL would log a warning
            if ok:
                design.rows.append(dict(trial.params))
                break
        else:
            design.left_out.append(row)
    return design


def _show(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items())
