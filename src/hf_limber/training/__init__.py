"""Training pieces: the sharded contrastive loss, the contrastive Trainer, collators, and a callback that
warns when bf16 would run emulated on a CPU."""

from .caption_collator import CaptionCollator
from .collators import ImageTextCollator
from .contrastive_trainer import ContrastiveTrainer, ContrastiveTrainingArguments
from .loss import ContrastiveLoss
from .precision import PrecisionCallback

__all__ = ["CaptionCollator", "ContrastiveLoss", "ContrastiveTrainer", "ContrastiveTrainingArguments",
           "ImageTextCollator", "PrecisionCallback"]
