"""Training pieces: the sharded contrastive loss (trainers and collators join here)."""

from .loss import ContrastiveLoss

__all__ = ["ContrastiveLoss"]
