"""LiMBeR's saved forms: the adapter (the trained tensors and a config naming where the frozen parts
load from) and the full model (every weight).

An adapter holds exactly what its config says was trained: the projection, and the image encoder
when it was trained with it (`config.train_image_encoder`). Loading refuses any other tensor, so an
adapter file can never overwrite the frozen LM or encoder it is put on.

A PEFT adapter (LoRA) trained on the LM is saved in peft's own files
(`adapter_config.json`, `adapter_model.safetensors`, as `PeftModel.save_pretrained` writes them) in a
subfolder, LM_ADAPTER_FOLDER, where transformers' `from_pretrained` does not take the whole folder for a
bare PEFT adapter of some base model. peft injects the layers in place, so the LM stays the
transformers model it was (transformers' own PEFT integration asks for a newer peft than PyPI has).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import MODEL_MAPPING, AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.utils import cached_file

from .encoders import timm_create, vision_part
from .remote_code import check_location, hub_options

PROJECTION_PREFIX = "projection."
IMAGE_ENCODER_PREFIX = "image_encoder."
LM_ADAPTER_FOLDER = "language_model_adapter"
# How peft names an adapter's tensors in its files: as attributes of a PeftModel around the base model.
PEFT_MODEL_PREFIX = "base_model.model."
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


def has_peft_adapter(model: nn.Module) -> bool:
    """Whether a model carries PEFT layers injected in place (`add_language_model_adapter`)."""
    return bool(getattr(model, "peft_config", None))


def without_peft_layers(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict of `model` as the same model without its PEFT layers has it: the adapters' tensors
    (saved in peft's own files) left out, and each wrapped layer's weights under its own name again."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    adapter_parts, renames = [], {}
    for name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            adapter_parts += [f"{name}.{part}." for part in (*module.adapter_layer_names, *module.other_param_names)]
            renames[f"{name}.base_layer."] = f"{name}."
    plain = {}
    for key, tensor in state_dict.items():
        if key.startswith(tuple(adapter_parts)):
            continue
        wrapped = next((prefix for prefix in renames if key.startswith(prefix)), None)
        plain[renames[wrapped] + key[len(wrapped):] if wrapped else key] = tensor
    return plain


def save_peft_adapter(model: nn.Module, folder: str | os.PathLike) -> None:
    """The PEFT adapter injected into `model`, in the files `PeftModel.save_pretrained` writes (its
    tensor names included), so `PeftModel.from_pretrained(base, folder)` loads it too."""
    from peft import get_peft_model_state_dict

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = get_peft_model_state_dict(model)
    save_file({PEFT_MODEL_PREFIX + name: tensor.contiguous() for name, tensor in weights.items()},
              folder / "adapter_model.safetensors", metadata={"format": "pt"})
    config = copy.deepcopy(model.peft_config["default"])
    config.inference_mode = True
    config.save_pretrained(folder)


def load_peft_adapter(model: nn.Module, source: str | os.PathLike, what: str, **options: Any) -> None:
    """Inject the PEFT adapter saved in `source` (peft's files; `options` as load_peft_weights takes them, e.g.
    subfolder) into `model` in place and load its tensors; `what` names the model in the error when they do not fit."""
    from peft import PeftConfig, inject_adapter_in_model, load_peft_weights, set_peft_model_state_dict

    inject_adapter_in_model(PeftConfig.from_pretrained(str(source), **options), model)
    weights = {name.removeprefix(PEFT_MODEL_PREFIX): tensor
               for name, tensor in load_peft_weights(str(source), **options).items()}
    result = set_peft_model_state_dict(model, weights)
    missing = [name for name in result.missing_keys if ".lora_" in name]
    if result.unexpected_keys or missing:
        where = f"{source}/{options['subfolder']}" if options.get("subfolder") else str(source)
        raise ValueError(f"{where}: the adapter's tensors do not fit its {what} (unexpected "
                         f"{result.unexpected_keys[:4]}, missing {missing[:4]}); was it trained on another {what}?")


def load_language_model_adapter(model: PreTrainedModel, source: str | os.PathLike, **kwargs: Any) -> None:
    """Put the PEFT adapter saved with a LiMBeR model back on its LM, frozen (no-op when none was saved)."""
    folder = model.config.language_model_adapter
    if not folder:
        return
    load_peft_adapter(model.language_model, source, "LM", **hub_options(kwargs), subfolder=folder)
    model.language_model.requires_grad_(False)


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
    # The folder's own options, and transformers' private flags of this call (`_from_auto`, `_commit_hash`, ...:
    # since 5.25 AutoModel passes `_from_auto`, which the parts' own Auto call sets again), stay with the adapter.
    part_kwargs = {key: value for key, value in kwargs.items()
                   if key not in FOLDER_OPTIONS and not key.startswith("_")}
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
    load_language_model_adapter(model, source, **kwargs)
    return model.eval()
