"""Batches of (image, text) rows from any `datasets` dataset for contrastive training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers import BatchFeature

from ..clip.processing_clip import ClipProcessor


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

    @staticmethod
    def _text(value: str | Sequence[str]) -> str:
        return value if isinstance(value, str) else value[0]

    def __call__(self, rows: list[dict[str, Any]]) -> BatchFeature:
        batch = self.processor(
            text=[self._text(row[self.text_column]) for row in rows],
            images=[row[self.image_column] for row in rows],
        )
        batch["return_loss"] = True
        return batch
