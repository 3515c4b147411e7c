"""What optuna-dashboard shows of a study (issue 14): the objective's name, the size limit, and
value plots without the never-trained trials over the limit, while TPE still learns from them.

Three levels, cheapest first: what Optuna and TPE read (no server); the dashboard's API JSON, the
data its plots are drawn from (a real `asc-auto dashboard` server; the repeatable check); the
page rendered by a real headless browser (Debian's `chromium-headless-shell`, skipped where it is
not installed; `.ci/run` installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.samplers._tpe.sampler import _split_trials  # what TPE learns from (optuna pinned)
from optuna.trial import TrialState

from asc_auto.dashboard import OBJECTIVE_NAME, name_objective, record_constraints
from asc_auto.schema import MACS_CONSTRAINT, SIZE_CONSTRAINT, TrialRecord

# (size KB, MACs over the limit, accuracy or None when over a limit: never trained)
TRIALS = [(100.0, -5.0, 0.61), (900.0, -5.0, None), (300.0, -5.0, 0.72), (450.0, 20.0, None),
          (450.0, -1.0, 0.70), (700.0, 3.0, None)]
LIMIT = 512_000


def _write(study: optuna.Study, named_only: bool = False, infeasible: TrialState =
           TrialState.PRUNED) -> None:
    """Trials as search.Objective records them: sized, constraints, then trained or not."""
    for kb, macs_over, acc in TRIALS:
        trial = study.ask()
        trial.suggest_int("c1", 8, 64)
        trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        TrialRecord(size_kb=kb, feasible=acc is not None, source="search").write(trial)
        limits = {SIZE_CONSTRAINT: kb * 1024 - LIMIT, MACS_CONSTRAINT: macs_over}
        if named_only:
            for name, value in limits.items():
                trial.set_constraint(name, value)
        else:
            record_constraints(trial, limits)
        if acc is not None:
            study.tell(trial, acc)
        elif infeasible == TrialState.PRUNED:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, 0.0)  # how studies before issue 14 recorded it


def test_constraints_are_written_for_tpe_and_for_the_dashboard() -> None:
    study = optuna.create_study(direction="maximize")
    _write(study)
    t = study.trials[1]
    assert t.system_attrs["constraints"] == [900.0 * 1024 - LIMIT, -5.0]  # the dashboard's
    assert t.constraints[SIZE_CONSTRAINT] == 900.0 * 1024 - LIMIT  # Optuna's, by name
    assert t.state == TrialState.PRUNED and t.value is None


@pytest.mark.parametrize("n_below", [1, 2, 3, 4])
def test_tpe_learns_the_same_from_them(n_below: int) -> None:
    """TPE's split into good and bad trials is unchanged by the dashboard's extra list, and by
    recording an over-limit trial PRUNED without a value instead of COMPLETE at 0.0."""
    def split(**kw: object) -> tuple[list[int], list[int]]:
        study = optuna.create_study(direction="maximize")
        _write(study, **kw)  # type: ignore[arg-type]
        below, above = _split_trials(study, study.get_trials(
            states=(TrialState.COMPLETE, TrialState.PRUNED)), n_below)
        return [t.number for t in below], [t.number for t in above]

    ours = split()
    assert ours == split(named_only=True)
    assert ours == split(infeasible=TrialState.COMPLETE)
    below, _ = ours
    feasible = [n for n in below if TRIALS[n][2] is not None]
    assert len(below) == n_below and len(feasible) == min(n_below, 3)  # feasible ones first


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory):
    """`asc-auto dashboard` on a study written as search writes it, an older asc-auto study
    whose objective was never named and another tool's study: (base URL, {name: id})."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dash') / 'd.db'}"
    study = optuna.create_study(storage=url, study_name="kd", direction="maximize")
    name_objective(study)
    _write(study)
    older = optuna.create_study(storage=url, study_name="older", direction="maximize")
    older.set_user_attr("technique", "kd")  # an asc-auto study from before issue 14
    optuna.create_study(storage=url, study_name="foreign", direction="minimize")  # not ours
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "asc_auto.cli", "dashboard", "--storage", url,
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a loaded machine starts it slowly
        while True:
            try:
                summaries = json.loads(_get(f"{base}/api/studies"))["study_summaries"]
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield base, {s["study_name"]: s["study_id"] for s in summaries}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.slow
def test_dashboard_api_gives_its_plots_named_feasible_values(dashboard) -> None:
    """The repeatable check: the JSON the dashboard's plots are drawn from."""
    base, ids = dashboard
    detail = json.loads(_get(f"{base}/api/studies/{ids['kd']}?after=0"))
    assert detail["objective_names"] == [OBJECTIVE_NAME]
    by_number = {t["number"]: t for t in detail["trials"]}
    for n, (_, _, acc) in enumerate(TRIALS):
        t = by_number[n]
        if acc is None:  # over a limit: no value, a positive constraint, feasible false
            assert t["state"] == "Pruned" and t.get("values") is None
            assert any(c > 0 for c in t["constraints"])
            assert {"key": "feasible", "value": "False"} in t["user_attrs"]
        else:
            assert t["state"] == "Complete" and t["values"] == [acc]
            assert all(c <= 0 for c in t["constraints"])
    # The history, slice, contour and parallel-coordinate plots take Complete trials, and
    # Pruned ones only at a value they reported (the bundle's filter): here the feasible ones.
    plotted = [t for t in detail["trials"] if t["state"] in ("Complete", "Pruned")
               and t.get("values") is not None]
    assert sorted(t["number"] for t in plotted) == [n for n, r in enumerate(TRIALS) if r[2]]
    assert min(t["values"][0] for t in plotted) == 0.61  # no 0.0 dragging the axes down
    assert [t["number"] for t in detail["best_trials"]] == [2]
    importances = json.loads(_get(f"{base}/api/studies/{ids['kd']}/param_importances"))
    assert {p["name"] for p in importances["param_importances"][0]} == {"c1", "lr"}
    older = json.loads(_get(f"{base}/api/studies/{ids['older']}?after=0"))
    assert older["objective_names"] == [OBJECTIVE_NAME]  # named by `asc-auto dashboard`
    foreign = json.loads(_get(f"{base}/api/studies/{ids['foreign']}?after=0"))
    assert not foreign.get("objective_names")  # another tool's study is left as it was


def _browser() -> str | None:
    return next((b for b in ("chromium-headless-shell", "chromium", "chromium-browser")
                 if shutil.which(b)), None)


@pytest.mark.slow
@pytest.mark.skipif(_browser() is None, reason="no headless Chromium: apt-get install "
                    "chromium-headless-shell (Debian; .ci/run installs it)")
def test_dashboard_page_in_a_real_browser(dashboard, tmp_path: Path) -> None:
    """The study page rendered by Chromium: the history plot's axis is named and spans the
    feasible accuracies only (0.61 .. 0.72), not 0."""
    base, ids = dashboard
    page = subprocess.run([_browser(), "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--window-size=1400,1800", "--virtual-time-budget=20000",
                           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                           f"{base}/dashboard/studies/{ids['kd']}"],
                          capture_output=True, text=True, timeout=180).stdout
    plots = re.findall(r'<svg class="main-svg".*?</svg>', page, flags=re.S)
    assert plots, page[-2000:]
    assert f'data-unformatted="{OBJECTIVE_NAME}"' in page and "Objective 0" not in page
    history = next(i for i, svg in enumerate(plots) if f">{OBJECTIVE_NAME}<" in svg)
    ticks = [float(v) for svg in plots[history - 1:history + 1]  # ticks precede the titles
             for v in re.findall(r'class="ytick"><text[^>]*>([-0-9.]+)<', svg)]
    assert ticks and min(ticks) > 0.5 and max(ticks) <= 0.75, ticks


def test_a_paper_trial_over_the_limit_is_not_enqueued_again() -> None:
    """The paper's trial is never pruned by Hyperband, so PRUNED means over a limit: done."""
    from asc_auto.study_resume import paper_pending

    study = optuna.create_study(direction="maximize")
    assert not paper_pending(study)
    study.enqueue_trial({}, user_attrs=TrialRecord(source="paper").to_attrs())
    trial = study.ask()
    record_constraints(trial, {SIZE_CONSTRAINT: 1.0})
    study.tell(trial, state=TrialState.PRUNED)
    assert paper_pending(study)
