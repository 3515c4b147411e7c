"""Shared fixtures: one tiny synthetic TAU-layout dataset for the whole session, and the
benchmark scripts loaded as modules."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from asc_auto.data.synth import synthesize


@pytest.fixture(scope="session")
def load_benchmark() -> Callable[[str], ModuleType]:
    """A script of benchmarks/ loaded as a module (they are not a package), by name."""
    def load(name: str) -> ModuleType:
        path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # as an import would: dataclasses look their module up
        spec.loader.exec_module(module)
        return module
    return load


TINY_CLIPS = 48
TINY_SECONDS = 1.0


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 stereo 48 kHz 24-bit clips of 1 s (35 train / 13 evaluate, 3 classes), seed 0.

    Session-scoped and shared: treat it as read-only (copy it before breaking it).
    """
    root = tmp_path_factory.mktemp("tiny") / "tau3"
    return synthesize(root, n_clips=TINY_CLIPS, clip_seconds=TINY_SECONDS, seed=0, progress=False)


@pytest.fixture
def tiny_kd_space(tmp_path: Path) -> Callable[..., Path]:
    """A factory: the tiny kd test space (tests/spaces/kd.toml) with searched categorical params
    added, each `name: (choices, paper value)`, after `replace`'s text replacements."""
    def make(params: dict[str, tuple[list[str], str]],
             replace: dict[str, str] | None = None) -> Path:
        text = (Path(__file__).parent / "spaces" / "kd.toml").read_text()
        for old, new in (replace or {}).items():
            text = text.replace(old, new)
        paper = "".join(f'{name} = "{value}"\n' for name, (_, value) in params.items())
        text = text.replace("[paper]\n", "[paper]\n" + paper)
        for name, (choices, _) in params.items():
            text += f'[params.{name}]\ntype = "categorical"\nchoices = {json.dumps(choices)}\n'
        path = tmp_path / "kd.toml"
        path.write_text(text)
        return path
    return make


def _pg_bin() -> Path | None:
    """Debian's PostgreSQL server binaries (the `postgresql` package), newest first."""
    import shutil

    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    if found:
        return found[0].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory):
    """A throw-away PostgreSQL server on a loopback port for this test session.

    Skips, saying why, where the server is not installed (`.ci/run` installs Debian's
    `postgresql`). Run as root (CI), the server runs as the `postgres` user, as it requires.
    """
    import os
    import socket
    import subprocess
    import tempfile

    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server not installed (Debian package postgresql; .ci/run "
                    "installs it)")
    root = tmp_path_factory.mktemp("pg")
    data = root / "data"
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server")
        os.chmod(root, 0o777)
        # The server's user must reach its data folder through pytest's private (0700) folders:
        # those under the system's temp folder, or under --basetemp's parent; a pytest-xdist
        # worker's folder is one level deeper.
        tops = {Path(tempfile.gettempdir()).resolve(),
                tmp_path_factory.getbasetemp().resolve().parent.parent}
        for parent in root.resolve().parents:
            if any(top in parent.parents for top in tops):
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
        as_user = ["runuser", "-u", pw.pw_name, "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "asc",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l",
                    str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://asc@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], check=False, capture_output=True)


@pytest.fixture(autouse=True)
def _no_worker_terminal_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """pytest-xdist's workers set COLUMNS=80 and LINES=24; the CLI's output to a pipe is 200
    columns wide unless COLUMNS says otherwise, so every test sees what a serial run sees."""
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


@pytest.fixture(autouse=True)
def _one_split_unless_testing_selection(request: pytest.FixtureRequest,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Searches in tests score on one validation split and skip the confirmation, as if the
    data were large, unless the test is marked `selection` (tests/test_search_cv.py): the tiny
    dataset would otherwise switch on 5-fold cross-validation and confirmation seeds in every
    search test of the suite, multiplying its training for what those tests do not check.
    Tests that pass `cv=` or `confirm_seeds=` get exactly what they pass."""
    if request.node.get_closest_marker("selection") is None:
        monkeypatch.setattr("asc_auto.cv.SMALL_VALIDATION", 0)
        monkeypatch.setattr("asc_auto.cv.FEW_VALIDATION_GROUPS", 0)
        monkeypatch.setattr("asc_auto.confirm.DEFAULT_SEEDS", 0)
        monkeypatch.setattr("asc_auto.confirm.DEMO_SEEDS", 0)
