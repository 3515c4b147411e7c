"""Keep NNCF's and OpenVINO's usage telemetry off unless the user opted in to it.

Why: both libraries report usage to Google Analytics by default, without asking, when the user
has no consent file (`~/intel/openvino_telemetry`, written by their `opt_in_out` script). Each
event is sent from a fresh subprocess that they wait up to 3 s for, and they write a client id
and a usage count under `~/intel`. asc-auto calls them on the user's behalf (INT8 quantization,
IR conversion in retrain, export, predict), so it must not report for a user who never agreed:
and on a machine without internet (CI, most GPU servers) the waits are pure cost, measured on the
2-core development machine: `ov.convert_model` of a one-conv model 1.9-3.7 s with telemetry, 0.2
s without; `nncf.quantize` of a two-layer model 1.7 s with, 0.6-0.7 s without.

A user who opted in (the consent file holds "1") keeps it, and so does a process that imported
`openvino_telemetry` before asc-auto: both libraries fall back to their own stubs when the
package cannot be imported, which is what `quiet_library_telemetry` arranges.
"""

from __future__ import annotations

import sys
from pathlib import Path

MODULE = "openvino_telemetry"


def consent_file() -> Path:
    """Where OpenVINO's `opt_in_out` script records the user's choice (Linux and macOS)."""
    return Path.home() / "intel" / "openvino_telemetry"


def opted_in() -> bool:
    """True when the user accepted the libraries' telemetry with their own opt-in script."""
    try:
        return consent_file().read_text().strip() == "1"
    except (OSError, UnicodeDecodeError, RuntimeError):  # RuntimeError: no home directory
        return False


def quiet_library_telemetry() -> bool:
    """Make `import openvino_telemetry` fail in this process unless the user opted in or it is
    already imported, so NNCF and OpenVINO use their no-op stubs. Returns whether it did."""
    if MODULE in sys.modules or opted_in():
        return False
    sys.modules[MODULE] = None  # type: ignore[assignment]  # import raises ModuleNotFoundError
    return True
