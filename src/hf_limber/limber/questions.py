"""Deprecated path: visual questions by prompting live in `hf_limber.evaluation.questions`."""

from .._deprecated import moved_module

__getattr__ = moved_module(__name__, "hf_limber.evaluation.questions")
