"""Fixed-settings tables (TOML) onto frozen dataclasses: defaults in code, overrides in files.

Every numeric field carries its allowed range beside it (`ranged(default, low, high)`), so a
value outside is refused when the file is read, as one line naming the file, `table.key`, the
range and a fix, instead of crashing a trial (`batch_size = 0`) or recording a meaningless one
(`epochs = 0`). A numeric field without a declared range is a programming error that the first
parse reports, so a new settings table cannot forget its ranges. A dataclass registered with
`settings_table` is checked when its space file is loaded (`asc_auto.space.load_space`), before
any work.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from asc_auto.errors import AscError, ConfigError
from asc_auto.registry import Registry

T = TypeVar("T")
RANGE = "range"  # dataclass field metadata key holding a Range


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric setting: [low, high], or (low, high] when `low_open`; None is
    unbounded. Non-finite floats (nan, inf, which TOML allows) are never in range."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def __str__(self) -> str:
        lo = "(-inf" if self.low is None else f"{'(' if self.low_open else '['}{self.low:g}"
        hi = "inf)" if self.high is None else f"{self.high:g}]"
        return f"{lo}, {hi}"

    def problem(self, value: Any) -> str | None:
        """Why `value` is out of range, or None when it is in range (or not a number)."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number in {self}, got {value!r}"
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        low, high = self.low, self.high
        too_low = low is not None and (value <= low if self.low_open else value < low)
        too_high = high is not None and value > high
        return f"must be in {self}, got {value!r}" if too_low or too_high else None


def ranged(default: Any, low: float | None = None, high: float | None = None,
           low_open: bool = False) -> Any:
    """A dataclass field whose value must lie in [low, high] ((low, high] if `low_open`);
    `ranged(0)` declares an unbounded (but finite) number."""
    return dataclasses.field(default=default, metadata={RANGE: Range(low, high, low_open)})


# Settings table name -> its dataclass; filled by @settings_table where each one is defined.
SETTINGS_TABLES: Registry[type] = Registry("settings table")


def settings_table(name: str) -> Callable[[type[T]], type[T]]:
    """Register `cls` as the dataclass of the space-file table `name`, so `load_space` checks
    the table (and its `[demo.name]` overrides) when the file is read, not mid-trial."""
    return SETTINGS_TABLES.register(name)


def table_values(cls: type, values: dict[str, Any], file: str, table: str) -> dict[str, Any]:
    """`values` checked against the fields of dataclass `cls`: unknown keys, wrong types and
    values outside a field's range raise ConfigError naming the file and `table.key`; returns
    them with ints widened to floats where a float is wanted.

    Types follow the annotations (`float | None` accepts None); a bool is never a number.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unranged = [n for n, f in fields.items()
                if _numeric(hints[n]) and not isinstance(f.metadata.get(RANGE), Range)]
    if unranged:  # a programming error: found by the first test that reads such a table
        raise TypeError(f"{cls.__name__}: numeric fields {unranged} declare no range; "
                        "use asc_auto.tables.ranged(default, low, high)")
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(file, f"{table}.{key}", "unknown key",
                              f"allowed: {', '.join(fields)}")
        value = _typed(value, hints[key], file, f"{table}.{key}")
        bounds = fields[key].metadata.get(RANGE)
        problem = bounds.problem(value) if bounds is not None else None
        if problem:
            default = fields[key].default
            example = f", e.g. the default {default!r}" if _number(default) else ""
            raise ConfigError(file, f"{table}.{key}", problem,
                              f"use a value in {bounds}{example}")
        clean[key] = value
    return clean


def dataclass_from_table(cls: type[T], values: dict[str, Any], file: str, table: str) -> T:
    """`cls()` with the checked `values` of a table applied (see `table_values`)."""
    return dataclasses.replace(cls(), **table_values(cls, values, file, table))  # type: ignore[type-var]


def dataclass_with(base: T, overrides: Mapping[str, Any], what: str) -> T:
    """`base` (a frozen dataclass built in code, e.g. a model config) with keyword overrides:
    unknown keys raise AscError naming `what` and the valid keys; lists (from TOML) become
    tuples, so configs stay hashable and comparable. Values are checked by the dataclass's own
    `__post_init__`, not by declared ranges (settings tables use `table_values`)."""
    fields = {f.name for f in dataclasses.fields(base)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise AscError(f"{what}: unknown config key(s) {', '.join(unknown)}; "
                       f"valid keys: {', '.join(sorted(fields))}")
    clean = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(base, **clean)  # type: ignore[type-var]


def range_problems(obj: Any) -> list[tuple[str, str, str]]:
    """(key, problem, fix) for every field of dataclass `obj` outside its declared range: the
    same check for a config built in code as for one read from a table."""
    out = []
    for f in dataclasses.fields(obj):
        bounds = f.metadata.get(RANGE)
        problem = bounds.problem(getattr(obj, f.name)) if bounds is not None else None
        if problem:
            out.append((f.name, problem, f"use a value in {bounds}"))
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _options(tp: Any) -> tuple[Any, ...]:
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    return typing.get_args(tp) if union else (tp,)


def _numeric(tp: Any) -> bool:
    return any(o in (int, float) for o in _options(tp))


def _typed(value: Any, tp: Any, file: str, key: str) -> Any:
    """`value` as annotation `tp` allows (an int for a float, None for an optional) or raise."""
    options = _options(tp)
    for option in options:
        if option is type(None) and value is None:
            return None
        if option is bool and isinstance(value, bool):
            return value
        if isinstance(value, bool):
            continue
        if option is float and isinstance(value, (int, float)):
            return float(value)
        if option in (int, str) and isinstance(value, option):
            return value
    wanted = " or ".join(getattr(o, "__name__", str(o)) for o in options
                         if o is not type(None))
    raise ConfigError(file, key, f"must be {wanted}, got {value!r}")
