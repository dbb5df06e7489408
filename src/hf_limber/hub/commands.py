"""Deprecated path: moved to `hf_limber.app.hub_commands` (the application layer)."""

from .._deprecated import moved_module

__getattr__ = moved_module(__name__, "hf_limber.app.hub_commands")
