"""A `ClipModel` out to the public implementations, the inverse of `convert`.

- `to_transformers`: transformers' stock `CLIPModel` (ViT towers only), and `export_to_transformers`, which
  writes it as a folder (config, safetensors, `CLIPProcessor`) that plain transformers loads without
  remote code, so the model serves wherever `CLIPModel` is expected (Llava towers, diffusers, ONNX).
- `to_openai_state_dict`: OpenAI's layout, which open_clip's `CLIP` loads (both towers).

Models with parts `CLIPModel` cannot hold are refused with the reason (`ExportRefused`): writing them
would silently change their outputs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from .configuration_clip import ClipConfig
from .convert import BLOCK_NAMES, block_rules
from .modeling_clip import ClipModel
from .processing_clip import ClipProcessor


class ExportRefused(ValueError):
    """The model has a part the target implementation cannot hold; the message names it."""


def transformers_refusal(model: ClipModel) -> str | None:
    """Why transformers' `CLIPModel` cannot reproduce `model`'s outputs, or None when it can."""
    if not isinstance(model, ClipModel):
        return (f"{type(model).__name__} is not a ClipModel (the dual encoder); only ClipModel maps onto "
                "transformers' CLIPModel.")
    config = model.config
    if config.vision_config.tower != "vit":
        return ("its image tower is the paper's modified ResNet, and transformers has no ResNet CLIP tower "
                "(CLIPVisionModel is a ViT). Keep using it through hf_limber (or trust_remote_code), or take "
                "its weights to open_clip with hf_limber.clip.export.to_openai_state_dict.")
    if model.logit_bias is not None:
        return (f"it was trained with the sigmoid (SigLIP) objective and has a learned logit_bias "
                f"({model.logit_bias.item():.4g}) that CLIPModel has no place for: its logits would lose the "
                "bias, and sigmoid(logits) would no longer be the trained match probabilities. Use it through "
                "hf_limber, or train with contrastive_objective='softmax' for a stock CLIPModel.")
    eos = config.text_config.eos_token_id
    if eos == 2 and config.text_config.vocab_size != 3:
        return ("its end-of-text id is 2, which transformers' CLIP reads as a legacy config and pools at the "
                "largest token id instead: the text embeddings would change. Give the tokenizer's end-of-text "
                "token another id.")
    return None


def check_exportable(model: ClipModel) -> None:
    reason = transformers_refusal(model)
    if reason is not None:
        raise ExportRefused(f"Cannot export this model to transformers' CLIPModel: {reason}")


def transformers_config(model: ClipModel):
    """The `CLIPConfig` of the same architecture (training-only settings such as patch dropout stay behind)."""
    from transformers import CLIPConfig

    text, vision = model.config.text_config, model.config.vision_config
    return CLIPConfig(
        projection_dim=model.config.projection_dim,
        logit_scale_init_value=float(model.config.logit_scale_init_value),
        text_config={
            "vocab_size": text.vocab_size, "hidden_size": text.hidden_size, "intermediate_size": text.intermediate_size,
            "num_hidden_layers": text.num_hidden_layers, "num_attention_heads": text.num_attention_heads,
            "max_position_embeddings": text.max_position_embeddings, "hidden_act": text.hidden_act,
            "layer_norm_eps": text.layer_norm_eps, "attention_dropout": text.attention_dropout,
            "projection_dim": model.config.projection_dim,
            "bos_token_id": text.bos_token_id, "eos_token_id": text.eos_token_id, "pad_token_id": text.pad_token_id,
        },
        vision_config={
            "hidden_size": vision.hidden_size, "intermediate_size": vision.intermediate_size,
            "num_hidden_layers": vision.num_hidden_layers, "num_attention_heads": vision.num_attention_heads,
            "num_channels": vision.num_channels, "image_size": vision.image_size, "patch_size": vision.patch_size,
            "hidden_act": vision.hidden_act, "layer_norm_eps": vision.layer_norm_eps,
            "attention_dropout": vision.attention_dropout, "projection_dim": model.config.projection_dim,
        },
    )


# Our key -> transformers' CLIPModel key (the inverse of convert's rules), q/k/v aside.
_TO_TRANSFORMERS = [
    (r"^text_model\.token_embedding\.", "text_model.embeddings.token_embedding."),
    (r"^text_model\.position_embedding$", "text_model.embeddings.position_embedding.weight"),
    (r"^vision_model\.patch_embedding\.", "vision_model.embeddings.patch_embedding."),
    (r"^vision_model\.class_embedding$", "vision_model.embeddings.class_embedding"),
    (r"^vision_model\.position_embedding$", "vision_model.embeddings.position_embedding.weight"),
    (r"^vision_model\.pre_layernorm\.", "vision_model.pre_layrnorm."),
    (r"\.attn\.out_proj\.", ".self_attn.out_proj."),
]
# Our key -> OpenAI's: inside a Transformer block first, then the tower prefixes.
_TO_OPENAI_BLOCK = block_rules([(ours, openai) for openai, ours in BLOCK_NAMES])
_TO_OPENAI = [
    (r"^text_model\.token_embedding\.", "token_embedding."),
    (r"^text_model\.position_embedding$", "positional_embedding"),
    (r"^text_model\.final_layer_norm\.", "ln_final."),
    (r"^text_model\.encoder\.layers\.", "transformer.resblocks."),
    (r"^vision_model\.encoder\.layers\.", "visual.transformer.resblocks."),
    (r"^vision_model\.patch_embedding\.", "visual.conv1."),
    (r"^vision_model\.position_embedding$", "visual.positional_embedding"),
    (r"^vision_model\.pre_layernorm\.", "visual.ln_pre."),
    (r"^vision_model\.post_layernorm\.", "visual.ln_post."),
    (r"\.downsample\.conv\.", ".downsample.0."),
    (r"\.downsample\.bn\.", ".downsample.1."),
    (r"^vision_model\.", "visual."),
    (r"^text_projection\.weight$", "text_projection"),
    (r"^visual_projection\.weight$", "visual.proj"),
]


def transformers_state_dict(model: ClipModel) -> dict[str, torch.Tensor]:
    """`model`'s weights under transformers' `CLIPModel` names, q/k/v split out of our packed projection."""
    converted: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        value = value.detach()
        if ".attn.qkv." in key:
            prefix, kind = key.split(".attn.qkv.")
            for name, part in zip(("q", "k", "v"), value.chunk(3)):
                converted[f"{prefix}.self_attn.{name}_proj.{kind}"] = part.clone()
            continue
        converted[_rename(key, _TO_TRANSFORMERS)] = value
    return converted


def to_transformers(model: ClipModel):
    """transformers' `CLIPModel` with `model`'s weights; outputs equal to float rounding (ViT, softmax only)."""
    from transformers import CLIPModel
    from transformers.initialization import no_init_weights

    check_exportable(model)
    with no_init_weights():
        target = CLIPModel(transformers_config(model))
    target.load_state_dict(transformers_state_dict(model), strict=True)
    return target.to(model.dtype).eval()


def to_transformers_processor(processor: ClipProcessor):
    """transformers' `CLIPProcessor` with the same image processor and tokenizer."""
    from transformers import CLIPProcessor

    return CLIPProcessor(image_processor=processor.image_processor, tokenizer=processor.tokenizer)


def export_to_transformers(model: ClipModel, out: str | Path, processor: ClipProcessor | None = None,
                           overwrite: bool = False) -> Path:
    """Write `model` (and `processor`) to `out` as a stock transformers CLIP folder: `CLIPModel.from_pretrained(out)`
    and `CLIPProcessor.from_pretrained(out)` load it with transformers alone, no remote code.

    Refuses (`ExportRefused`) a model CLIPModel cannot reproduce, and (FileExistsError) an `out` that already
    holds files unless `overwrite`.
    """
    out = Path(out)
    check_exportable(model)
    refuse_occupied(out, overwrite)
    to_transformers(model).save_pretrained(out)
    if processor is not None:
        to_transformers_processor(processor).save_pretrained(out)
    return out


def refuse_occupied(out: Path, overwrite: bool) -> None:
    """An `out` that holds files would mix another model's files (a processor, remote code) with the export."""
    if out.exists() and any(out.iterdir()) and not overwrite:
        names = ", ".join(sorted(p.name for p in out.iterdir())[:5])
        raise FileExistsError(f"{out} already holds files ({names}...): the export would be mixed with them. "
                              "Pass a new or empty folder, or overwrite=True (--overwrite).")


def to_openai_state_dict(model: ClipModel) -> dict[str, torch.Tensor]:
    """`model`'s weights in OpenAI's layout, which open_clip's `CLIP` (and OpenAI's `clip`) load; any tower.

    A sigmoid-objective model's `logit_bias` keeps its name, as open_clip spells it (build that `CLIP` with
    `init_logit_bias` so it has the parameter).
    """
    converted: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if key.endswith("_projection.weight"):
            value = value.t().contiguous()  # OpenAI multiplies x @ proj; nn.Linear stores proj transposed
        if ".encoder.layers." in key:
            key = _rename(key, _TO_OPENAI_BLOCK)
        converted[_rename(key, _TO_OPENAI)] = value.detach()
    return converted


def _rename(key: str, rules: list[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def load_for_export(src: str | Path) -> tuple[ClipModel, ClipProcessor | None]:
    """A saved hf_limber CLIP (folder or Hub id) and its processor when it has one; other models are refused
    naming what they are."""
    from transformers import PretrainedConfig

    model_type = PretrainedConfig.get_config_dict(str(src))[0].get("model_type")
    if model_type == "clip":
        raise ExportRefused(f"{src} is already a transformers CLIPModel folder: there is nothing to export.")
    if model_type != ClipConfig.model_type:
        raise ExportRefused(f"{src} holds a {model_type!r} model; export writes a CLIP dual encoder "
                            f"({ClipConfig.model_type!r}, ClipModel) as transformers' CLIPModel.")
    model = ClipModel.from_pretrained(src).eval()
    try:
        processor = ClipProcessor.from_pretrained(src)
    except (OSError, ValueError):
        processor = None
    return model, processor


def describe_export(out: Path) -> str:
    config = json.loads((Path(out) / "config.json").read_text())
    return f"{config['architectures'][0]} ({config['model_type']!r}) in {out}"
