"""NNCF's and OpenVINO's usage telemetry stays off for a user who did not opt in
(asc_auto/telemetry.py): no events, nothing written under ~/intel, and an opt-in is kept.

The effect is checked in a fresh interpreter with its own HOME (pytest itself already makes NNCF
stub its telemetry, and the import-time decision cannot be undone inside one process); the
decision for an opted-in user in this process, with its state restored, so that no test ever
sends an event.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asc_auto.telemetry import MODULE, quiet_library_telemetry

CHILD = """
import json, sys
import asc_auto  # noqa: F401  (the package import decides)
import torch
import openvino as ov
import openvino.tools.ovc.telemetry_utils as ovc_telemetry
import nncf.telemetry.wrapper as nncf_telemetry
model = torch.nn.Conv2d(1, 2, 3)
ov.convert_model(model, example_input=torch.zeros(1, 1, 6, 6))  # sends events when telemetry is on
print(json.dumps({
    "blocked": sys.modules.get("openvino_telemetry", "absent") is None,
    "ovc": ovc_telemetry.tm.__name__,
    "nncf": type(nncf_telemetry.telemetry).__name__,
}))
"""


def _run(home: Path) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "TF_BUILD", "JENKINS_URL", "NNCF_CI", "NNCF_DEV")}
    env["HOME"] = str(home)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, check=True,
                         capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_telemetry_is_off_without_consent_and_nothing_is_written_home(tmp_path: Path) -> None:
    got = _run(tmp_path)
    assert got == {"blocked": True, "ovc": "openvino.tools.ovc.telemetry_stub",
                   "nncf": "MagicMock"}  # NNCF's own stub class is a MagicMock
    assert not (tmp_path / "intel").exists()  # no client id, no usage count


def test_a_users_opt_in_or_an_earlier_import_is_kept(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    (tmp_path / "intel").mkdir()
    consent = tmp_path / "intel" / "openvino_telemetry"
    consent.write_text("1\n")  # what `opt_in_out --opt_in` writes
    assert quiet_library_telemetry() is False
    assert MODULE not in sys.modules

    consent.write_text("0")  # opted out: blocked like no file at all
    assert quiet_library_telemetry() is True
    assert sys.modules[MODULE] is None
    assert quiet_library_telemetry() is False  # already decided in this process
