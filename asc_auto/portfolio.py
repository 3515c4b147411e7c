"""The portfolio: configurations measured to do well on other data, tried after the paper trial.

Why: a short search (12 trials) meets each categorical value once or twice, drawn with random
values of everything else, and TPE rarely goes back to a value that met a poor combination.
Measured on fsdd (spoken digits) four times: the kd searches tried kernel 7 once each, with the
average pool, INT8 and a learning rate or mixup far from where it learns, and then picked
kernel-5 students 20-30 points below the kernel-7 student a hand ablation had found
(docs/BENCHMARKS.md). Auto-sklearn 2.0 starts its searches from such a portfolio; here it is the
space file's `[[portfolio]]` tables (space.py), each scored on the user's data like any trial, so
an entry that does not suit the data costs one trial and is not picked. Like the paper trial,
an entry trains to the end: Hyperband's rung would judge it by half a schedule, and the entries
it exists for learn slowly early (the kernel-7 student at lr 1e-3 against kernel 5 at 2.7e-3).

An entry is tried once per study: a resumed or extended study enqueues the entries it has not
tried (a new entry in the space file included; the portfolio is not part of the space's digest,
since it changes which points are tried, not what a trial of a point means).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from asc_auto.records import tried
from asc_auto.schema import PORTFOLIO, TrialRecord
from asc_auto.space import PortfolioEntry, SearchSpace


@dataclass
class Enqueued:
    """What `enqueue_portfolio` did: entry names enqueued, and those left out with why."""

    names: list[str]
    left_out: list[str]

    def describe(self) -> str:
        """One status line, or "" when there was nothing to enqueue or leave out."""
        parts = []
        if self.names:
            parts.append(f"portfolio: {', '.join(self.names)} enqueued after the paper trial "
                         "(configurations measured on other data; [[portfolio]] in the space)")
        if self.left_out:
            parts.append(f"portfolio left out: {'; '.join(self.left_out)}")
        return "; ".join(parts)


def tried_entries(study: optuna.Study) -> set[str]:
    """The names of the entries `study` has tried or holds waiting (`records.tried`)."""
    return {record.portfolio for t in study.get_trials(deepcopy=False)
            if (record := TrialRecord.from_trial(t)).source == PORTFOLIO
            and record.portfolio is not None and tried(t)}


def pending(space: SearchSpace, study: optuna.Study) -> list[PortfolioEntry]:
    """The space's entries the study has neither tried nor waiting, in the file's order."""
    done = tried_entries(study)
    return [e for e in space.portfolio if e.name not in done]


def enqueue_portfolio(study: optuna.Study, space: SearchSpace, room: int | None,
                      fits: Callable[[dict[str, Any]], bool]) -> Enqueued:
    """Enqueue the pending entries that fit the limits, at most `room` (None: all); an entry
    over the limit is left out, not enqueued: it would be a trial spent on nothing."""
    done = Enqueued([], [])
    for entry in pending(space, study):
        if room is not None and len(done.names) >= room:
            done.left_out.append(f"{entry.name} (no room in --trials)")
            continue
        if not fits(dict(entry.point)):
            done.left_out.append(f"{entry.name} (over the size or MACs limit here)")
            continue
        study.enqueue_trial(space.trial_params(entry.point, partial=True), user_attrs=TrialRecord(
            source=PORTFOLIO, portfolio=entry.name).to_attrs())
        done.names.append(entry.name)
    return done
