"""Batches of (image, text) rows from any `datasets` dataset for contrastive training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from transformers import BatchFeature

from ..clip.processing_clip import ClipProcessor
from ..data.scenes import PATCH_INSET, PATCH_RADIUS
from ..images import prepare_image


def foreground_mask(image: Image.Image, tolerance: int = 24) -> Image.Image:
    """An "L" mask of what is not the white background of a picture drawn on white: the near-white
    pixels connected to its border are background; white inside the drawing (a salt shaker, an eye)
    stays foreground."""
    white = np.asarray(image.convert("RGB")).min(axis=2) >= 255 - tolerance
    background = np.zeros_like(white)
    background[[0, -1], :], background[:, [0, -1]] = white[[0, -1], :], white[:, [0, -1]]
    while True:  # grow from the border through white pixels (4-neighbours); numpy, not a per-pixel loop
        grown = background.copy()
        grown[1:] |= background[:-1]
        grown[:-1] |= background[1:]
        grown[:, 1:] |= background[:, :-1]
        grown[:, :-1] |= background[:, 1:]
        grown &= white
        if (grown == background).all():
            return Image.fromarray(np.where(background, 0, 255).astype(np.uint8), "L")
        background = grown


@dataclass
class ImageTextCollator:
    """Images through the processor's image processor, texts through its tokenizer.

    A row whose text column holds a list (several references) contributes its first entry, so a
    batch is a pure function of its rows: resumed runs see exactly the batches they would have.
    `return_loss=True` tells the Trainer the model computes a loss without labels.
    """

    processor: ClipProcessor
    image_column: str = "image"
    text_column: str = "caption"
    # (smallest, largest) side of the picture after a random shrink, as a share of the original; it is
    # pasted at a random place on a white canvas of the original size. None: images as they are.
    scale_augment: tuple[float, float] | None = None
    # Share of the shrunk pictures drawn centred on a rounded square of a random saturated colour, as the
    # emoji scenes draw 40% of their objects. Issue 16 (one seed, 60 epochs): a ridge probe on the tower's
    # scene-cell features named 10% of the objects on a coloured square without it and ~40% with it, but
    # those on white fell from 75% to 64%: 45% of all cells either way.
    patch_augment: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.patch_augment <= 1.0:
            raise ValueError(f"patch_augment is a probability in [0, 1], got {self.patch_augment}")
        if self.patch_augment and self.scale_augment is None:
            raise ValueError("patch_augment draws the shrunk picture on a square: set scale_augment too")

    @staticmethod
    def _text(value: str | Sequence[str]) -> str:
        return value if isinstance(value, str) else value[0]

    def _augment(self, image: Any) -> Any:
        if self.scale_augment is None:
            return image
        image = prepare_image(image)
        if not isinstance(image, Image.Image):  # arrays: as given
            return image
        low, high = self.scale_augment
        # torch's generator: the Trainer seeds it and restores it on resume, so resumed runs see the same pictures.
        share, x, y = torch.rand(3).tolist()
        side = max(1, round(min(image.size) * (low + (high - low) * share)))
        size = (max(1, round(image.width * side / min(image.size))), max(1, round(image.height * side / min(image.size))))
        small = image.resize(size, Image.BICUBIC)
        canvas = Image.new("RGB", image.size, "white")
        # Without patches, no further draws: runs without them see the pictures they saw before the option.
        if not self.patch_augment or torch.rand(1).item() >= self.patch_augment:
            canvas.paste(small, (round(x * (image.width - small.width)), round(y * (image.height - small.height))))
            return canvas
        hue, saturation, value = torch.rand(3).tolist()
        inset = round(PATCH_INSET * min(image.size))  # the scenes' square, on a picture the size of a cell
        colour = Image.new("HSV", (1, 1), (round(255 * hue), round(150 + 105 * saturation), round(150 + 105 * value)))
        ImageDraw.Draw(canvas).rounded_rectangle((inset, inset, image.width - inset - 1, image.height - inset - 1),
                                                 radius=round(PATCH_RADIUS * min(image.size)),
                                                 fill=colour.convert("RGB").getpixel((0, 0)))
        canvas.paste(small, ((image.width - small.width) // 2, (image.height - small.height) // 2),
                     foreground_mask(image).resize(size, Image.BILINEAR))
        return canvas

    def __call__(self, rows: list[dict[str, Any]]) -> BatchFeature:
        batch = self.processor(
            text=[self._text(row[self.text_column]) for row in rows],
            images=[self._augment(row[self.image_column]) for row in rows],
        )
        batch["return_loss"] = True
        return batch
