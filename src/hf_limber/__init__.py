"""hf_limber: CLIP and LiMBeR inside the Hugging Face stack.

Importing the package registers its configurations, models and processors with the transformers
Auto classes, so `AutoModel.from_pretrained(folder)` and `pipeline(...)` find them.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForImageTextToText,
    AutoModelForZeroShotImageClassification,
    AutoProcessor,
)

from .clip import (
    ClipConfig,
    ClipModel,
    ClipOutput,
    ClipTextConfig,
    ClipTextModel,
    ClipTextModelWithProjection,
    ClipVisionConfig,
    ClipVisionForImageClassification,
    ClipVisionModel,
    ClipVisionModelWithProjection,
    list_presets,
)
from .clip.processing_clip import ClipProcessor
from .limber import LimberConfig, LimberForCausalLM, LimberProcessor
from .training import ContrastiveLoss, ContrastiveTrainer, ContrastiveTrainingArguments

__version__ = "0.1.0"


def _register_auto_classes() -> None:
    for config_class, model_class in (
        (ClipConfig, ClipModel),
        (ClipTextConfig, ClipTextModel),
        (ClipVisionConfig, ClipVisionModel),
    ):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModel.register(config_class, model_class, exist_ok=True)
    AutoModelForZeroShotImageClassification.register(ClipConfig, ClipModel, exist_ok=True)
    AutoModelForImageClassification.register(ClipVisionConfig, ClipVisionForImageClassification, exist_ok=True)
    AutoProcessor.register(ClipConfig, ClipProcessor, exist_ok=True)
    AutoConfig.register(LimberConfig.model_type, LimberConfig, exist_ok=True)
    AutoModel.register(LimberConfig, LimberForCausalLM, exist_ok=True)
    # What pipeline("image-text-to-text") loads with, as for Llava.
    AutoModelForImageTextToText.register(LimberConfig, LimberForCausalLM, exist_ok=True)
    AutoProcessor.register(LimberConfig, LimberProcessor, exist_ok=True)
    # Every saved folder also carries the code (auto_map), so users with only transformers can load
    # it with trust_remote_code=True.
    for config_class in (ClipConfig, ClipTextConfig, ClipVisionConfig):
        config_class.register_for_auto_class()
    for model_class in (ClipModel, ClipTextModel, ClipVisionModel):
        model_class.register_for_auto_class("AutoModel")
    ClipVisionForImageClassification.register_for_auto_class("AutoModelForImageClassification")
    # LiMBeR's code is named under AutoModel and AutoModelForImageTextToText (LimberForCausalLM.AUTO_CLASSES),
    # never AutoModelForCausalLM: its generate needs images, which text-generation pipelines cannot give.
    # A LiMBeR folder also carries its CLIP tower's code (limber/remote_code.py); ClipProcessor and
    # LimberProcessor write their own code when saved.
    LimberConfig.register_for_auto_class()
    LimberForCausalLM.register_for_auto_class("AutoModel")


_register_auto_classes()

__all__ = [
    "ClipConfig", "ClipModel", "ClipOutput", "ClipProcessor", "ClipTextConfig", "ClipTextModel",
    "ClipTextModelWithProjection", "ClipVisionConfig", "ClipVisionForImageClassification", "ClipVisionModel",
    "ClipVisionModelWithProjection", "ContrastiveLoss", "ContrastiveTrainer", "ContrastiveTrainingArguments",
    "LimberConfig", "LimberForCausalLM", "LimberProcessor", "list_presets",
]
