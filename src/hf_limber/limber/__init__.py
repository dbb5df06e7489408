"""LiMBeR: a linear map from a frozen image encoder into a frozen causal LM."""

from .configuration_limber import LimberConfig
from .modeling_limber import LimberForCausalLM
from .processing_limber import LimberProcessor

__all__ = ["LimberConfig", "LimberForCausalLM", "LimberProcessor"]
