"""Fixed-settings tables (TOML) onto frozen dataclasses: defaults in code, overrides in files."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

from asc_auto.errors import ConfigError

T = TypeVar("T")
RANGE = "range"  # field metadata: (low, high, low_open); None = unbounded


def ranged(default: Any, low: float | None = None, high: float | None = None,
           low_open: bool = False) -> Any:
    """A dataclass field whose table value must lie in [low, high] ((low, high] if `low_open`):
    a value outside is refused when the table is read, not found as a crash mid-trial."""
    return dataclasses.field(default=default, metadata={RANGE: (low, high, low_open)})


def _range_problem(value: Any, bounds: tuple[float | None, float | None, bool]) -> str | None:
    low, high, low_open = bounds
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if not (too_low or too_high):
        return None
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"must be in {'(' if low_open else '['}{lo}, {hi}], got {value!r}"


def dataclass_from_table(cls: type[T], values: dict[str, Any], file: str, table: str) -> T:
    """`cls()` with `values` applied; unknown keys, wrong types and values outside a field's
    `ranged` bounds name `table.key` and the file.

    Types follow the defaults: an int is accepted for a float, a bool never for a number.
    """
    defaults = cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    names = list(fields)
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(file, f"{table}.{key}", "unknown key", f"allowed: {', '.join(names)}")
        want = type(getattr(defaults, key))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or isinstance(value, bool) != (want is bool):
            raise ConfigError(file, f"{table}.{key}", f"must be {want.__name__}, got {value!r}")
        bounds = fields[key].metadata.get(RANGE)
        problem = _range_problem(value, bounds) if bounds else None
        if problem:
            raise ConfigError(file, f"{table}.{key}", problem,
                              f"use a value in range, e.g. the default {getattr(defaults, key)!r}")
        clean[key] = value
    return dataclasses.replace(defaults, **clean)  # type: ignore[type-var]
