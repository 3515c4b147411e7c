"""How much the tool says: `asc-auto -q` (results and errors only) .. `-vv` (Optuna's debug log).

Kept in an environment variable rather than a global, so the worker processes `search --jobs N`
spawns inherit the level the command line chose.
"""

from __future__ import annotations

import logging
import os

ENV = "ASC_AUTO_VERBOSITY"
QUIET, NORMAL, VERBOSE, DEBUG = -1, 0, 1, 2


def set_verbosity(level: int) -> None:
    """Set the level for this process and the workers it starts; applies Optuna's at once."""
    os.environ[ENV] = str(max(QUIET, min(DEBUG, int(level))))
    import optuna

    optuna.logging.set_verbosity(optuna_level())


def verbosity() -> int:
    """The level chosen: QUIET (-q), NORMAL, VERBOSE (-v) or DEBUG (-vv)."""
    try:
        return max(QUIET, min(DEBUG, int(os.environ.get(ENV, NORMAL))))
    except ValueError:
        return NORMAL


def optuna_level() -> int:
    """Optuna's log level for ours: its per-trial INFO lines only with -v (the tool prints its
    own), its warnings by default, errors only with -q."""
    return {QUIET: logging.ERROR, NORMAL: logging.WARNING, VERBOSE: logging.INFO,
            DEBUG: logging.DEBUG}[verbosity()]
