"""One registry style for the house: a named dict filled by a decorator where each entry is
defined (techniques, models, frontends, settings tables).

Looking an entry up by a name a user typed gives one line listing the known names; a second,
different entry under a taken name is a programming error, found at import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from asc_auto.errors import AscError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """name -> entry; `what` names the kind of entry in messages ("technique", "model")."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def add(self, name: str, entry: T) -> T:
        """Register `entry` as `name` (the same entry again is a no-op) and return it."""
        if self.get(name, entry) is not entry:
            raise ValueError(f"{self.what} {name!r} is already registered by {self[name]!r}")
        self[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@REGISTRY.register("name")` above a class or builder."""
        return lambda entry: self.add(name, entry)

    def lookup(self, name: str) -> T:
        """The entry registered as `name`; an unknown name lists the known ones."""
        if name not in self:
            known = ", ".join(sorted(self)) or "(none)"
            raise AscError(f"unknown {self.what} {name!r}; known: {known}")
        return self[name]
