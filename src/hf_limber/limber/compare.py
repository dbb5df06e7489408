"""Deprecated path: moved to `hf_limber.app.compare` (the application layer)."""

from .._deprecated import moved_module

__getattr__ = moved_module(__name__, "hf_limber.app.compare")
