"""Built-in techniques register themselves on import; `TECHNIQUES` maps names to classes."""

from asc_auto.techniques import (
    baseline,  # noqa: F401  (registers "baseline")
    gcc,  # noqa: F401  (registers "gcc")
    int8,  # noqa: F401  (registers "int8")
    kd,  # noqa: F401  (registers "kd")
    lt,  # noqa: F401  (registers "lt")
)
from asc_auto.techniques.base import TECHNIQUES, Technique, get_technique, register_technique

__all__ = ["TECHNIQUES", "Technique", "get_technique", "register_technique"]
