"""Batches of (image or cached features, caption) rows for LiMBeR training with the Trainer."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import BatchFeature

from ..limber.modeling_limber import IGNORE_INDEX
from ..limber.processing_limber import LimberProcessor


@dataclass
class CaptionCollator:
    """Turns dataset rows into LiMBeR inputs with labels on the caption only.

    Rows carry an image (`image_column`) or the encoder features cached by `hf-limber
    cache-features` (`feature_column`), and one caption or a list of references
    (`caption_column`), of which one is drawn per step, as LiMBeR samples COCO-style lists.
    """

    processor: LimberProcessor
    image_column: str = "image"
    caption_column: str = "caption"
    feature_column: str = "image_features"
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def _caption(self, value: str | Sequence[str]) -> str:
        return value if isinstance(value, str) else self._rng.choice(list(value))

    def __call__(self, rows: list[dict[str, Any]]) -> BatchFeature:
        captions = [self._caption(row[self.caption_column]) for row in rows]
        if self.feature_column in rows[0]:
            features = torch.stack([torch.as_tensor(row[self.feature_column], dtype=torch.float32) for row in rows])
            batch = self.processor(image_features=features, captions=captions)
        else:
            batch = self.processor(images=[row[self.image_column] for row in rows], captions=captions)
        # Logits from the position before the batch's first caption token on (the model's forward).
        labelled = (batch["labels"] != IGNORE_INDEX).any(0).nonzero()
        batch["logits_to_keep"] = batch["labels"].shape[1] - int(labelled[0]) + 1 if len(labelled) else 0
        return batch
