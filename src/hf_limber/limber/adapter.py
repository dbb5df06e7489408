"""LiMBeR's saved forms: the adapter (the trained tensors and a config naming where the frozen parts
load from) and the full model (every weight).

An adapter holds exactly what its config says was trained: the projection, and the image encoder
when it was trained with it (`config.train_image_encoder`). Loading refuses any other tensor, so an
adapter file can never overwrite the frozen LM or encoder it is put on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import MODEL_MAPPING, AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.utils import cached_file

from .encoders import timm_create, vision_part
from .remote_code import check_location, hub_options

PROJECTION_PREFIX = "projection."
IMAGE_ENCODER_PREFIX = "image_encoder."
# The options that locate the adapter's own folder, not the parts' sources.
FOLDER_OPTIONS = ("revision", "subfolder", "adapter_kwargs", "code_revision")


def trained_prefixes(config: PretrainedConfig) -> tuple[str, ...]:
    """The parameter names an adapter holds: the projection, and the image encoder when it was trained too."""
    if getattr(config, "train_image_encoder", False):
        return PROJECTION_PREFIX, IMAGE_ENCODER_PREFIX
    return (PROJECTION_PREFIX,)


def adapter_state_dict(state_dict: Mapping[str, torch.Tensor], config: PretrainedConfig) -> dict[str, torch.Tensor]:
    """The part of a full state dict that an adapter saves."""
    prefixes = trained_prefixes(config)
    return {name: tensor for name, tensor in state_dict.items() if name.startswith(prefixes)}


def check_adapter_weights(weights: Mapping[str, torch.Tensor], expected: set[str], config: PretrainedConfig,
                          source: str | os.PathLike) -> None:
    """Refuse an adapter file that holds anything its config does not train, or lacks what it does."""
    prefixes = trained_prefixes(config)
    foreign = sorted(name for name in weights if not name.startswith(prefixes))
    if foreign:
        shown = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
        raise ValueError(
            f"{source}: the adapter's model.safetensors holds {len(foreign)} tensor(s) its config does not train: "
            f"{shown}. An adapter holds only {' and '.join(repr(p + '*') for p in prefixes)}; loading these would "
            "overwrite the frozen parts. Save a model with every weight as save_pretrained(..., full=True)."
        )
    missing = sorted(expected - set(weights))
    if missing:
        raise ValueError(f"{source}: the adapter lacks trained weights {missing[:8]}"
                         f"{' ...' if len(missing) > 8 else ''}; save it again with save_pretrained.")


def load_image_encoder(source: str | os.PathLike, config: PretrainedConfig | None = None, **kwargs: Any) -> nn.Module:
    """The frozen image encoder saved at `source`: a transformers/hf_limber folder or Hub id, or a
    folder with a timm state dict (`model.safetensors`) when the config names a timm model. With a
    LiMBeR config, its vision_config names the encoder's class, so the source's own code is never
    needed (a remote-code LiMBeR folder carries it)."""
    check_location(source, "image encoder")
    if config is not None and config.timm_model:
        model = timm_create(config.timm_model, **(config.timm_kwargs or {}))
        model.load_state_dict(load_file(cached_file(str(source), "model.safetensors", **kwargs)))
        return model
    vision_config = config.vision_config if config is not None else AutoConfig.from_pretrained(source, **kwargs)
    if getattr(vision_config, "vision_config", None) is not None:
        vision_config = vision_config.vision_config  # a dual encoder: load only its image tower
    return MODEL_MAPPING[type(vision_config)].from_pretrained(source, **kwargs)


def load_adapter(
    model_class: type[PreTrainedModel], source: str | os.PathLike, config: PretrainedConfig,
    image_encoder: nn.Module | None, language_model: PreTrainedModel | None, *args: Any, **kwargs: Any,
) -> PreTrainedModel:
    """A LiMBeR model from an adapter folder: the frozen parts from the sources its config names (or
    the ones given), then the adapter's own tensors on top."""
    part_kwargs = {key: value for key, value in kwargs.items() if key not in FOLDER_OPTIONS}
    if image_encoder is None:
        if not config.vision_source:
            raise ValueError("This LiMBeR adapter names no image encoder: pass image_encoder= to from_pretrained.")
        image_encoder = load_image_encoder(config.vision_source, config, **hub_options(part_kwargs))
    if language_model is None:
        if not config.text_source:
            raise ValueError("This LiMBeR adapter names no language model: pass language_model= to from_pretrained.")
        language_model = AutoModelForCausalLM.from_pretrained(config.text_source, *args, **part_kwargs)
    model = model_class(config, image_encoder=vision_part(image_encoder), language_model=language_model)
    weights = load_file(cached_file(str(source), "model.safetensors", **hub_options(kwargs)))
    expected = set(adapter_state_dict(model.state_dict(), config))
    check_adapter_weights(weights, expected, config, Path(source))
    model.load_state_dict(weights, strict=False)  # only the trained tensors, checked above
    return model.eval()
