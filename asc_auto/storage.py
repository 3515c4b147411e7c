"""Optuna storages: open one with one-line errors, and fail the trials of dead workers.

Only `search` may create a storage; read-only commands (show, report, export, dashboard) and
retrain open an existing one, so a typo in --storage or --home never leaves an empty DB behind.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from asc_auto.errors import CommandFailed, UsageError
from asc_auto.procs import this_worker, worker_dead

WORKER_ATTR = "worker"  # trial user attr: host, pid, start time of the process running it
_URL_FIX = "use sqlite:///path/to/file.db or postgresql://user:password@host/database"


def default_storage(home: Path) -> str:
    """sqlite:///<home>/asc.db: one file holds every study (one worker; see README for many)."""
    return f"sqlite:///{Path(home) / 'asc.db'}"


def _sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    name = url.removeprefix("sqlite:///").split("?", 1)[0]
    return None if name in ("", ":memory:") else Path(name).expanduser()


def open_storage(url: str, create: bool = False) -> optuna.storages.BaseStorage:
    """An RDB storage; with `create`, a sqlite file (and its folder) is made when missing.

    Bad URLs, missing drivers, files that are not databases and schemas of another Optuna
    version raise one-line errors naming the URL and the fix.
    """
    import sqlalchemy.exc

    scheme = url.split(":", 1)[0] if ":" in url else ""
    if "://" not in url or not scheme:
        raise UsageError(f"--storage {url!r} is not a database URL; fix: {_URL_FIX}")
    file = _sqlite_file(url)
    if file is not None:
        if file.is_dir():
            raise UsageError(f"{file}: is a folder, not a database file; fix: {_URL_FIX}")
        if not file.exists():
            if not create:
                raise UsageError(f"{file}: no study database there; fix: run `asc-auto search` "
                                 "first, or pass the --storage/--home a search used")
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UsageError(f"{file.parent}: cannot create the storage folder "
                                 f"({err.strerror}); fix: choose a writable --home or --storage"
                                 ) from None
    # Heartbeats: a trial whose process died without a word (kill -9, power loss) is marked
    # FAIL by a later run after the grace period instead of staying RUNNING forever.
    kwargs: dict[str, Any] = {"heartbeat_interval": 60, "grace_period": 300}
    if file is not None:
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5, and work
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, **kwargs)
    except sqlalchemy.exc.ArgumentError as err:
        raise UsageError(f"--storage {url!r} is not a database URL ({_first_line(err)}); "
                         f"fix: {_URL_FIX}") from None
    except (ImportError, sqlalchemy.exc.NoSuchModuleError) as err:
        raise UsageError(f"--storage {url!r}: no database driver for '{scheme}' "
                         f"({_first_line(err)}); fix: install it (PostgreSQL: pip install "
                         "'psycopg[binary]') or use a sqlite:/// URL") from None
    except sqlalchemy.exc.DatabaseError as err:
        where = str(file) if file is not None else url
        raise CommandFailed(f"{where}: cannot be read as an Optuna storage "
                            f"({_first_line(err.orig or err)}); it is left as it is; fix: "
                            "pass --storage with another file or URL") from None
    except RuntimeError as err:  # a schema of another Optuna version
        raise CommandFailed(f"{url}: {_first_line(err)}; fix: `optuna storage upgrade "
                            f"--storage {url}` (after a backup)") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker is gone; return their numbers.

    A worker of this host that no longer runs is known dead at once (its pid and start time
    are in the trial's attrs); others are left to Optuna's heartbeat (stale after the grace
    period). Called before deciding whether the paper trial must be enqueued again.
    """
    with warnings.catch_warnings():  # "experimental" since Optuna 2.9, and works
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    failed = []
    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not worker_dead(trial.user_attrs.get(WORKER_ATTR)):
            continue
        try:
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                failed.append(trial.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker got there first
    return failed


def mark_worker(trial: optuna.Trial) -> None:
    """Record which process runs `trial`, so a later run can tell if it died."""
    trial.set_user_attr(WORKER_ATTR, this_worker())
