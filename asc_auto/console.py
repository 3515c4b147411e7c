"""Shared rich console and the error boundary every CLI command runs inside."""

from __future__ import annotations

import functools
import signal
import sys
import threading
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from asc_auto.errors import AscError

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn an AscError into one red line on stderr and its exit code (2 for bad input, 1 for a
    failed run); Ctrl-C and SIGTERM into exit 130."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        previous = _sigterm_as_interrupt()
        try:
            return fn(*args, **kwargs)
        except AscError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                              soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: everything already recorded is kept")
            raise typer.Exit(130) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


def run_script(main: Callable[[], object]) -> None:
    """Run a benchmark script's `main` inside the CLI's error boundary, so a wrong --data path or
    a bad file is the same one line and exit code as in `asc-auto`, not a traceback."""
    try:
        user_errors(main)()
    except typer.Exit as exc:
        sys.exit(exc.exit_code)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _sigterm_as_interrupt() -> signal.Handlers | None:
    """A SIGTERM (`kill`, `timeout`, a batch scheduler) stops like Ctrl-C: Optuna then marks the
    running trial FAIL instead of leaving it RUNNING forever. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)
