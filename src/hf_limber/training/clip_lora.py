"""LoRA on CLIP's towers (PEFT): injected in place, trained by the CLIP recipe, saved in peft's own files and
as a plain ClipModel with the LoRA merged into its weights.

peft is used as LiMBeR uses it on its LM (`LimberForCausalLM.add_language_model_adapter`): the layers are
injected with `peft.inject_adapter_in_model`, so the model stays our ClipModel (transformers' own PEFT
integration asks for a newer peft than PyPI has), and the adapter is written with the same helper, in the
files `PeftModel.save_pretrained` writes, so `peft.PeftModel.from_pretrained(clip, folder)` loads it too.

Default targets, measured on the towers (peft wraps nn.Linear and nn.Conv2d here):
- a Transformer tower (ViT image tower, the text tower): each block's attention `qkv` and `out_proj` and its
  MLP `fc1` and `fc2`;
- the ResNet image tower: its attention pool's `q_proj`, `k_proj`, `v_proj` and `c_proj` (the convolutions
  are accepted too when named: `conv1`, `conv2`, `conv3`).
The projections (`visual_projection`, `text_projection`) are adapted when named; 'all-linear' names every
nn.Linear of the chosen towers and their projections.
"""

from __future__ import annotations

import os
import re
import types
from typing import Any

import torch
from torch import nn

from ..clip.modeling_clip import ClipModel
from ..limber.adapter import has_peft_adapter, load_peft_adapter, save_peft_adapter, without_peft_layers

CLIP_ADAPTER_FOLDER = "clip_adapter"
TOWERS = {"image": ("vision_model", "visual_projection"), "text": ("text_model", "text_projection")}
TRANSFORMER_TARGETS = ("qkv", "out_proj", "fc1", "fc2")
RESNET_TARGETS = ("q_proj", "k_proj", "v_proj", "c_proj")


def default_target_modules(model: ClipModel, towers: tuple[str, ...] | list[str] = ("image", "text")) -> list[str]:
    """The attention and MLP layers of the chosen towers (a ResNet image tower: its attention pool's)."""
    names: list[str] = []
    for tower in towers:
        resnet = tower == "image" and model.config.vision_config.tower == "resnet"
        names += [name for name in (RESNET_TARGETS if resnet else TRANSFORMER_TARGETS) if name not in names]
    return names


def target_pattern(model: ClipModel, towers: tuple[str, ...] | list[str], names: list[str] | None = None) -> str:
    """peft's `target_modules` as one regular expression (peft full-matches it against module names): the
    modules called `names` inside the chosen towers only, and a tower's projection where it is named."""
    _check_towers(towers)
    names = list(names or default_target_modules(model, towers))
    if names == ["all-linear"]:
        names = sorted({name.rsplit(".", 1)[-1] for tower in towers for root in TOWERS[tower]
                        for name, module in model.named_modules()
                        if isinstance(module, nn.Linear) and (name == root or name.startswith(root + "."))})
    leaves = "|".join(re.escape(name) for name in names)
    parts = [rf"{TOWERS[tower][0]}\.(?:.*\.)?(?:{leaves})" for tower in towers]
    parts += [re.escape(TOWERS[tower][1]) for tower in towers if TOWERS[tower][1] in names]
    return "|".join(parts)


def add_clip_lora(model: ClipModel, rank: int, alpha: float = 16.0, target_modules: list[str] | None = None,
                  towers: tuple[str, ...] | list[str] = ("image", "text"), base_model_name_or_path: str | None = None,
                  **lora_options: Any) -> ClipModel:
    """Inject a LoRA of `rank` into the chosen towers, in place. peft freezes every other weight, the logit
    scale and bias included, so the adapter alone turns the base model into the trained one."""
    from peft import LoraConfig, inject_adapter_in_model

    if has_peft_adapter(model):
        raise ValueError("The model already carries a PEFT adapter: load a fresh model for a new LoRA.")
    pattern = target_pattern(model, towers, target_modules)
    for tower in towers:
        if not any(re.fullmatch(pattern, name) and name.startswith(TOWERS[tower]) for name, _ in model.named_modules()):
            layers = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                             if isinstance(module, (nn.Linear, nn.Conv2d)) and name.startswith(TOWERS[tower])})
            raise ValueError(f"lora_target_modules {target_modules or default_target_modules(model, towers)} name no "
                             f"layer of the {tower} tower; its linear and convolution layers are {layers}.")
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=pattern, **lora_options)
    config.base_model_name_or_path = base_model_name_or_path or model.name_or_path or None
    inject_adapter_in_model(config, model)
    hold_batch_norm_statistics(model)
    return model


def hold_batch_norm_statistics(model: nn.Module) -> None:
    """Keep every BatchNorm whose weights are frozen in eval mode, so training leaves its running statistics as
    they are (a ResNet tower stays the base function plus the LoRA; LiT's locked towers likewise)."""
    for norm in model.modules():
        if isinstance(norm, nn.BatchNorm2d) and not norm.weight.requires_grad:
            norm.train = types.MethodType(_always_eval, norm)
            norm.eval()


def _always_eval(module: nn.Module, mode: bool = True) -> nn.Module:
    # model.train() reaches every submodule through its train(): this one ignores the request.
    return nn.Module.train(module, False)


def lora_layers(model: nn.Module) -> dict[str, nn.Module]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {name: module for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)}


@torch.no_grad()
def merged_state_dict(model: ClipModel) -> dict[str, torch.Tensor]:
    """The state dict of the plain ClipModel that computes what the adapted one does: each adapted layer's
    weight plus its LoRA update (peft's own `get_delta_weight`, what `merge()` adds), under the layer's own
    name; the model itself keeps its LoRA layers unmerged."""
    state = without_peft_layers(model.state_dict(), model)
    for name, layer in lora_layers(model).items():
        weight = layer.get_base_layer().weight
        delta = sum(layer.get_delta_weight(adapter) for adapter in layer.active_adapters if adapter in layer.lora_A)
        if not layer.merged and torch.is_tensor(delta):
            state[f"{name}.weight"] = (weight + delta).to(weight.dtype)
    return state


def save_clip_lora(model: ClipModel, folder: str | os.PathLike) -> None:
    """The LoRA in peft's files (adapter_config.json, adapter_model.safetensors) in `folder`."""
    if not has_peft_adapter(model):
        raise ValueError("The model carries no PEFT adapter to save.")
    save_peft_adapter(model, folder)


def load_clip_lora(model: ClipModel, folder: str | os.PathLike, is_trainable: bool = False) -> ClipModel:
    """Put a LoRA saved by `save_clip_lora` (or `PeftModel.save_pretrained`) back on its base ClipModel, in
    place; frozen for use unless `is_trainable` (then only the LoRA trains, as in the recipe)."""
    load_peft_adapter(model, folder, "CLIP")
    if not is_trainable:
        model.requires_grad_(False)
    return model


def _check_towers(towers: tuple[str, ...] | list[str]) -> None:
    if not towers or any(tower not in TOWERS for tower in towers):
        raise ValueError(f"lora_towers must name 'image', 'text' or both, got {list(towers)}.")
