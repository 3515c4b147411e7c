"""Shared rich console and the error boundary every CLI command runs inside."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from asc_auto import stop
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
        previous = stop.sigterm_as_interrupt()
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
            stop.clear()

    return wrapper


def run_script(main: Callable[[], object]) -> None:
    """Run a benchmark script's `main` inside the CLI's error boundary, so a wrong --data path or
    a bad file is the same one line and exit code as in `asc-auto`, not a traceback."""
    try:
        user_errors(main)()
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
