"""Training pieces: the sharded contrastive loss, the contrastive Trainer, collators."""

from .caption_collator import CaptionCollator
from .collators import ImageTextCollator
from .contrastive_trainer import ContrastiveTrainer, ContrastiveTrainingArguments
from .loss import ContrastiveLoss

__all__ = ["CaptionCollator", "ContrastiveLoss", "ContrastiveTrainer", "ContrastiveTrainingArguments",
           "ImageTextCollator"]
