"""Search spaces live in TOML files (asc_auto/searchspace/<technique>.toml), not in code.

A space file says what is searched (``[params.*]``), what is fixed (``[features]``, ``[train]`` and
technique tables such as ``[teacher]``), the seed paper's configuration (``[paper]``, enqueued as
every study's first trial), configurations measured to do well elsewhere (``[[portfolio]]``,
tried right after it: portfolio.py) and overrides for the built-in demo data
(``[demo.<table>]``). Unknown
keys, wrong types and values out of range are errors that name the file and the key, raised
when the file is loaded (every settings table with a registered dataclass, its demo overrides
and every searched range): a typo must never fall back to a silent default, and a bad value
must not surface as a crash in the middle of a search.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna

from asc_auto.errors import ConfigError, UsageError
from asc_auto.keys import digest
from asc_auto.tables import SETTINGS_TABLES, table_values
from asc_auto.train import TrainConfig

# The shipped space files are package data (pyproject [tool.setuptools.package-data]), so an
# installed asc-auto finds them wherever it runs; default_space_file is the one way to them.
SPACE_DIR = Path(__file__).resolve().parent / "searchspace"
AUTO = "auto"  # clip_seconds = "auto": the dataset's longest clip
PARAM_TYPES = ("int", "float", "categorical", "simplex")
TOP_LEVEL = {"technique", "description", "features", "train", "params", "paper", "portfolio",
             "demo"}
_PARAM_KEYS = {
    "int": {"type", "low", "high", "step", "log", "help"},
    "float": {"type", "low", "high", "step", "log", "help"},
    "categorical": {"type", "choices", "help"},
    "simplex": {"type", "names", "help"},
}


@dataclass(frozen=True)
class ParamSpec:
    """One searched parameter. A simplex spec yields several normalised values summing to one."""

    name: str
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    names: tuple[str, ...] = ()

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Ask the trial for this parameter; returns the configuration values it defines."""
        if self.type == "int":
            step = int(self.step or 1)
            return {self.name: trial.suggest_int(self.name, int(self.low), int(self.high),
                                                 step=step, log=self.log)}
        if self.type == "float":
            return {self.name: trial.suggest_float(self.name, self.low, self.high,
                                                   step=self.step, log=self.log)}
        if self.type == "categorical":
            return {self.name: trial.suggest_categorical(self.name, list(self.choices))}
        # Simplex: independent raw weights in [0, 1], normalised. Optuna has no simplex
        # distribution; raw weights keep TPE's per-dimension model meaningful.
        raw = [trial.suggest_float(f"{n}_w", 0.0, 1.0) for n in self.names]
        return dict(zip(self.names, normalise_simplex(raw), strict=True))

    def enqueue_params(self, value: Any) -> dict[str, Any]:
        """Trial params that reproduce `value` (a dict of components for a simplex)."""
        if self.type != "simplex":
            return {self.name: value}
        return {f"{n}_w": float(value[n]) for n in self.names}


def normalise_simplex(raw: list[float]) -> list[float]:
    """Scale non-negative weights to sum to one; all-zero weights mean equal weights."""
    total = sum(raw)
    if total <= 0:
        return [1.0 / len(raw)] * len(raw)
    return [r / total for r in raw]


@dataclass(frozen=True)
class PortfolioEntry:
    """One `[[portfolio]]` configuration: its name, why it is there, and the full point (the
    paper's values for every parameter the entry does not give)."""

    name: str
    note: str
    point: dict[str, Any]


@dataclass(frozen=True)
class SearchSpace:
    """A parsed, validated space file."""

    file: Path
    technique: str
    description: str
    features: dict[str, Any]
    train: dict[str, Any]
    tables: dict[str, dict[str, Any]]
    params: tuple[ParamSpec, ...]
    paper: dict[str, Any]
    demo: dict[str, dict[str, Any]] = field(default_factory=dict)
    portfolio: tuple[PortfolioEntry, ...] = ()

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """Sample one configuration: every param, simplex components expanded."""
        config: dict[str, Any] = {}
        for spec in self.params:
            config.update(spec.suggest(trial))
        return config

    def paper_trial_params(self) -> dict[str, Any]:
        """Optuna params that make a trial evaluate exactly the seed paper's configuration."""
        return self.trial_params(self.paper)

    def trial_params(self, point: Mapping[str, Any], partial: bool = False) -> dict[str, Any]:
        """Optuna params that make a trial evaluate exactly `point` (a full configuration with
        simplex components by name, as [paper] gives them). `partial`: params the point does not
        name are left out, for the sampler to choose (a portfolio entry measured before a
        search's sources added params, e.g. int8's distillation weight)."""
        out: dict[str, Any] = {}
        for spec in self.params:
            if partial and not all(n in point for n in (spec.names or (spec.name,))):
                continue
            value = (
                {n: point[n] for n in spec.names} if spec.type == "simplex"
                else point[spec.name]
            )
            out.update(spec.enqueue_params(value))
        return out

    def with_overrides(self, overrides: dict[str, dict[str, Any]]) -> SearchSpace:
        """The space with fixed table values replaced: [features], [train] or a technique table
        (CLI switches such as --no-gcc, benchmark arms such as train.time_masks=0)."""
        return self._merged(overrides, "", new_keys=True)

    def with_clip_seconds(self, measure: Callable[[], float]) -> SearchSpace:
        """The space with ``clip_seconds = "auto"`` in [features] replaced by `measure()` (the
        dataset's longest clip), so features are as long as the recordings: TAU's 10 s clips stay
        10 s, 3 s office events are not padded with 7 s of silence. Other values pass through."""
        value = self.features.get("clip_seconds")
        if not isinstance(value, str):
            return self
        if value != AUTO:
            raise ConfigError(self.file, "features.clip_seconds", f"is {value!r}",
                              'give seconds (e.g. 10.0) or "auto" (the longest clip)')
        return dataclasses.replace(self, features={**self.features, "clip_seconds": measure()})

    def for_demo(self) -> SearchSpace:
        """The space with its ``[demo.*]`` overrides applied (used on the built-in demo data)."""
        return dataclasses.replace(self._merged(self.demo, "demo.", new_keys=False), demo={})

    def _merged(self, overrides: dict[str, dict[str, Any]], prefix: str,
                new_keys: bool) -> SearchSpace:
        """The space with values of its fixed tables replaced. An unknown table is a ConfigError
        named `{prefix}{table}`; so is a key the file lacks unless `new_keys` (a CLI switch may
        set a key a user's file leaves at its default; the table's dataclass still refuses a
        key it does not have when the settings are built)."""
        merged = {k: dict(v) for k, v in self.tables.items()}
        features, train = dict(self.features), dict(self.train)
        for table, values in overrides.items():
            target = {"features": features, "train": train}.get(table, merged.get(table))
            if target is None:
                raise ConfigError(self.file, f"{prefix}{table}", "no such table to override")
            for key, value in values.items():
                if key not in target and not new_keys:
                    raise ConfigError(self.file, f"{prefix}{table}.{key}",
                                      f"not a key of [{table}]", "override existing keys only")
                target[key] = value
        return dataclasses.replace(self, features=features, train=train, tables=merged)


def default_space_file(technique: str) -> Path:
    """Where a technique's shipped space file lives."""
    return SPACE_DIR / f"{technique}.toml"


def shipped_spaces() -> list[str]:
    """Names of the space files shipped with asc-auto (kd, kd-small, ...)."""
    return sorted(p.stem for p in SPACE_DIR.glob("*.toml"))


def resolve_space(given: Path | None) -> Path | None:
    """`--space` as given: an existing file, or the name of a shipped space (`kd-small`), which
    an installed asc-auto finds wherever it runs; None keeps the technique's own."""
    if given is None or Path(given).is_file():
        return given
    name = Path(given).name.removesuffix(".toml")
    if str(given) in (name, f"{name}.toml") and name in shipped_spaces():
        return default_space_file(name)
    raise UsageError(f"{given}: no such search-space file or shipped space; fix: pass an "
                     f"existing TOML file or one of {', '.join(shipped_spaces())}")


def load_space(file: Path, technique: str, technique_tables: set[str],
               choices: Mapping[str, Sequence[Any]] | None = None,
               ranges: Mapping[str, tuple[float, float]] | None = None) -> SearchSpace:
    """Parse and validate a space file for `technique`; `technique_tables` are its extra tables,
    `choices` the values it understands for its categorical params (`Technique.choices`),
    `ranges` the half-open [low, high) its numeric params must lie in (`Technique.ranges`)."""
    file = Path(file)
    if not file.is_file():
        raise ConfigError(file, "-", "search-space file not found",
                          f"pass --space with an existing file, e.g. "
                          f"{default_space_file(technique)}")
    try:
        doc = tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "-", f"not valid TOML ({exc})") from None
    allowed = TOP_LEVEL | technique_tables
    for key in doc:
        if key not in allowed:
            raise ConfigError(file, key, "unknown key", f"allowed: {', '.join(sorted(allowed))}")
    if doc.get("technique") != technique:
        raise ConfigError(file, "technique", f"is {doc.get('technique')!r}, expected {technique!r}")
    for table in ("features", "train", "params", "paper", *technique_tables):
        if not isinstance(doc.get(table, {}), dict):
            raise ConfigError(file, table, "must be a table")
    params = tuple(_parse_param(file, name, spec) for name, spec in doc.get("params", {}).items())
    if not params:
        raise ConfigError(file, "params", "no searched parameters", "add [params.NAME] tables")
    _check_choices(file, params, choices or {})
    _check_ranges(file, params, ranges or {})
    paper = doc.get("paper", {})
    _check_point(file, params, paper, "paper")
    portfolio = _parse_portfolio(file, params, paper, doc.get("portfolio", []))
    demo = doc.get("demo", {})
    if not isinstance(demo, dict) or not all(isinstance(v, dict) for v in demo.values()):
        raise ConfigError(file, "demo", "must hold tables like [demo.train]")
    _check_settings(file, doc, technique_tables)
    return SearchSpace(
        file=file,
        technique=technique,
        description=str(doc.get("description", "")),
        features=dict(doc.get("features", {})),
        train=dict(doc.get("train", {})),
        tables={t: dict(doc.get(t, {})) for t in technique_tables},
        params=params,
        paper=paper,
        demo=demo,
        portfolio=portfolio,
    )


class SpaceReader(Protocol):
    """What `load_technique_space` needs of a technique: what its space files may hold."""

    name: str
    tables: frozenset[str]
    choices: Mapping[str, tuple[Any, ...]]
    ranges: Mapping[str, tuple[float, float]]


def load_technique_space(file: Path, technique: SpaceReader) -> SearchSpace:
    """`load_space` with everything `technique` says its files may hold (the context's, a
    benchmark's and a test's way to read a space alike)."""
    return load_space(file, technique.name, set(technique.tables), technique.choices,
                      technique.ranges)


def _check_choices(file: Path, params: tuple[ParamSpec, ...],
                   choices: Mapping[str, Sequence[Any]]) -> None:
    """A param the technique reads as one of fixed values must be categorical over those values:
    a typo such as "unstuctured" must not build some other model in the middle of a search."""
    for spec in params:
        allowed = choices.get(spec.name)
        if allowed is None:
            continue
        if spec.type != "categorical":
            listed = ", ".join(repr(a) for a in allowed)
            raise ConfigError(file, f"params.{spec.name}.type", f"is {spec.type!r}",
                              f'use type = "categorical" with choices from {listed}')
        for value in spec.choices:
            check_choice(file, f"params.{spec.name}.choices", value, allowed)


def check_choice(file: Path | str, key: str, value: Any, allowed: Sequence[Any]) -> Any:
    """`value`, refused with a ConfigError at `key` unless it is one of `allowed` (with its
    type: bool is an int in Python, and True must not pass for 1, or 1 for True). One wording
    for a space file read and for a trial enqueued by hand."""
    if not any(value == a and type(value) is type(a) for a in allowed):
        raise ConfigError(file, key, f"{value!r} is not a value this technique understands",
                          f"use values from {', '.join(repr(a) for a in allowed)}")
    return value


def _check_ranges(file: Path, params: tuple[ParamSpec, ...],
                  ranges: Mapping[str, tuple[float, float]]) -> None:
    """A numeric param the technique reads must stay inside what it means (lt's sparsity: a
    fraction below 1), refused when the file is read, not in the middle of a search."""
    for spec in params:
        if spec.name in ranges:
            values = spec.choices if spec.type == "categorical" else (spec.low, spec.high)
            for value in values:
                check_in_range(file, f"params.{spec.name}", value, ranges[spec.name])


def check_in_range(file: Path | str, key: str, value: Any,
                   bounds: tuple[float, float]) -> float:
    """`value` as a float, refused with a ConfigError at `key` unless it is a number in the
    half-open `bounds`. One wording for a space file read and for a trial enqueued by hand."""
    low, high = bounds
    fix = f"use numbers in [{low:g}, {high:g})"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy's too
        raise ConfigError(file, key, f"{value!r} is not a number", fix)
    if not low <= value < high:
        raise ConfigError(file, key, f"{value!r} is outside [{low:g}, {high:g})", fix)
    return float(value)


def _check_settings(file: Path, doc: dict[str, Any], technique_tables: set[str]) -> None:
    """Keys, types and ranges of [train] and of every technique table with a registered
    settings dataclass (`asc_auto.tables.settings_table`), and of their [demo.*] overrides."""
    known = {"train": TrainConfig,
             **{t: SETTINGS_TABLES[t] for t in sorted(technique_tables) if t in SETTINGS_TABLES}}
    for table, cls in known.items():
        table_values(cls, doc.get(table, {}), str(file), table)
        table_values(cls, doc.get("demo", {}).get(table, {}), str(file), f"demo.{table}")


def _parse_param(file: Path, name: str, spec: Any) -> ParamSpec:
    key = f"params.{name}"
    if not isinstance(spec, dict):
        raise ConfigError(file, key, "must be a table with a 'type'")
    ptype = spec.get("type")
    if ptype not in PARAM_TYPES:
        raise ConfigError(file, f"{key}.type", f"is {ptype!r}", f"one of {', '.join(PARAM_TYPES)}")
    for k in spec:
        if k not in _PARAM_KEYS[ptype]:
            raise ConfigError(file, f"{key}.{k}", f"unknown key for a {ptype} parameter",
                              f"allowed: {', '.join(sorted(_PARAM_KEYS[ptype]))}")
    if ptype in ("int", "float"):
        return _parse_numeric(file, key, name, ptype, spec)
    if ptype == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(file, f"{key}.choices", "must be a non-empty list")
        odd = [c for c in choices if not isinstance(c, (bool, int, float, str))]
        if odd:  # Optuna stores only scalars faithfully
            raise ConfigError(file, f"{key}.choices", f"{odd[0]!r} is not a number, string or "
                              "boolean", "list scalar choices, e.g. [3, 5]")
        return ParamSpec(name, ptype, choices=tuple(choices))
    names = spec.get("names")
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) for n in names):
        raise ConfigError(file, f"{key}.names", "must list at least two component names")
    return ParamSpec(name, ptype, names=tuple(names))


def _parse_numeric(file: Path, key: str, name: str, ptype: str, spec: dict) -> ParamSpec:
    want = int if ptype == "int" else (int, float)
    kind = "an integer" if ptype == "int" else "a finite number"
    for bound in ("low", "high"):
        value = spec.get(bound)
        if not _number(value, want):
            raise ConfigError(file, f"{key}.{bound}", f"must be {kind}, got {value!r}")
    low, high = spec["low"], spec["high"]
    if low > high:
        raise ConfigError(file, key, f"low {low} > high {high}", "swap low and high")
    step = spec.get("step")
    if step is not None and (not _number(step, want) or step <= 0):
        raise ConfigError(file, f"{key}.step", f"must be a positive number, got {step!r}",
                          "use a step > 0, or leave it out")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(file, f"{key}.log", "must be true or false")
    if log and low <= 0:
        raise ConfigError(file, f"{key}.low", f"log scale needs low > 0, got {low}",
                          "raise low above 0, or set log = false")
    if log and step is not None and (ptype == "float" or step != 1):
        raise ConfigError(file, f"{key}.step", "log scale takes no step (Optuna refuses it)",
                          "leave out step, or set log = false")
    return ParamSpec(name, ptype, low=low, high=high, step=step, log=log)


def _number(value: Any, want: type | tuple[type, ...]) -> bool:
    """A finite int/float of the wanted kind (TOML allows nan and inf; a bool is no number)."""
    if isinstance(value, bool) or not isinstance(value, want):
        return False
    return math.isfinite(value)


def _check_point(file: Path, params: tuple[ParamSpec, ...], point: dict[str, Any],
                 label: str) -> None:
    """A point ([paper], or a portfolio entry over it) must name every searched value and lie
    inside the space; errors name the key as `label.key`."""
    expected: set[str] = set()
    for spec in params:
        expected.update(spec.names if spec.type == "simplex" else (spec.name,))
    for key in point:
        if key not in expected:
            raise ConfigError(file, f"{label}.{key}", "is not a searched parameter")
    for spec in params:
        if spec.type == "simplex":
            values = [point.get(n) for n in spec.names]
            if any(not isinstance(v, (int, float)) or v < 0 or v > 1 for v in values):
                raise ConfigError(file, f"{label}.{spec.names[0]}",
                                  f"simplex components {spec.names} must all be numbers in [0, 1]")
            if not math.isclose(sum(values), 1.0, abs_tol=1e-6):
                raise ConfigError(file, label, f"components {spec.names} must sum to 1")
            continue
        if spec.name not in point:
            raise ConfigError(file, f"{label}.{spec.name}", "missing", f"give the {label} value")
        value = point[spec.name]
        if spec.type == "categorical":
            if value not in spec.choices:
                raise ConfigError(file, f"{label}.{spec.name}", f"{value!r} not in choices")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            spec.low <= value <= spec.high
        ):
            raise ConfigError(file, f"{label}.{spec.name}",
                              f"{value!r} outside [{spec.low}, {spec.high}]")


def _parse_portfolio(file: Path, params: tuple[ParamSpec, ...], paper: dict[str, Any],
                     raw: Any) -> tuple[PortfolioEntry, ...]:
    """`[[portfolio]]` tables: a unique `name`, an optional `note`, and searched values that
    replace the paper's (a simplex's components all together); each merged point must lie inside
    the space like the paper's."""
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise ConfigError(file, "portfolio", "must be [[portfolio]] tables",
                          'write each entry as [[portfolio]] with name = "..." and values')
    simplex = {n: spec for spec in params if spec.type == "simplex" for n in spec.names}
    entries: list[PortfolioEntry] = []
    for i, entry in enumerate(raw):
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(file, f"portfolio[{i}].name", "missing or empty",
                              'give each entry a name = "..."')
        if any(e.name == name for e in entries):
            raise ConfigError(file, f"portfolio.{name}", "name used twice", "rename one entry")
        note = entry.get("note", "")
        if not isinstance(note, str):
            raise ConfigError(file, f"portfolio.{name}.note", "must be a string")
        values = {k: v for k, v in entry.items() if k not in ("name", "note")}
        for key in values:
            spec = simplex.get(key)
            if spec is not None and not all(n in values for n in spec.names):
                raise ConfigError(file, f"portfolio.{name}.{key}",
                                  f"gives part of the simplex {spec.names}", "give all of them")
        point = {**paper, **values}
        _check_point(file, params, point, f"portfolio.{name}")
        entries.append(PortfolioEntry(name, note, point))
    return tuple(entries)


def space_digest(space: SearchSpace) -> str:
    """Everything a space decides (features, training, tables, params, paper point), after the
    demo profile and CLI overrides; not the file's path, comments or layout."""
    return digest({"technique": space.technique, "features": space.features,
                   "train": space.train, "tables": space.tables,
                   "params": [dataclasses.asdict(p) for p in space.params],
                   "paper": space.paper})
