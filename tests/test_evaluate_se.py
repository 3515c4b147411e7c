"""The evaluate accuracy's standard error counts which clips the fold holds, not only the seeds.

Two seeds that score the same 18 of 66 clips had an SE of 0 (`retrain` printed `0.2727 ±
0.0000`), while 66 clips alone leave about 5.5 points either way; against the baseline on the
same clips, the gap's SE counts the clips the two disagree on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from asc_auto.against_baseline import Retrained, baseline_gaps
from asc_auto.cli import app
from asc_auto.report import retrained_text
from asc_auto.schema import StudyRecord
from asc_auto.stats import (
    binomial_se,
    clip_shares,
    evaluate_se,
    paired_clip_se,
    seeds_text,
)
from asc_auto.storage import open_storage
from asc_auto.summary import write_report

runner = CliRunner()


def test_the_clips_part_is_the_spread_of_each_clip_s_share_of_right_seeds() -> None:
    # two seeds right on 2 of 4 clips each, not the same ones: shares 1, .5, .5, 0
    assert clip_shares(["1100", "1010"]) == [1.0, 0.5, 0.5, 0.0]
    se = evaluate_se([0.5, 0.5], 4, ["1100", "1010"])
    assert se.seeds == 0.0  # the seeds agree on the accuracy ...
    # ... not on the clips: sd of the shares sqrt(0.5 / 4), over sqrt(4)
    assert se.clips == pytest.approx(math.sqrt(0.5 / 4) / 2)
    assert se.total == pytest.approx(se.clips)
    # without per-clip results: the binomial SE of the mean, its upper bound
    fallback = evaluate_se([0.5, 0.5], 4)
    assert fallback.clips == pytest.approx(binomial_se(0.5, 4)) and fallback.clips > se.clips
    # a seed recorded before its clips were kept, or lengths that differ: the fallback
    assert clip_shares(["1100", ""]) is None and clip_shares(["110", "1010"]) is None
    assert evaluate_se([0.5, 0.5], 4, ["1100", ""]).clips == pytest.approx(0.25)
    # nothing known of the clips: the seeds' part alone; one seed and no clips: nothing
    assert evaluate_se([0.6, 0.8]).clips is None
    assert evaluate_se([0.6, 0.8]).total == pytest.approx(0.1)
    assert evaluate_se([0.6]).total is None


def test_both_parts_add_in_quadrature_and_the_clips_part_does_not_shrink_with_seeds() -> None:
    # office16-sized: 66 clips, each seed right on 56 (84.8 %), three seeds
    seeds = ["1" * 56 + "0" * 10, "0" * 5 + "1" * 56 + "0" * 5, "0" * 10 + "1" * 56]
    se = evaluate_se([56 / 66] * 3, 66, seeds)
    assert se.seeds == 0.0 and se.clips is not None and 0.03 < se.clips < binomial_se(56 / 66, 66)
    six = evaluate_se([56 / 66] * 6, 66, seeds * 2)  # the same seeds twice: same shares
    assert six.clips == pytest.approx(se.clips)
    spread = evaluate_se([0.80, 0.85, 0.90], 66)
    assert spread.total == pytest.approx(math.hypot(spread.seeds, spread.clips))


def test_retrain_says_both_parts_and_one_seed_its_clips() -> None:
    said = seeds_text([0.8636, 0.8485, 0.7879], 66)
    seeds_part, clips_part = 0.0401 / math.sqrt(3), binomial_se(0.8333, 66)
    total = math.hypot(seeds_part, clips_part)
    assert said == (f"0.8333 ± {total:.4f} over 3 seeds and 66 clips (SE: seeds 0.0231, clips "
                    f"{clips_part:.4f}; std 0.0401, seeds 0.7879-0.8636)")
    assert seeds_text([0.75], 60) == ("0.7500 ± 0.0559 on 1 seed and 60 clips (SE of the clips; "
                                      "no seed spread to say)")
    # two seeds on the same accuracy no longer read as certain
    assert "± 0.0000" not in seeds_text([18 / 66, 18 / 66], 66)


def test_the_studies_cell_counts_the_clips_where_the_retrain_kept_them() -> None:
    record = {"trial": 2, "seeds": 2, "mean": 0.5, "std": 0.0, "eval_clips": 4,
              "per_seed": [{"seed": 0, "accuracy": 0.5, "correct": "1100"},
                           {"seed": 1, "accuracy": 0.5, "correct": "1010"}]}
    clips = math.sqrt(0.5 / 4) / 2
    assert retrained_text(record, 2) == (f"#2: 0.5000 ± {clips:.4f} (SE of seeds and 4 clips; "
                                         "std 0.0000, 2 seeds)")
    one = {"trial": 1, "seeds": 1, "mean": 0.75, "eval_clips": 60,
           "per_seed": [{"seed": 0, "accuracy": 0.75}]}
    assert retrained_text(one, 3) == "#1: 0.7500 ± 0.0559 (1 seed; SE of 60 clips, not the pick)"


def _run(name: str, technique: str, accs: list[float], correct: list[str],
         files: str | None = "fold-a") -> Retrained:
    return Retrained(name, technique, "office", {
        "mean": sum(accs) / len(accs), "eval_clips": len(correct[0]),
        **({"eval_files": files} if files else {}),
        "per_seed": [{"accuracy": a, "correct": c} for a, c in zip(accs, correct, strict=True)]})


def test_the_gap_pairs_the_two_retrains_clip_by_clip() -> None:
    base = _run("bl", "baseline", [0.75, 0.75], ["1110", "1101"])
    # right on the same clips as the baseline: the clips add nothing
    same = baseline_gaps([base, _run("a", "int8", [0.75, 0.75], ["1110", "1101"])])["a"]
    assert same.se_includes_clips and same.points == pytest.approx(0.0)
    assert same.se == pytest.approx(0.0)
    # right on other clips: shares 0.5 0.5 1 1 against 1 1 .5 .5, differences -.5 -.5 .5 .5
    gap = baseline_gaps([base, _run("b", "kd", [0.75, 0.75], ["0111", "1011"])])["b"]
    diffs = [-0.5, -0.5, 0.5, 0.5]
    assert paired_clip_se(["0111", "1011"], ["1110", "1101"]) == pytest.approx(
        math.sqrt(sum(d * d for d in diffs) / 4) / 2)
    assert gap.se_includes_clips and gap.se == pytest.approx(25.0)
    # another evaluate fold (or a retrain from before the files were kept): the seeds alone
    other = baseline_gaps([base, _run("c", "kd", [0.5, 1.0], ["0101", "1111"], "fold-b")])["c"]
    assert not other.se_includes_clips and other.se == pytest.approx(100 * math.sqrt(0.125 / 2))
    legacy = baseline_gaps([base, _run("d", "kd", [0.5, 1.0], ["0101", "1111"], None)])["d"]
    assert not legacy.se_includes_clips


def test_studies_json_gives_the_parts_and_whether_the_gap_counts_clips(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    for name, technique, correct in (("baseline", "baseline", ["1110", "1101"]),
                                     ("kd", "kd", ["0111", "1011"])):
        study = optuna.create_study(storage=url, study_name=name, direction="maximize")
        StudyRecord(technique=technique, data_sha256="office", data="/rec/office",
                    retrain={"trial": 0, "seeds": 2, "mean": 0.75, "std": 0.0, "eval_clips": 4,
                             "eval_files": "fold-a",
                             "per_seed": [{"seed": i, "accuracy": 0.75, "correct": c}
                                          for i, c in enumerate(correct)]}).write(study)
    out = runner.invoke(app, ["studies", "--storage", url, "--json"])
    assert out.exit_code == 0, out.output
    rows = {r["study"]: r for r in json.loads(out.output)}
    kd = rows["kd"]
    assert kd["vs_baseline"] == {"baseline_study": "baseline", "points": 0.0,
                                 "se": 25.0,
                                 "se_includes_clips": True}
    assert kd["retrain"]["eval_clips"] == 4
    assert kd["retrain"]["se"]["seeds"] == 0.0
    assert kd["retrain"]["se"]["clips"] == pytest.approx(0.25 / 2)  # shares .5 .5 1 1
    assert [s["correct"] for s in kd["retrain"]["per_seed"]] == ["0111", "1011"]
    # report's table shows the same cells, and its notes say what the ± counts
    summary, _ = write_report(open_storage(url), tmp_path / "report")
    text = summary.read_text()
    assert f"#0: 0.7500 ± {0.125:.4f} (SE of seeds and 4 clips; std 0.0000, 2 seeds) | +0.0 ± " \
           "25.0 |" in text
    assert "paired clip by clip" in text


def test_the_report_s_plot_draws_each_mean_s_se_of_seeds_and_clips(tmp_path: Path) -> None:
    """Two seeds right on the same 3 of 4 clips have a seeds' SE of 0; the plot's whisker (and
    the baseline's band) must still show the clips' part, as the tables' ± does."""
    from asc_auto.plots import accuracy_bars_figure
    from asc_auto.report import retrained_se, study_rows
    from asc_auto.summary import BASELINE_PLOT_TITLE, baseline_panels

    url = f"sqlite:///{tmp_path / 's.db'}"
    retrains = {"baseline": (["1110", "1110"], [0.75, 0.75]),
                "kd": (["0111", "1011"], [0.75, 0.75])}
    for name, (correct, accs) in retrains.items():
        study = optuna.create_study(storage=url, study_name=name, direction="maximize")
        StudyRecord(technique=name, data_sha256="office", data="/rec/office",
                    retrain={"trial": 0, "seeds": 2, "mean": 0.75, "std": 0.0, "eval_clips": 4,
                             "eval_files": "fold-a",
                             "per_seed": [{"seed": i, "accuracy": a, "correct": c}
                                          for i, (a, c) in enumerate(zip(accs, correct,
                                                                         strict=True))]}
                    ).write(study)
    rows = {r.study: r for r in study_rows(open_storage(url))}
    # baseline: shares 1 1 1 0, pstdev 0.433 / 2; kd: shares .5 .5 1 1, pstdev 0.25 / 2
    assert retrained_se(rows["baseline"].retrain).total == pytest.approx(math.sqrt(3) / 8)
    assert retrained_se(rows["kd"].retrain).total == pytest.approx(0.125)
    [panel] = baseline_panels(list(rows.values()))
    assert panel.errors == {("kd", "retrained pick"): pytest.approx(12.5)}
    assert panel.reference_error == pytest.approx(100 * math.sqrt(3) / 8)
    fig = accuracy_bars_figure([panel], title=BASELINE_PLOT_TITLE)
    ax = fig.axes[0]
    [whisker] = [c for c in ax.containers if getattr(c, "has_yerr", False)]
    segment = whisker.lines[2][0].get_segments()[0]
    assert segment[1][1] - segment[0][1] == pytest.approx(2 * 12.5)  # mean ± SE, not ± 0
    band = ax.patches[-1]  # axhspan's rectangle, y in data units
    assert band.get_height() == pytest.approx(2 * 100 * math.sqrt(3) / 8)
    assert band.get_y() == pytest.approx(75 - 100 * math.sqrt(3) / 8)
    assert fig.texts[0].get_text() == "mean ± SE of seeds and evaluate clips; dots: seeds"
    write_report(open_storage(url), tmp_path / "report")
    assert (tmp_path / "report" / "against-baseline.png").read_bytes()[:4] == b"\x89PNG"


def test_a_difference_that_rounds_to_zero_has_no_minus_sign() -> None:
    from asc_auto.against_baseline import points_text, points_with_clips_text

    assert points_text(84.848484 - 84.84848400000001, 0.9) == "+0.0 ± 0.9"
    assert points_text(-0.04, None) == "+0.0"
    assert points_text(-0.06, 1.0) == "-0.1 ± 1.0"
    assert points_with_clips_text(-1e-14, 0.9, 4.6) == "+0.0 ± 0.9 (with clips ± 4.7)"


def test_the_per_class_note_says_what_a_few_clips_are_worth() -> None:
    from asc_auto.stats import class_note

    assert class_note([6] * 11) == ("per class: over 6 evaluate clips each (the header's n); "
                                    "one clip moves it 0.167, its SE up to 0.204")
    assert class_note([100, 0, 25]) == ("per class: over 25-100 evaluate clips (the header's "
                                         "n); one clip moves it 0.040, its SE up to 0.100")
    assert class_note([]) is None and class_note([0, 0]) is None
