"""What a built Space folder consists of: the files `hf-limber space build` (`hf_limber.app.space_build`) writes
and `hf-limber push` uploads, and the marker that tells the two a folder is such a build."""

from __future__ import annotations

from typing import Any

from .._deprecated import moved_module

SPACE_FILES = ("app.py", "serving.py", "README.md")
# Written by the build: the Space's models (read by serving.py when no environment variable names them).
SPACE_MODELS_FILE = "space_models.json"
BUILD_MARKER = ".hf_limber_space"  # tells a later build that OUT is a folder it may replace

# The build reads the repository (an application's job) and moved to hf_limber.app.space_build.
_MOVED = ("build_space", "source_tree", "space_requirements")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return moved_module(__name__, "hf_limber.app.space_build")(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
