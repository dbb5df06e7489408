"""Image input, one rule everywhere: opening files or bytes, converting any Pillow mode to RGB, and
preparing what a processor accepts.

Transparency is laid on white (emoji artwork is transparent; dropping alpha would turn it black)
and 16-bit or float images are scaled down to 8 bits instead of being clipped.

A leaf: it imports nothing from hf_limber, and saved processors copy it beside their own code so
that `trust_remote_code=True` loads them without hf_limber.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

ImageInput = Image.Image | str | Path | bytes | np.ndarray | torch.Tensor


def open_image(source: str | Path | bytes) -> Image.Image:
    """Open and fully decode an image file or its bytes; errors name the input."""
    name = f"{len(source)} bytes of image data" if isinstance(source, bytes) else str(source)
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        image.load()  # decoding is lazy: a truncated file only fails here
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file not found: {name}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(
            f"Could not read an image from {name}: {error}. Pass a readable image file "
            "(PNG, JPEG, WebP, ...) or a PIL image."
        ) from None
    return image


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """RGB version of an image in any Pillow mode."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 255.0)
        image = Image.fromarray(np.clip(values / peak * 255.0, 0, 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, (*background, 255))
        return Image.alpha_composite(canvas, image).convert("RGB")
    return image.convert("RGB")


def prepare_image(image: ImageInput) -> Image.Image | np.ndarray | torch.Tensor:
    """What an image processor accepts: files and bytes opened, PIL images in RGB, arrays as given."""
    if isinstance(image, (str, Path, bytes)):
        image = open_image(image)
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, (np.ndarray, torch.Tensor)):
        return image
    raise TypeError(f"Cannot read an image from a {type(image).__name__}; pass a PIL image, a path, bytes or an array.")


def as_image_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """One image or any sequence of them (lists, tuples, a `datasets` column) as a list."""
    if isinstance(images, (Image.Image, str, Path, bytes, Mapping)):
        return [images]  # a mapping is one (unreadable) input, not a sequence of keys
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim < 4:
        return [images]
    return list(images)
