"""What a built Space folder consists of: the files `hf-limber space build` (`hf_limber.app.space_build`) writes
and `hf-limber push` uploads, and the marker that tells the two a folder is such a build."""

from __future__ import annotations

SPACE_FILES = ("app.py", "serving.py", "README.md")
# Written by the build: the Space's models (read by serving.py when no environment variable names them).
SPACE_MODELS_FILE = "space_models.json"
BUILD_MARKER = ".hf_limber_space"  # tells a later build that OUT is a folder it may replace

