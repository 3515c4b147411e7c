"""asc-auto: search low-memory acoustic scene classifiers under a hard model-size limit."""

from asc_auto.telemetry import quiet_library_telemetry

__version__ = "0.1.0"

# Before anything imports NNCF or OpenVINO: they report usage unless the user opted in
# (asc_auto/telemetry.py says why asc-auto turns that off for the calls it makes).
quiet_library_telemetry()
