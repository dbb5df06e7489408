"""Datasets for CLIP and LiMBeR: emoji concepts and scenes from registry artwork, and image-text streams.

Names load on first use, so importing `hf_limber.data` (as the CLI does) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "build_emoji_dataset": "emoji",
    "build_emoji_scenes": "scenes",
    "load_image_text_pairs": "streaming",
    "SkipCounter": "streaming",
    "SkippedSamplesCallback": "streaming",
    "iter_tar_samples": "tars",
    "load_catalog": "catalog",
    "CATEGORIES": "catalog",
    "discover_sources": "sources",
    "STYLES": "sources",
}

__all__ = [
    "CATEGORIES",
    "STYLES",
    "SkipCounter",
    "SkippedSamplesCallback",
    "build_emoji_dataset",
    "build_emoji_scenes",
    "discover_sources",
    "iter_tar_samples",
    "load_catalog",
    "load_image_text_pairs",
]

if TYPE_CHECKING:
    from .catalog import CATEGORIES, load_catalog
    from .emoji import build_emoji_dataset
    from .scenes import build_emoji_scenes
    from .sources import STYLES, discover_sources
    from .streaming import SkipCounter, SkippedSamplesCallback, load_image_text_pairs
    from .tars import iter_tar_samples


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hf_limber.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
