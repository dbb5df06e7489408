"""Weights from the public CLIP implementations into `ClipModel`, with configs read off the weights.

- `from_openai_state_dict`: the released OpenAI layout, which open_clip's CLIP models share.
- `from_open_clip`: a live open_clip model (its head counts and activation are read from it).
- `from_transformers`: transformers' `CLIPModel` (ViT only: transformers has no ResNet CLIP).

Each builds the model on the meta device and loads every tensor strictly, so a missing or unused
weight is an error, never a silently random parameter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .configuration_clip import ACTIVATIONS, HEAD_WIDTH, RESNET_STRIDE, ClipConfig
from .modeling_clip import ClipModel
from .processing_clip import ClipProcessor
from .tokenization import clip_tokenizer_from_bpe, default_bpe_path

# OpenAI key -> ours, each rule applied in turn to the result of the previous ones.
_OPENAI_RULES = [
    (r"^token_embedding\.", "text_model.token_embedding."),
    (r"^positional_embedding$", "text_model.position_embedding"),
    (r"^ln_final\.", "text_model.final_layer_norm."),
    (r"^transformer\.resblocks\.", "text_model.encoder.layers."),
    (r"^visual\.transformer\.resblocks\.", "vision_model.encoder.layers."),
    (r"^visual\.conv1\.weight$", "vision_model.{patch_or_conv1}.weight"),
    (r"^visual\.positional_embedding$", "vision_model.position_embedding"),
    (r"^visual\.ln_pre\.", "vision_model.pre_layernorm."),
    (r"^visual\.ln_post\.", "vision_model.post_layernorm."),
    (r"\.downsample\.0\.", ".downsample.conv."),
    (r"\.downsample\.1\.", ".downsample.bn."),
    (r"^visual\.", "vision_model."),
]
# Inside a Transformer block (text and ViT alike).
# (OpenAI's name, ours) of the parts of a block; export.py renames the other way with the same pairs.
BLOCK_NAMES = [("ln_1.", "layer_norm1."), ("ln_2.", "layer_norm2."), ("attn.in_proj_weight", "attn.qkv.weight"),
               ("attn.in_proj_bias", "attn.qkv.bias"), ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2.")]


def block_rules(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """re.sub rules that rename ".old" to ".new" inside a key (a name without a trailing dot ends the key)."""
    return [(re.escape("." + old) + ("" if old.endswith(".") else "$"), "." + new) for old, new in pairs]


_BLOCK_RULES = block_rules(BLOCK_NAMES)
# Scalars the JIT archives carry that are not weights.
_OPENAI_METADATA = {"input_resolution", "context_length", "vocab_size"}


def _count(state_dict: Mapping[str, torch.Tensor], pattern: str) -> int:
    return len({m.group(1) for key in state_dict if (m := re.match(pattern, key))})


def config_from_openai_state_dict(
    state_dict: Mapping[str, torch.Tensor], hidden_act: str = "quick_gelu",
    text_heads: int | None = None, vision_heads: int | None = None,
) -> ClipConfig:
    """Read the architecture off the weight shapes; heads follow the paper's 64-wide rule unless given."""
    sd = state_dict
    width = sd["ln_final.weight"].shape[0]
    text_config = {
        "vocab_size": sd["token_embedding.weight"].shape[0],
        "hidden_size": width,
        "num_hidden_layers": _count(sd, r"transformer\.resblocks\.(\d+)\."),
        "num_attention_heads": text_heads or width // HEAD_WIDTH,
        "max_position_embeddings": sd["positional_embedding"].shape[0],
        "intermediate_size": sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        "hidden_act": hidden_act,
        "eos_token_id": sd["token_embedding.weight"].shape[0] - 1,
        "bos_token_id": sd["token_embedding.weight"].shape[0] - 2,
        "pad_token_id": sd["token_embedding.weight"].shape[0] - 1,
    }
    if "visual.proj" in sd:
        vision_width, patch = sd["visual.conv1.weight"].shape[0], sd["visual.conv1.weight"].shape[-1]
        grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        vision_config = {
            "tower": "vit", "hidden_size": vision_width, "patch_size": patch, "image_size": patch * grid,
            "num_hidden_layers": _count(sd, r"visual\.transformer\.resblocks\.(\d+)\."),
            "num_attention_heads": vision_heads or vision_width // HEAD_WIDTH,
            "intermediate_size": sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            "hidden_act": hidden_act,
        }
        projection_dim = sd["visual.proj"].shape[1]
    else:
        stem_width = sd["visual.layer1.0.conv1.weight"].shape[0]
        grid = round((sd["visual.attnpool.positional_embedding"].shape[0] - 1) ** 0.5)
        vision_config = {
            "tower": "resnet", "hidden_size": stem_width, "image_size": grid * RESNET_STRIDE,
            "num_hidden_layers": [_count(sd, rf"visual\.layer{i}\.(\d+)\.") for i in range(1, 5)],
            "num_attention_heads": vision_heads or 32 * stem_width // HEAD_WIDTH,
            "hidden_act": hidden_act,
        }
        projection_dim = sd["visual.attnpool.c_proj.weight"].shape[0]
    return ClipConfig(text_config=text_config, vision_config=vision_config, projection_dim=projection_dim)


def _rename(key: str, rules: list[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def _openai_key(key: str, is_vit: bool) -> str:
    key = _rename(key, _OPENAI_RULES).replace("{patch_or_conv1}", "patch_embedding" if is_vit else "conv1")
    if ".encoder.layers." in key:
        key = _rename(key, _BLOCK_RULES)
    return key


def _load(config: ClipConfig, state_dict: dict[str, torch.Tensor]) -> ClipModel:
    with torch.device("meta"):
        model = ClipModel(config)
    # Running BatchNorm counters are bookkeeping, not weights: fill them where a source omits them.
    for name, buffer in model.named_buffers():
        if name.endswith("num_batches_tracked"):
            state_dict.setdefault(name, torch.zeros((), dtype=torch.long))
    own = model.state_dict()
    mismatched = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state_dict.items()
                  if k in own and v.shape != own[k].shape]
    if mismatched:
        raise ValueError("Converted weights do not fit the inferred architecture: " + "; ".join(mismatched[:5]))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()},
                          strict=True, assign=True)
    return model.eval()


def from_openai_state_dict(
    state_dict: Mapping[str, torch.Tensor], hidden_act: str = "quick_gelu",
    text_heads: int | None = None, vision_heads: int | None = None,
) -> ClipModel:
    """A `ClipModel` from a state dict in OpenAI's layout (OpenAI's releases, open_clip's CLIP models).

    The OpenAI weights were trained with QuickGELU, the default here; pass `hidden_act="gelu"` for
    open_clip models trained with plain GELU.
    """
    config = config_from_openai_state_dict(state_dict, hidden_act, text_heads, vision_heads)
    is_vit = config.vision_config.tower == "vit"
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key in _OPENAI_METADATA or key == "attn_mask" or key.endswith(".attn_mask"):
            continue
        if key in ("text_projection", "visual.proj"):
            name = "text_projection.weight" if key == "text_projection" else "visual_projection.weight"
            converted[name] = value.t().contiguous()
            continue
        converted[_openai_key(key, is_vit)] = value
    return _load(config, converted)


def from_open_clip(model: nn.Module) -> ClipModel:
    """A `ClipModel` with the weights of an open_clip `CLIP` model (ResNet or ViT image tower)."""
    text_block = model.transformer.resblocks[0]
    visual = model.visual
    if hasattr(visual, "attnpool"):
        vision_heads = visual.attnpool.num_heads
    else:
        vision_heads = visual.transformer.resblocks[0].attn.num_heads
    act = type(text_block.mlp.gelu).__name__
    if act not in ("QuickGELU", "GELU"):
        raise ValueError(f"open_clip model uses activation {act}; only QuickGELU and GELU towers convert.")
    return from_openai_state_dict(
        model.state_dict(), hidden_act="quick_gelu" if act == "QuickGELU" else "gelu",
        text_heads=text_block.attn.num_heads, vision_heads=vision_heads,
    )


_TRANSFORMERS_RULES = [
    (r"^text_model\.embeddings\.token_embedding\.", "text_model.token_embedding."),
    (r"^text_model\.embeddings\.position_embedding\.weight$", "text_model.position_embedding"),
    (r"^vision_model\.embeddings\.patch_embedding\.", "vision_model.patch_embedding."),
    (r"^vision_model\.embeddings\.class_embedding$", "vision_model.class_embedding"),
    (r"^vision_model\.embeddings\.position_embedding\.weight$", "vision_model.position_embedding"),
    (r"^vision_model\.pre_layrnorm\.", "vision_model.pre_layernorm."),
    (r"\.self_attn\.out_proj\.", ".attn.out_proj."),
]


def _act(name: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"transformers CLIP uses hidden_act={name!r}; only {' and '.join(ACTIVATIONS)} convert.")
    return name


def from_transformers(model: nn.Module) -> ClipModel:
    """A `ClipModel` with the weights of a transformers `CLIPModel`."""
    text, vision = model.config.text_config, model.config.vision_config
    # transformers' legacy pooling (eos_token_id == 2) takes the largest id, which in CLIP's
    # vocabulary is end-of-text; we pool at the end-of-text id explicitly.
    eos = text.vocab_size - 1 if text.eos_token_id == 2 else text.eos_token_id
    config = ClipConfig(
        projection_dim=model.config.projection_dim,
        text_config={
            "vocab_size": text.vocab_size, "hidden_size": text.hidden_size,
            "intermediate_size": text.intermediate_size, "num_hidden_layers": text.num_hidden_layers,
            "num_attention_heads": text.num_attention_heads, "max_position_embeddings": text.max_position_embeddings,
            "hidden_act": _act(text.hidden_act), "layer_norm_eps": text.layer_norm_eps,
            "eos_token_id": eos, "bos_token_id": text.bos_token_id,
            "pad_token_id": text.pad_token_id if text.pad_token_id is not None else eos,
        },
        vision_config={
            "tower": "vit", "hidden_size": vision.hidden_size, "intermediate_size": vision.intermediate_size,
            "num_hidden_layers": vision.num_hidden_layers, "num_attention_heads": vision.num_attention_heads,
            "patch_size": vision.patch_size, "image_size": vision.image_size, "num_channels": vision.num_channels,
            "hidden_act": _act(vision.hidden_act), "layer_norm_eps": vision.layer_norm_eps,
        },
    )
    source = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        if key.endswith("position_ids"):
            continue
        if ".self_attn.q_proj." in key:
            kind = key.rsplit(".", 1)[1]
            prefix = key.split(".self_attn.")[0]
            parts = [source[f"{prefix}.self_attn.{p}_proj.{kind}"] for p in ("q", "k", "v")]
            converted[f"{prefix}.attn.qkv.{kind}"] = torch.cat(parts)
            continue
        if ".self_attn.k_proj." in key or ".self_attn.v_proj." in key:
            continue
        converted[_rename(key, _TRANSFORMERS_RULES)] = value
    return _load(config, converted)


PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")


def _check_transformers_clip_folder(folder: Path) -> None:
    """Refuse folders that are not transformers' CLIPModel, naming what they are instead."""
    config = folder / "config.json"
    if not config.is_file():
        raise ValueError(f"{folder} has no config.json: pass a folder that transformers' CLIPModel.save_pretrained "
                         "wrote, or an OpenAI-layout .safetensors file.")
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type == ClipConfig.model_type:
        raise ValueError(f"{folder} is already an hf_limber CLIP: load it with ClipModel.from_pretrained (or "
                         "AutoModel with import hf_limber); there is nothing to convert.")
    if model_type != "clip":
        raise ValueError(f"{folder} holds a {model_type!r} model, not transformers' CLIPModel ('clip'); "
                         "hf-limber convert reads CLIPModel folders and OpenAI-layout .safetensors files.")


def convert_path(
    src: str | Path, hidden_act: str = "quick_gelu", bpe_path: str | Path | None = None,
) -> tuple[ClipModel, ClipProcessor | None]:
    """Convert a transformers CLIP folder or an OpenAI-layout .safetensors file; never reads pickles."""
    src = Path(src)
    if src.is_dir():
        from transformers import AutoProcessor, CLIPModel

        _check_transformers_clip_folder(src)
        source, loading = CLIPModel.from_pretrained(src, use_safetensors=True, output_loading_info=True)
        incomplete = {kind: keys for kind, keys in loading.items() if keys and kind in ("missing_keys", "unexpected_keys")}
        if incomplete:
            raise ValueError(f"{src} does not hold a complete transformers CLIPModel ({incomplete}); converting it "
                             "would leave those weights random. Pass the folder CLIPModel.save_pretrained wrote.")
        model = from_transformers(source)
        try:
            source_processor = AutoProcessor.from_pretrained(src)
        except (OSError, ValueError):
            return model, None
        tokenizer = source_processor.tokenizer
        tokenizer.split_special_tokens = True
        return model, ClipProcessor.for_config(model.config, tokenizer)
    if src.suffix in PICKLE_SUFFIXES:
        raise ValueError(
            f"{src} is a pickle checkpoint, which can run arbitrary code when loaded; hf_limber never loads "
            "pickles. Convert it to .safetensors (safetensors.torch.save_file(state_dict, ...)) with code you trust."
        )
    if src.suffix != ".safetensors":
        raise ValueError(f"Cannot convert {src}: pass a transformers CLIP folder or a .safetensors state dict.")
    from safetensors.torch import load_file

    model = from_openai_state_dict(load_file(src), hidden_act=hidden_act)
    bpe_path = bpe_path or default_bpe_path()
    if bpe_path is None:
        return model, None
    tokenizer = clip_tokenizer_from_bpe(bpe_path, model.config.text_config.max_position_embeddings)
    return model, ClipProcessor.for_config(model.config, tokenizer)
