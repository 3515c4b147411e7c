"""Model registry (timm style): a dict plus a decorator; a new model is usable and tested by name.

Every model module in ``asc_auto.models`` registers its builders with ``@register_model``; this
module imports them all once (at the end of the file), so ``MODELS`` is complete as soon as the
registry is imported and a newly added model file needs no edit here.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from asc_auto.errors import AscError

MODELS: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])
C = TypeVar("C")


def register_model(name: str) -> Callable[[F], F]:
    """Register a builder under `name`; a duplicate name is a programming error, not an override."""

    def decorator(builder: F) -> F:
        if name in MODELS and MODELS[name] is not builder:
            raise ValueError(f"model '{name}' is already registered by {MODELS[name]!r}")
        MODELS[name] = builder
        return builder

    return decorator


def available_models() -> list[str]:
    """Sorted names of every registered model."""
    return sorted(MODELS)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered as `name`; kwargs override fields of its config dataclass."""
    if name not in MODELS:
        known = ", ".join(available_models()) or "(none)"
        raise AscError(f"unknown model '{name}'; known models: {known}")
    return MODELS[name](**kwargs)


def build_config(
    config_cls: type[C], config: C | None, overrides: Mapping[str, Any], model: str
) -> C:
    """Merge overrides into a frozen config; unknown keys are errors, lists become tuples.

    Lists arrive from TOML files; converting them keeps configs hashable and comparable.
    """
    base = config if config is not None else config_cls()
    fields = {f.name for f in dataclasses.fields(base)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise AscError(
            f"model '{model}': unknown config key(s) {', '.join(unknown)}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    clean = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return dataclasses.replace(base, **clean)  # type: ignore[type-var]


def _discover() -> None:
    """Import every sibling module so their @register_model decorators run."""
    package = importlib.import_module("asc_auto.models")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "registry" and not info.name.startswith("_"):
            importlib.import_module(f"asc_auto.models.{info.name}")


_discover()
