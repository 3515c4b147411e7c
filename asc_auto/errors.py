"""One exception family so the CLI can turn any user-facing failure into a one-line message."""

from __future__ import annotations

from pathlib import Path


class AscError(Exception):
    """Base of every error that is the user's to fix (bad input, bad config); the CLI prints it
    as one line and exits with `exit_code` (2: the input or the command line is wrong)."""

    exit_code = 2


class UsageError(AscError):
    """A command-line value that cannot work (a study name, a clash of options)."""


class CommandFailed(AscError):
    """The input was acceptable but the work failed (a check of the result did not pass, a
    storage could not be read): exit code 1."""

    exit_code = 1


class DataError(AscError):
    """Bad dataset input: names the file, the row (1-based, header is row 1) and the fix."""

    def __init__(self, file: Path | str, problem: str, fix: str, row: int | None = None) -> None:
        self.file = str(file)
        self.row = row
        self.problem = problem
        self.fix = fix
        where = f"{self.file}, row {row}" if row is not None else self.file
        super().__init__(f"{where}: {problem}; fix: {fix}")


class ConfigError(AscError):
    """Bad search-space or configuration file: names the file and the key."""

    def __init__(self, file: Path | str, key: str, problem: str, fix: str = "") -> None:
        self.file = str(file)
        self.key = key
        msg = f"{file}: key '{key}': {problem}"
        if fix:
            msg += f"; fix: {fix}"
        super().__init__(msg)


class TrainingDiverged(CommandFailed):
    """The loss or the model's outputs became NaN/inf: the run's result would be meaningless, so
    it fails (a trial is recorded FAIL with this reason) instead of being scored."""
