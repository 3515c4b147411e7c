"""A SIGTERM that stops the work even where Python swallows the exception it raises.

SIGTERM (`kill`, `timeout`, a batch scheduler, a `search --jobs` parent stopping its workers) is
turned into a KeyboardInterrupt so Optuna records the running trial FAIL, as for Ctrl-C. Python
runs the handler between bytecodes of the main thread; where that lands inside a weakref
callback or a `__del__` (the garbage collection Optuna runs after every trial), the interrupt is
printed as "Exception ignored" and lost, and the process runs on: a worker told to stop ran
all 40 trials of a test study. So the handler also records the signal, and the training loop
and the search's end-of-trial callback call `check()`, which raises it again there.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

_requested: int | None = None


def raise_interrupt(signum: int, frame: object) -> None:
    """The SIGTERM handler: remember the stop, then raise it as Ctrl-C does."""
    global _requested
    _requested = signum
    raise KeyboardInterrupt(f"signal {signum}")


def check(*_: Any) -> None:
    """Raise the stop a handled signal asked for, if one did (its first raise may have been
    swallowed). Cheap enough for every training step; takes and ignores an Optuna callback's
    (study, trial)."""
    if _requested is not None:
        raise KeyboardInterrupt(f"signal {_requested}")


def clear() -> None:
    """Forget a stop once it has been handled (a process that goes on: tests, a notebook)."""
    global _requested
    _requested = None


def sigterm_as_interrupt() -> signal.Handlers | None:
    """Install `raise_interrupt` for SIGTERM; return the handler it replaced (None off the main
    thread, where signal handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, raise_interrupt)
