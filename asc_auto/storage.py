"""Optuna storages: open one with one-line errors, serialise workers that set one up together,
and fail the trials of dead workers.

Three URL forms (docs/GUIDE.md "Many workers"):
- `sqlite:///path/file.db`: one machine, a few workers (SQLite serialises every write; workers
  wait up to 60 s for the database lock).
- `journal:///path/file.log`: Optuna's JournalStorage on a file (append-only log, file lock):
  many workers on one machine, no database server.
- `postgresql://user:password@host:port/database`: many machines (psycopg 3 driver).

Only `search` may create a storage; read-only commands (show, report, export, dashboard) and
retrain open an existing one, so a typo in --storage or --home never leaves an empty DB behind.
Workers that start together on a fresh storage race on creating its schema and their study;
`storage_lock` (a file lock beside a SQLite/journal file, a PostgreSQL advisory lock on a
server) makes those steps one at a time.
"""

from __future__ import annotations

import contextlib
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from asc_auto.errors import CommandFailed, UsageError
from asc_auto.procs import float_setting, this_worker, worker_dead
from asc_auto.schema import TrialRecord

WORKER_ATTR = "worker"  # the TrialRecord field: host, pid, start time of the process running it
JOURNAL = "journal:///"
_URL_FIX = ("use sqlite:///path/to/file.db, journal:///path/to/file.log or "
            "postgresql://user:password@host/database")
_ADVISORY_KEY = zlib.crc32(b"asc-auto storage setup")  # one lock id per database


def default_storage(home: Path) -> str:
    """sqlite:///<home>/asc.db: one file holds every study (one worker; docs/GUIDE.md has
    many)."""
    return f"sqlite:///{Path(home) / 'asc.db'}"


def storage_file(url: str) -> Path | None:
    """The file behind a sqlite:/// or journal:/// URL (None for a server or :memory:)."""
    for prefix in ("sqlite:///", JOURNAL):
        if url.startswith(prefix):
            name = url.removeprefix(prefix).split("?", 1)[0]
            if prefix == JOURNAL and not name.startswith("/"):
                name = "/" + name  # journal:///abs/path: the third slash is the root
            return None if name in ("", ":memory:") else Path(name).expanduser()
    return None


@contextlib.contextmanager
def storage_lock(url: str) -> Iterator[None]:
    """Hold a lock that every asc-auto worker on this storage takes for its set-up steps
    (schema, study creation, the paper trial's enqueue): one worker at a time, on any machine
    that shares the file or the server."""
    file = storage_file(url)
    if file is not None:
        from filelock import FileLock

        file.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{file}.asc-setup.lock"):  # not .lock: the journal uses that name
            yield
        return
    if url.startswith("postgresql"):
        import sqlalchemy
        import sqlalchemy.exc
        from sqlalchemy.pool import NullPool

        try:
            engine = sqlalchemy.create_engine(_driver_url(url), poolclass=NullPool)
            conn = engine.connect()
        except (ImportError, sqlalchemy.exc.SQLAlchemyError) as err:
            raise CommandFailed(f"--storage {redacted(url)}: cannot connect "
                                f"({_first_line(err)}); fix: check the server, user and "
                                "password, or pip install 'psycopg[binary]'") from None
        try:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_KEY})
            yield
        finally:
            with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                             {"k": _ADVISORY_KEY})
            conn.close()
            engine.dispose()
        return
    yield


def _driver_url(url: str) -> str:
    """postgresql:// means psycopg 3 here (SQLAlchemy's default would be psycopg2)."""
    return "postgresql+psycopg://" + url.removeprefix("postgresql://") \
        if url.startswith("postgresql://") else url


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("://")
    if "@" in tail and ":" in tail.split("@", 1)[0]:
        user = tail.split("@", 1)[0].split(":", 1)[0]
        return f"{head}{sep}{user}:***@{tail.split('@', 1)[1]}"
    return url


def open_storage(url: str, create: bool = False, retry_failed: int = 0
                 ) -> optuna.storages.BaseStorage:
    """The storage behind `url`; with `create`, a missing file (and its folder) is made.

    Bad URLs, missing drivers, files that are not databases and schemas of another Optuna
    version raise one-line errors naming the URL and the fix. `retry_failed` > 0: a trial of a
    dead worker is enqueued again, up to that many times (Optuna's RetryFailedTrialCallback).
    """
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if "://" not in url or not scheme:
        raise UsageError(f"--storage {url!r} is not a storage URL; fix: {_URL_FIX}")
    file = storage_file(url)
    if file is not None:
        if file.is_dir():
            raise UsageError(f"{file}: is a folder, not a storage file; fix: {_URL_FIX}")
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
    if url.startswith(JOURNAL):
        assert file is not None
        return _journal(file)
    with storage_lock(url) if create else contextlib.nullcontext():
        return _rdb(url, file, retry_failed)


def _journal(file: Path) -> optuna.storages.BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return JournalStorage(JournalFileBackend(str(file)))
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise CommandFailed(f"{file}: cannot be read as an Optuna journal ({_first_line(err)});"
                            " it is left as it is; fix: pass --storage with another file") from None


def _rdb(url: str, file: Path | None, retry_failed: int) -> optuna.storages.BaseStorage:
    import sqlalchemy.exc

    scheme = url.split(":", 1)[0]
    # Heartbeats: a trial whose process died without a word (kill -9, power loss) is marked
    # FAIL by a later run after the grace period instead of staying RUNNING forever.
    # Not on in-memory SQLite: one process, which its trials die with; and the heartbeat
    # thread's own connection would open another, empty database ("no such table:
    # trial_heartbeats").
    heartbeat = not (scheme.startswith("sqlite") and file is None)
    kwargs: dict[str, Any] = {"heartbeat_interval": 60, "grace_period": 300} if heartbeat else {}
    if retry_failed > 0 and heartbeat:
        with warnings.catch_warnings():  # "experimental" since Optuna 2.8, and works
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            kwargs["heartbeat_stale_trial_callback"] = \
                optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retry_failed)
    if file is not None:
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5, and work
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(_driver_url(url), **kwargs)
        if file is not None:  # a SQLite file; :memory: lives in its one connection
            _serialise_sqlite(storage.engine)
        return storage
    except sqlalchemy.exc.ArgumentError as err:
        raise UsageError(f"--storage {redacted(url)!r} is not a storage URL "
                         f"({_first_line(err)}); fix: {_URL_FIX}") from None
    except (ImportError, sqlalchemy.exc.NoSuchModuleError) as err:
        raise UsageError(f"--storage {redacted(url)!r}: no database driver for '{scheme}' "
                         f"({_first_line(err)}); fix: install it (PostgreSQL: pip install "
                         "'psycopg[binary]') or use a sqlite:/// URL") from None
    except sqlalchemy.exc.DatabaseError as err:
        where = str(file) if file is not None else redacted(url)
        raise CommandFailed(f"{where}: cannot be read as an Optuna storage "
                            f"({_first_line(err.orig or err)}); it is left as it is; fix: "
                            "pass --storage with another file or URL") from None
    except RuntimeError as err:  # a schema of another Optuna version
        raise CommandFailed(f"{redacted(url)}: {_first_line(err)}; fix: `optuna storage "
                            f"upgrade --storage URL` (after a backup)") from None


def _serialise_sqlite(engine: Any) -> None:
    """Make every transaction on this SQLite engine take the write lock when it begins.

    pysqlite runs a SELECT outside any transaction and SQLite ignores SELECT ... FOR UPDATE, so
    Optuna's read-check-write steps (a worker taking a WAITING trial: the paper trial, a design
    row, a retried one) ran unlocked: two workers could both read WAITING and both run the trial,
    the second then failing on `tell`. With BEGIN IMMEDIATE (SQLAlchemy's documented pysqlite
    recipe) the second waits for the first's commit and reads RUNNING. Transactions are a few
    milliseconds long, so serialising them costs nothing next to a trial.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" below emits it instead

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections pooled while Optuna set up predate the hooks


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker is gone; return their numbers.

    A worker of this host that no longer runs is known dead at once (its pid and start time
    are in the trial's attrs); others are left to Optuna's heartbeat (stale after the grace
    period; RDB storages only). A trial failed here is retried like a heartbeat-failed one when
    the storage has a retry callback (`--retry-failed`).
    """
    storage = study._storage
    with warnings.catch_warnings():  # "experimental" since Optuna 2.9, and works
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not worker_dead(TrialRecord.from_trial(trial).worker):
            continue
        try:
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                failed.append(trial.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        callback = getattr(storage, "get_heartbeat_stale_trial_callback", lambda: None)()
        if callback is not None:
            callback(study, storage.get_trial(trial._trial_id))
    return failed


def mark_worker(trial: optuna.Trial) -> None:
    """Record which process runs `trial`, so a later run can tell if it died, and its CPU
    threads and kernel level: the same trial on another count or CPU sums floats in another
    order and ends elsewhere (procs.float_setting)."""
    TrialRecord(worker={**this_worker(), **float_setting()}).write(trial)
