"""The model zoo: every paper architecture as a JSON file under `modeling/`.

A source checkout keeps the zoo at the repository root; a built wheel carries it inside the
package (`hf_limber/modeling`), so both places are searched.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path


def _zoo_dirs() -> list[Path]:
    package = Path(__file__).resolve().parent.parent
    return [package / "modeling", package.parent.parent / "modeling"]


@cache
def _preset_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for folder in _zoo_dirs():
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            files.setdefault(json.loads(path.read_text())["name"], path)
    return files


def list_presets() -> list[str]:
    """Names of the architectures in the model zoo, e.g. "RN50", "ViT-B/32", "tiny-vit"."""
    return list(_preset_files())


def load_preset(name: str) -> dict:
    """The `ClipConfig` keyword arguments of a named architecture."""
    files = _preset_files()
    if name not in files:
        raise ValueError(
            f"Unknown preset {name!r}. Known presets: {', '.join(files) or 'none found'}. "
            "Call hf_limber.list_presets() to see them, or build a ClipConfig by hand."
        )
    return json.loads(files[name].read_text())["config"]
