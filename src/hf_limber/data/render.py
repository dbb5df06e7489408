"""Rendering artwork into tiles, with an on-disk cache shared by every builder.

Rasterising SVG is most of a build's time, so tiles are cached per source version and
pixel size as RGBA PNGs; compositing on a background (cheap) happens after the cache,
so builds that differ only in background, splits or seed reuse every tile.
"""

from __future__ import annotations

import io
import logging
import os
from collections import Counter
from pathlib import Path

from PIL import Image, ImageColor

from .sources import ArtworkMissing, ArtworkSource

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("~/.cache/hf_limber/emoji-tiles")


def parse_colour(colour: str | tuple[int, int, int]) -> tuple[int, int, int]:
    """An RGB triple from a CSS colour name, ``#rrggbb`` or a triple."""
    if isinstance(colour, tuple):
        return colour
    try:
        return ImageColor.getrgb(colour)[:3]
    except ValueError as error:
        raise ValueError(f"Background colour {colour!r} is not a colour name or #rrggbb value") from error


def on_background(tile: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    canvas = Image.new("RGB", tile.size, background)
    canvas.paste(tile, (0, 0), tile)
    return canvas


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    # Fixed options keep the bytes identical across runs (determinism checks compare them).
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


class TileCache:
    """Tiles of each source at each size, rendered once and read back afterwards."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, enabled: bool = True) -> None:
        self.root = Path(cache_dir or os.environ.get("HF_LIMBER_EMOJI_CACHE") or DEFAULT_CACHE_DIR).expanduser()
        self.enabled = enabled
        self.unreadable: Counter[str] = Counter()  # style -> artwork files that failed to render
        self.absent: Counter[str] = Counter()  # style -> concepts its index listed but it cannot draw
        self.hits = 0
        self.misses = 0

    def tile(self, source: ArtworkSource, key: str, locator: str, size: int) -> Image.Image | None:
        """The concept's tile, or None when its artwork is absent or unreadable (counted)."""
        path = self.root / source.cache_id / str(size) / f"{key}.png"
        if self.enabled and path.is_file():
            try:
                with Image.open(path) as cached:
                    cached.load()
                    self.hits += 1
                    return cached.convert("RGBA")
            except OSError:  # a cache file cut short by an interrupted build: render again
                path.unlink(missing_ok=True)
        try:
            tile = source.render(locator, size)
        except ArtworkMissing:
            self.absent[source.style] += 1
            return None
        except Exception as error:  # any decoder error means this one file is bad, not the build
            self.unreadable[source.style] += 1
            logger.warning("Skipping unreadable %s artwork for %s (%s): %s", source.style, key, locator, error)
            return None
        self.misses += 1
        if self.enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            tile.save(partial, format="PNG")
            partial.replace(path)  # atomic, so a killed build never leaves half a tile
        return tile
