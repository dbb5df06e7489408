"""Deprecated path: LiMBeR's training recipe lives in `hf_limber.training.limber_recipe`."""

from .._deprecated import moved_module

__getattr__ = moved_module(__name__, "hf_limber.training.limber_recipe")
