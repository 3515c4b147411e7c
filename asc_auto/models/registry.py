"""Model registry (timm style, asc_auto.registry): a new model is usable and tested by name.

Every model module in ``asc_auto.models`` registers its builders with ``@register_model``; this
module imports them all once (at the end of the file), so ``MODELS`` is complete as soon as the
registry is imported and a newly added model file needs no edit here.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

from asc_auto.registry import Registry
from asc_auto.tables import dataclass_with

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")

F = TypeVar("F", bound=Callable[..., nn.Module])
C = TypeVar("C")


def register_model(name: str) -> Callable[[F], F]:
    """Register a builder under `name`; a duplicate name is a programming error, not an override."""
    return MODELS.register(name)  # type: ignore[return-value]


def available_models() -> list[str]:
    """Sorted names of every registered model."""
    return sorted(MODELS)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered as `name`; kwargs override fields of its config dataclass."""
    return MODELS.lookup(name)(**kwargs)


def build_config(
    config_cls: type[C], config: C | None, overrides: Mapping[str, Any], model: str
) -> C:
    """A model's config: `config` (or the defaults) with keyword overrides laid on it by
    `tables.dataclass_with` (unknown keys are errors, lists from TOML become tuples)."""
    base = config if config is not None else config_cls()
    return dataclass_with(base, overrides, f"model '{model}'")


def _discover() -> None:
    """Import every sibling module so their @register_model decorators run."""
    package = importlib.import_module("asc_auto.models")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "registry" and not info.name.startswith("_"):
            importlib.import_module(f"asc_auto.models.{info.name}")


_discover()
