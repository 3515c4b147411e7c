"""Fixed-settings tables (TOML) onto frozen dataclasses: defaults in code, overrides in files."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from asc_auto.errors import ConfigError

T = TypeVar("T")


def dataclass_from_table(cls: type[T], values: dict[str, Any], file: str, table: str) -> T:
    """`cls()` with `values` applied; unknown keys and wrong types name `table.key` and the file.

    Types follow the defaults: an int is accepted for a float, a bool never for a number.
    """
    defaults = cls()
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(file, f"{table}.{key}", "unknown key", f"allowed: {', '.join(names)}")
        want = type(getattr(defaults, key))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or isinstance(value, bool) != (want is bool):
            raise ConfigError(file, f"{table}.{key}", f"must be {want.__name__}, got {value!r}")
        clean[key] = value
    return dataclasses.replace(defaults, **clean)  # type: ignore[type-var]
