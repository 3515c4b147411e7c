"""A non-editable install works away from the source tree: the wheel carries the search spaces.

The wheel is built from a copy of the working tree (nothing is written into the checkout) and
installed without its dependencies into a fresh venv that reads them from this interpreter's
site-packages as plain paths (a .pth line; the editable install's own .pth is not processed
there, so the wheel's asc_auto is the one imported): no network, a few seconds. A kd search
then runs from another folder with the shipped default space.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from asc_auto.data.tau import load_dataset
from asc_auto.teacher_logits import write_teacher_logits

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(*cmd: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "ASC_AUTO_HOME", "ASC_AUTO_STORAGE")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv with the wheel of the working tree installed (not editable)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "asc_auto", src / "asc_auto",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "--no-index", "-q", "-w", tmp / "dist", ".", cwd=src)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp / "dist").glob("asc_auto-*.whl"))
    venv = tmp / "venv"
    made = _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    assert made.returncode == 0, made.stderr
    purelib = _run(venv / "bin" / "python", "-c",
                   "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp)
    (Path(purelib.stdout.strip()) / "asc-auto-deps.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")
    pip = _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
               "--no-deps", "--no-index", "-q", wheel, cwd=tmp)
    assert pip.returncode == 0, pip.stderr
    return venv / "bin"


def test_the_wheel_ships_the_search_spaces(installed: Path, tmp_path: Path) -> None:
    where = _run(installed / "python", "-c",
                 "import asc_auto.space as s; print(s.SPACE_DIR); print(*s.shipped_spaces())",
                 cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    space_dir, names = where.stdout.splitlines()
    assert Path(space_dir).is_relative_to(installed.parent)  # the wheel's, not the checkout's
    assert names.split() == sorted(p.stem for p in (ROOT / "asc_auto" / "searchspace").glob(
        "*.toml"))


def test_installed_search_runs_outside_the_repo(installed: Path, tmp_path: Path,
                                                tiny_dataset: Path) -> None:
    """`asc-auto search --technique kd` with the shipped space, from a folder that is not the
    repo. The teacher comes from stored logits, so the test trains only one 1-epoch student."""
    ds = load_dataset(tiny_dataset)
    clips = [c.filename for c in ds.train + ds.evaluate]
    logits = np.random.default_rng(0).normal(size=(len(clips), len(ds.labels)))
    write_teacher_logits(tmp_path / "teacher.npz", clips, logits)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = _run(installed / "asc-auto", "search", "--technique", "kd", "--data", tiny_dataset,
                  "--teacher-logits", tmp_path / "teacher.npz", "--trials", "1", "--epochs", "1",
                  "--cv", "0", "--confirm-seeds", "0", "--device", "cpu", cwd=elsewhere)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kd: 1 complete" in result.stdout and "0 paper" in result.stdout
    assert (elsewhere / "studies" / "asc.db").is_file()  # --home defaults to ./studies
