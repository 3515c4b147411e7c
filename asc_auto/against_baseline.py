"""Each study's retrained accuracy against the `baseline` technique's on the same data.

A compressed model is worth its search only if it is not worse than the DCASE baseline CNN on
the user's own recordings (issue 10), so `report` and `studies` put the difference beside every
retrained study: the seed means' difference in points, ± its standard error (independent seeds,
each side's sample variance over its count; with each seed's per-clip results, also which clips
the evaluate fold holds, paired clip by clip), against the `baseline` study retrained on the same
data (by the dataset's content hash; with several, the one with the most seeds, then the first
by name). Studies on other data, or without a retrained baseline there, get none: nothing is
compared across datasets.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asc_auto.stats import paired_clip_se

BASELINE = "baseline"  # the technique every other is measured against


@dataclass(frozen=True)
class Gap:
    """A study's retrained mean minus the baseline's, in points, ± the SE of the difference
    (None when either side has one seed: no spread to say). `se_includes_clips`: whether the SE
    counts which clips the evaluate fold holds (paired clip by clip, `stats.paired_clip_se`)
    besides the seeds; False where a retrain predates each seed's per-clip results."""

    baseline_study: str
    points: float
    se: float | None
    se_includes_clips: bool = False

    def text(self) -> str:
        return points_text(self.points, self.se)


BEYOND_NOISE = 2.0  # standard errors a gap must pass to be called one (about 95 %)


def below_beyond_noise(gap: Gap) -> bool:
    """Whether the study is below the baseline by more than `BEYOND_NOISE` SE of the gap: a
    one-seed gap has no SE and is never called one."""
    return gap.se is not None and gap.points + BEYOND_NOISE * gap.se < 0


def warning_line(study: str, gap: Gap, teacher: str | None = None) -> str | None:
    """A warning for a study whose retrained pick is below the baseline CNN beyond the noise:
    what the search was for (beating it on this data) did not happen. `teacher`: the
    `teacher_hint` for its technique and starting points, put first among the fixes."""
    if not below_beyond_noise(gap):
        return None
    return (f"warning: {study}: its retrained model is {-gap.points:.1f} ± {gap.se:.1f} points "
            f"below the baseline CNN on the same data (study {gap.baseline_study!r}), beyond "
            f"the noise; fix: " + (f"{teacher}, " if teacher else "")
            + "a longer training budget (the default, 50,000 clips seen a "
            "training, where --epochs cut it), more --trials, or a pretrained start "
            "(--init-from); unless its size is what matters, the baseline is the better model "
            "here")


def teacher_hint(technique: str, sources: Mapping[str, Any] | None) -> str | None:
    """The fix measured to close most of the gap on small data for a technique that learns
    from stored teacher outputs alone (int8, lt) and a study that had none: the baseline CNN as
    its teacher. None for others (kd has its own teacher; baseline and gcc take none)."""
    from asc_auto.techniques.base import learns_from_stored_outputs_alone

    if not learns_from_stored_outputs_alone(technique):
        return None
    if sources and sources.get("teacher_logits"):
        return None
    return (f"the baseline CNN as its teacher (asc-auto search --technique {technique} "
            "--distil-from baseline, a new --study; office16, three evaluate folds: the int8 "
            "network's FP32 93.1 -> 96.6 %, INT8 +1.5 ± 0.5 points, docs/BENCHMARKS.md)")


def points_text(points: float, se: float | None) -> str:
    """'-7.6 ± 1.7': a difference in points with its standard error, when there is one; a
    difference that rounds to zero is '+0.0' (two equal means differ by -1e-14 in floats)."""
    return f"{round(points, 1) + 0.0:+.1f}" + (f" ± {se:.1f}" if se is not None else "")


def points_with_clips_text(points: float, se: float | None, clips: float | None) -> str:
    """'+1.0 ± 2.8 (with clips ± 5.4)': a difference with its seeds' SE, then, where the
    clips' part is known (points too), the SE counting both, in quadrature; the benchmarks'
    cells, whose targets read the seeds' SE."""
    if se is None or clips is None:
        return points_text(points, se)
    return f"{points_text(points, se)} (with clips ± {math.hypot(se, clips):.1f})"


def seed_accuracies(retrain: Mapping[str, Any]) -> list[float]:
    """A recorded retrain's evaluate accuracies, one per seed (its mean when no seed is kept)."""
    per_seed = [float(s["accuracy"]) for s in retrain.get("per_seed") or []]
    return per_seed or ([float(retrain["mean"])] if retrain.get("mean") is not None else [])


def difference(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float | None]:
    """Mean of `xs` minus mean of `ys`, and the standard error of that difference."""
    diff = statistics.fmean(xs) - statistics.fmean(ys)
    if len(xs) < 2 or len(ys) < 2:
        return diff, None
    return diff, math.sqrt(statistics.variance(xs) / len(xs) + statistics.variance(ys) / len(ys))


@dataclass(frozen=True)
class Retrained:
    """What the comparison needs of one study: its name, technique, data and retrain."""

    study: str
    technique: str
    data_key: str | None
    retrain: Mapping[str, Any] | None


def reference_studies(studies: Sequence[Retrained]) -> dict[str, Retrained]:
    """The retrained `baseline` study of each dataset: the most seeds, then the first name."""
    refs: dict[str, Retrained] = {}
    for s in sorted(studies, key=lambda s: s.study):
        if s.technique != BASELINE or not s.data_key or not s.retrain:
            continue
        held = refs.get(s.data_key)
        seeds = len(seed_accuracies(s.retrain))
        if held is None or seeds > len(seed_accuracies(held.retrain or {})):
            refs[s.data_key] = s
    return refs


def baseline_gaps(studies: Sequence[Retrained]) -> dict[str, Gap]:
    """Study name -> its gap to the baseline of its data, for every retrained non-baseline
    study whose data has one."""
    refs = reference_studies(studies)
    gaps = {}
    for s in studies:
        ref = refs.get(s.data_key or "")
        if s.technique == BASELINE or ref is None or not s.retrain:
            continue
        mine, theirs = seed_accuracies(s.retrain), seed_accuracies(ref.retrain or {})
        if mine and theirs:
            points, se = difference([100 * a for a in mine], [100 * a for a in theirs])
            clips = clip_part(s.retrain, ref.retrain or {})
            if se is not None and clips is not None:
                gaps[s.study] = Gap(ref.study, points, math.hypot(se, 100 * clips),
                                     se_includes_clips=True)
            else:
                gaps[s.study] = Gap(ref.study, points, se)
    return gaps


def clip_part(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> float | None:
    """The difference's SE from which clips the fold holds, when both retrains scored the same
    clips in the same order and kept every seed's per-clip results; else None. Without it the
    gap's SE is the seeds' alone: what another set of seeds would change, not another draw of
    recordings (on office16's 66 clips the larger part)."""
    if not mine.get("eval_files") or mine.get("eval_files") != theirs.get("eval_files"):
        return None
    return paired_clip_se([str(s.get("correct") or "") for s in mine.get("per_seed") or []],
                          [str(s.get("correct") or "") for s in theirs.get("per_seed") or []])


def compare(studies: Sequence[Retrained]) -> tuple[dict[str, Gap], set[str]]:
    """`baseline_gaps` and the names of the reference studies: what a table of studies shows."""
    return baseline_gaps(studies), {r.study for r in reference_studies(studies).values()}


def gap_cell(gap: Gap | None, reference: bool) -> str:
    """A table cell: the gap, "reference" on the baseline study itself, else "-"."""
    if gap is not None:
        return gap.text()
    return "reference" if reference else "-"
