"""An image tower trained on class labels alone (cross-entropy, no text): the vision-only supervised
encoder of LiMBeR's comparison, with the same architecture, data and optimiser as the CLIP recipe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainingArguments, set_seed

from ..clip.configuration_clip import ClipVisionConfig
from ..clip.modeling_clip import ClipVisionForImageClassification
from ..clip.processing_clip import clip_image_processor
from ..images import prepare_image
from .precision import PrecisionCallback


@dataclass
class LabelCollator:
    """Pixels through the image processor; labels as class indices."""

    image_processor: Any
    label_index: dict[str, int]
    image_column: str = "image"
    label_column: str = "name"

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        pixels = self.image_processor([prepare_image(row[self.image_column]) for row in rows], return_tensors="pt")
        labels = torch.tensor([self.label_index[row[self.label_column]] for row in rows])
        return {"pixel_values": pixels["pixel_values"], "labels": labels}


def train_label_tower(dataset: Any, vision_config: ClipVisionConfig, label_column: str,
                      training_args: TrainingArguments, image_column: str = "image") -> Trainer:
    """Train a fresh image tower of `vision_config` + a linear classifier on `dataset[label_column]`;
    saves the model and its image processor in `training_args.output_dir` (loadable as a LiMBeR
    image encoder)."""
    set_seed(training_args.seed)
    labels = sorted(set(dataset[label_column]))
    vision = ClipVisionConfig.from_dict(vision_config.to_dict())
    vision.num_labels = len(labels)
    vision.id2label = dict(enumerate(labels))
    vision.label2id = {label: i for i, label in enumerate(labels)}
    model = ClipVisionForImageClassification(vision)
    image_processor = clip_image_processor(vision.image_size)
    trainer = Trainer(
        model=model, args=training_args, train_dataset=dataset,
        data_collator=LabelCollator(image_processor, vision.label2id, image_column, label_column),
        callbacks=[PrecisionCallback()],
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    out = Path(training_args.output_dir)
    trainer.save_model(str(out))
    image_processor.save_pretrained(str(out))
    return trainer
