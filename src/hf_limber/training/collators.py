"""Batches of (image, text) rows from any `datasets` dataset for contrastive training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from transformers import BatchFeature

from ..clip.processing_clip import ClipProcessor
from ..images import prepare_image


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
        small = image.resize((max(1, round(image.width * side / min(image.size))),
                              max(1, round(image.height * side / min(image.size)))), Image.BICUBIC)
        canvas = Image.new("RGB", image.size, "white")
        canvas.paste(small, (round(x * (image.width - small.width)), round(y * (image.height - small.height))))
        return canvas

    def __call__(self, rows: list[dict[str, Any]]) -> BatchFeature:
        batch = self.processor(
            text=[self._text(row[self.text_column]) for row in rows],
            images=[self._augment(row[self.image_column]) for row in rows],
        )
        batch["return_loss"] = True
        return batch
