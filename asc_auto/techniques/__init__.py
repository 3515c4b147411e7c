"""Built-in techniques register themselves on import; `TECHNIQUES` maps names to classes."""

from asc_auto.techniques import kd  # noqa: F401  (registers "kd")
from asc_auto.techniques.base import TECHNIQUES, Technique, get_technique, register_technique

__all__ = ["TECHNIQUES", "Technique", "get_technique", "register_technique"]
