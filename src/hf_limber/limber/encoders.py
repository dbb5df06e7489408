"""One interface over every frozen image encoder LiMBeR can read: per-token features or a pooled vector.

Supported: hf_limber's CLIP (ResNet grid or ViT tokens), transformers vision models (CLIP vision,
ViT, BEiT, ... anything returning `last_hidden_state`/`hidden_states`), and timm models (optional).
Feature widths, token counts and whether a class token leads are measured on the encoder itself,
never looked up by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import MODEL_MAPPING, PreTrainedModel


@dataclass(frozen=True)
class FeatureShape:
    image_size: int
    num_tokens: int
    token_size: int
    pooled_size: int
    has_class_token: bool


def vision_part(model: nn.Module) -> nn.Module:
    """The image tower of a dual encoder (ours or transformers' CLIP); other encoders pass through."""
    config = getattr(model, "config", None)
    if not isinstance(model, PreTrainedModel) or getattr(config, "vision_config", None) is None:
        return model
    if not hasattr(model, "vision_model"):
        raise ValueError(f"{type(model).__name__} has a vision_config but no vision_model to take the image tower from.")
    tower_class = MODEL_MAPPING[type(config.vision_config)]
    with torch.device("meta"):
        tower = tower_class(config.vision_config)
    tower.vision_model = model.vision_model  # reuse the trained module, no copy
    tower.name_or_path = model.name_or_path
    return tower


def timm_create(name: str, **kwargs: Any) -> nn.Module:
    """A timm encoder with random weights (the trained ones are loaded after)."""
    try:
        import timm
    except ImportError:
        raise ImportError(f"This LiMBeR model uses the timm encoder {name!r}: pip install timm") from None
    return timm.create_model(name, pretrained=False, **kwargs)


def is_timm(model: nn.Module) -> bool:
    return hasattr(model, "forward_features") and hasattr(model, "forward_head")


def _tokens(states: torch.Tensor) -> torch.Tensor:
    # Convolutional maps (batch, channels, h, w) become h*w tokens.
    return states.flatten(2).transpose(1, 2) if states.ndim == 4 else states


def encode(model: nn.Module, pixel_values: torch.Tensor, layer: int = -1, pooled: bool = False) -> torch.Tensor:
    """Per-token features (batch, tokens, width) or the pooled vector (batch, width) of a frozen encoder.
    Pictures of another size than the encoder's own go through its `interpolate_pos_encoding`."""
    if is_timm(model):
        features = model.forward_features(pixel_values)
        if pooled:
            return model.forward_head(features, pre_logits=True)
        return _tokens(features)
    resized = {"interpolate_pos_encoding": True} if pixel_values.shape[-1] != encoder_image_size(model) else {}
    out = model(pixel_values=pixel_values, output_hidden_states=layer != -1, **resized)
    if pooled:
        if getattr(out, "pooler_output", None) is not None:
            return out.pooler_output
        return _tokens(out.last_hidden_state).mean(dim=1)
    return _tokens(out.last_hidden_state if layer == -1 else out.hidden_states[layer])


def encoder_image_size(model: nn.Module) -> int:
    if is_timm(model):
        return int(model.pretrained_cfg["input_size"][-1])
    size = model.config.image_size
    return int(size if isinstance(size, int) else size[0])


@torch.no_grad()
def measure(model: nn.Module, layer: int = -1, image_size: int | None = None) -> FeatureShape:
    """Run one blank image through the encoder (at its own size, or ``image_size``) and read the shapes
    off its outputs."""
    if image_size is not None and is_timm(model):
        raise ValueError("image_size: timm encoders run at their own input size here; leave image_size out.")
    size = image_size or encoder_image_size(model)
    parameter = next(model.parameters())
    blank = torch.zeros(1, 3, size, size, dtype=parameter.dtype, device=parameter.device)
    was_training = model.training
    model.eval()
    tokens = encode(model, blank, layer)
    pooled = encode(model, blank, layer, pooled=True)
    model.train(was_training)
    count = tokens.shape[1]
    # A grid of g*g patches plus one class token: count - 1 is a square and count is not.
    has_class_token = count > 1 and math.isqrt(count - 1) ** 2 == count - 1 and math.isqrt(count) ** 2 != count
    return FeatureShape(size, count, tokens.shape[-1], pooled.shape[-1], has_class_token)
