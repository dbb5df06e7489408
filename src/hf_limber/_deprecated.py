"""Old module paths that still import, with a warning, after their code moved to its layer."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def moved_module(old: str, new: str) -> Callable[[str], Any]:
    """A module `__getattr__` for a shim left at `old`: every name comes from `new`, with a FutureWarning.

    The new module is imported on first use, so a shim in a lower layer adds no import of a higher one
    at start-up."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(f"{old} moved to {new}: import {name} from there.", FutureWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)

    return __getattr__
