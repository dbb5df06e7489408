"""CLIP dual encoders as transformers classes."""

from .configuration_clip import ClipConfig, ClipTextConfig, ClipVisionConfig
from .modeling_clip import (
    ClipModel,
    ClipOutput,
    ClipPreTrainedModel,
    ClipTextModel,
    ClipTextModelWithProjection,
    ClipVisionForImageClassification,
    ClipVisionModel,
    ClipVisionModelWithProjection,
)
from .presets import list_presets

__all__ = [
    "ClipConfig", "ClipModel", "ClipOutput", "ClipPreTrainedModel", "ClipTextConfig", "ClipTextModel",
    "ClipTextModelWithProjection", "ClipVisionConfig", "ClipVisionForImageClassification", "ClipVisionModel", "ClipVisionModelWithProjection",
    "list_presets",
]
