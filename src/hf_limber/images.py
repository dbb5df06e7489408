"""Image input, one rule everywhere: opening files or bytes, converting any Pillow mode to RGB, and
preparing what a processor accepts.

Transparency is laid on white (emoji artwork is transparent; dropping alpha would turn it black),
16-bit or float images are scaled down to 8 bits instead of being clipped, and the EXIF orientation
is applied, as `datasets` does when it decodes. Before decoding, a file's pixel count and aspect
ratio are checked against limits: a tiny PNG can declare 100 megapixels, or a 1 x 3000 strip that a
processor would resize into a billion values.

A leaf: it imports nothing from hf_limber, and saved processors copy it beside their own code so
that `trust_remote_code=True` loads them without hf_limber.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

ImageInput = Image.Image | str | Path | bytes | np.ndarray | torch.Tensor


def _limit_from_env(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


class ImageOutsideLimits(ValueError):
    """An image's declared size is outside the limits; the message names them and the fix."""


@dataclass(frozen=True)
class ImageLimits:
    """What an image may be before it is decoded. Defaults: 40 megapixels (most cameras), sides at
    most 20 times apart (wide panoramas); `HF_LIMBER_MAX_IMAGE_PIXELS` and
    `HF_LIMBER_MAX_IMAGE_ASPECT` change them for a whole process."""

    max_pixels: int = field(default_factory=lambda: int(_limit_from_env("HF_LIMBER_MAX_IMAGE_PIXELS", 40_000_000)))
    max_aspect_ratio: float = field(default_factory=lambda: _limit_from_env("HF_LIMBER_MAX_IMAGE_ASPECT", 20.0))

    def check(self, size: tuple[int, int], name: str) -> None:
        width, height = size
        if width < 1 or height < 1:
            raise ImageOutsideLimits(f"{name} is {width} x {height} pixels: an image needs at least one pixel a side.")
        if width * height > self.max_pixels:
            raise ImageOutsideLimits(
                f"{name} is {width} x {height} = {width * height / 1e6:.1f} megapixels, over the limit of "
                f"{self.max_pixels / 1e6:g} (decoding it would take {width * height * 4 / 2**30:.1f} GiB or more). "
                "Pass a smaller image, or raise ImageLimits(max_pixels=...) / HF_LIMBER_MAX_IMAGE_PIXELS."
            )
        if max(width, height) > self.max_aspect_ratio * min(width, height):
            raise ImageOutsideLimits(
                f"{name} is {width} x {height} pixels, sides {max(width, height) / min(width, height):.0f} times "
                f"apart, over the limit of {self.max_aspect_ratio:g} (resizing its short side would make it huge). "
                "Crop it, or raise ImageLimits(max_aspect_ratio=...) / HF_LIMBER_MAX_IMAGE_ASPECT."
            )


def open_image(source: str | Path | bytes, limits: ImageLimits | None = None) -> Image.Image:
    """Open an image file or its bytes, check its size against ``limits`` before decoding, decode it
    fully and apply its EXIF orientation; errors name the input and the fix."""
    name = f"{len(source)} bytes of image data" if isinstance(source, bytes) else str(source)
    limits = limits or ImageLimits()
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        limits.check(image.size, name)  # the header is read; the pixels are not decoded yet
        image.load()  # decoding is lazy: a truncated file only fails here
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file not found: {name}") from None
    except Image.DecompressionBombError as error:
        raise ValueError(f"{name} is too large to decode safely ({error}). Pass a smaller image.") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(
            f"Could not read an image from {name}: {error}. Pass a readable image file "
            "(PNG, JPEG, WebP, ...) or a PIL image."
        ) from None
    except ImageOutsideLimits:
        raise
    except ValueError as error:
        raise ValueError(f"Could not read an image from {name}: {error}. Pass a readable image file.") from None
    return ImageOps.exif_transpose(image)


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """RGB version of an image in any Pillow mode.

    16-bit images scale by their full range; 32-bit integer and float images keep 0..255 values as
    they are, take 0..1 floats as intensities, and stretch anything else (negatives included) from
    their minimum to their maximum.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = Image.fromarray(_to_8_bits(np.asarray(image, dtype=np.float64), image.mode))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode == "La":  # premultiplied alpha, which Pillow converts to nothing else
        luminance, alpha = (np.asarray(band, dtype=np.float64) for band in image.split())
        unpremultiplied = np.where(alpha > 0, luminance * 255.0 / np.maximum(alpha, 1), 0)
        image = Image.merge("LA", [Image.fromarray(np.clip(unpremultiplied, 0, 255).astype(np.uint8)),
                                   Image.fromarray(alpha.astype(np.uint8))])
    if image.mode in ("RGBA", "LA", "PA", "RGBa"):
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, (*background, 255))
        return Image.alpha_composite(canvas, image).convert("RGB")
    return image.convert("RGB")


def _to_8_bits(values: np.ndarray, mode: str) -> np.ndarray:
    if mode.startswith("I;16"):
        scaled = values / 65535.0 * 255.0
    else:
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if mode == "F" and low >= 0 and high <= 1:
            scaled = values * 255.0
        elif low >= 0 and high <= 255:
            scaled = values
        else:
            scaled = (values - low) / (high - low or 1.0) * 255.0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def prepare_image(image: ImageInput, limits: ImageLimits | None = None) -> Image.Image | np.ndarray | torch.Tensor:
    """What an image processor accepts: files and bytes opened (within ``limits``), PIL images in RGB
    and upright (EXIF), arrays as given. A PIL image is decoded already, but its aspect ratio is
    still checked: resizing a thin strip's short side would blow it up."""
    if isinstance(image, (str, Path, bytes)):
        image = open_image(image, limits)
    if isinstance(image, Image.Image):
        (limits or ImageLimits()).check(image.size, f"A {image.width} x {image.height} {image.mode} image")
        return to_rgb(ImageOps.exif_transpose(image))
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
