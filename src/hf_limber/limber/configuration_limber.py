"""LimberConfig: a frozen image encoder, a frozen causal LM, and the one linear map between them."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_MAPPING, AutoConfig, PretrainedConfig
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from .remote_code import check_location, hub_options, register_part_code, runs_as_remote_code, save_part_code

FEATURES = ("tokens", "pooled", "tiles")
# The Auto class LimberForCausalLM builds each part with, and its public config -> model mapping.
PART_AUTO_CLASSES = {"vision_config": ("AutoModel", MODEL_MAPPING),
                     "text_config": ("AutoModelForCausalLM", MODEL_FOR_CAUSAL_LM_MAPPING)}


def _as_config(value: dict | PretrainedConfig | None, what: str) -> PretrainedConfig | None:
    if value is None or isinstance(value, PretrainedConfig):
        return value
    value = dict(value)
    model_type = value.pop("model_type", None)
    if model_type is None:
        raise ValueError(f"LimberConfig.{what}: the dict has no model_type. Pass a transformers config or its to_dict().")
    if model_type not in CONFIG_MAPPING and value.get("auto_map"):
        raise ValueError(
            f"LimberConfig.{what}: {model_type!r} is a model whose code ships with the saved folder; it is not run "
            "unasked. Load the folder with LimberConfig/LimberForCausalLM.from_pretrained(..., trust_remote_code=True) "
            "if you trust its source."
        )
    return AutoConfig.for_model(model_type, **value)


class LimberConfig(PretrainedConfig):
    """Everything a LiMBeR model needs, read off the two parts' configs.

    Args:
        vision_config: the image encoder's transformers config (None for a timm encoder).
        text_config: the causal LM's config (any `AutoModelForCausalLM` architecture).
        timm_model / timm_kwargs: the timm architecture (and its arguments) when the encoder is timm's.
        image_size / image_feature_size / num_feature_tokens: the encoder's input side and the
            width and count of its per-token features; `from_parts` measures them on the encoder.
        features: "tokens" projects every grid/patch token with the same matrix (the paper's CLIP
            and BEiT setting, k = number of tokens); "pooled" projects the pooled vector to k·d and
            splits it into k tokens (the paper's NF-ResNet setting); "tiles" cuts the picture into
            tiles_per_side² tiles, runs the encoder on each at its own input size and projects every
            tile's pooled vector with the same matrix (k = tiles_per_side²; LLaVA-NeXT's tiling): each
            prompt then carries what the encoder was trained to summarise, one region of the picture.
        feature_layer: which encoder output: -1 is the final one (`last_hidden_state`), other
            values index `hidden_states` (LLaVA uses -2).
        drop_class_token: drop the encoder's leading class token from per-token features (LiMBeR
            drops BEiT's; a ResNet grid has none).
        num_pooled_tokens: k for pooled features.
        token_pool: average-pool the square token grid by this factor per side before projecting
            (2 keeps a quarter of the tokens): fewer soft-prompt tokens from the same features.
        tiles_per_side: tiles per side of the picture for features="tiles".
        image_token / image_token_id: the placeholder the processor puts k times into `input_ids`
            (the marker for it in prompt text, and its id: by default the first id past the LM's
            vocabulary, so it never collides with text and the LM never embeds it).
        prompt: the captioning prompt: an image marker in it is where the image goes (e.g.
            "<|endoftext|><image>": a real first token, then the image); without one the image comes first.
        projection_dropout: dropout on the projected tokens during training (LiMBeR: 0.1).
        normalize_features: layer-normalise each image feature (no learned scale) before the map, so
            the map's input has the same scale whatever the encoder.
        train_image_encoder: train the image encoder together with the projection (the paper's BEiT-FT
            setting); the adapter form then saves the encoder's weights too.
        soft_prompt_norm: rescale each soft prompt to this L2 norm (None: leave the map's output as
            it is, the paper's setting). `from_parts(..., soft_prompt_norm="auto")` measures the LM's
            mean token-embedding norm, so the prompts start where the LM's inputs live.
        vision_source / text_source: where the frozen parts load from, for the small adapter form.
        saved_parts: "adapter" (projection only) or "full", as written by `save_pretrained`.
        language_model_adapter: the subfolder holding a PEFT adapter (LoRA) trained on the LM, in peft's
            own files (`adapter_config.json`, `adapter_model.safetensors`); None when the LM is untouched.
    """

    model_type = "limber"
    sub_configs = {"vision_config": AutoConfig, "text_config": AutoConfig}

    def __init__(
        self,
        vision_config: dict | PretrainedConfig | None = None,
        text_config: dict | PretrainedConfig | None = None,
        timm_model: str | None = None,
        timm_kwargs: dict | None = None,
        image_size: int = 224,
        image_feature_size: int | None = None,
        num_feature_tokens: int | None = None,
        has_class_token: bool = False,
        features: str = "tokens",
        feature_layer: int = -1,
        drop_class_token: bool = True,
        num_pooled_tokens: int = 1,
        token_pool: int = 1,
        tiles_per_side: int = 2,
        image_token: str = "<image>",
        image_token_id: int | None = None,
        prompt: str = "A picture of",
        projection_dropout: float = 0.1,
        normalize_features: bool = False,
        soft_prompt_norm: float | None = None,
        train_image_encoder: bool = False,
        vision_source: str | None = None,
        text_source: str | None = None,
        saved_parts: str = "full",
        language_model_adapter: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.vision_config = _as_config(vision_config, "vision_config")
        self.text_config = _as_config(text_config, "text_config")
        self.timm_model = timm_model
        self.timm_kwargs = timm_kwargs or {}
        self.image_size = image_size
        self.image_feature_size = image_feature_size
        self.num_feature_tokens = num_feature_tokens
        self.has_class_token = has_class_token
        self.features = features
        self.feature_layer = feature_layer
        self.drop_class_token = drop_class_token
        self.num_pooled_tokens = num_pooled_tokens
        self.token_pool = token_pool
        self.tiles_per_side = tiles_per_side
        self.image_token = image_token
        self.image_token_id = image_token_id
        self.prompt = prompt
        self.projection_dropout = projection_dropout
        self.normalize_features = normalize_features
        self.soft_prompt_norm = soft_prompt_norm
        self.train_image_encoder = train_image_encoder
        self.vision_source = vision_source
        self.text_source = text_source
        self.saved_parts = saved_parts
        self.language_model_adapter = language_model_adapter
        super().__init__(**kwargs)
        if self.image_token_id is None and self.text_config is not None:
            # The first id past the LM's vocabulary: it can never collide with a text token.
            self.image_token_id = self.text_config.get_text_config().vocab_size
        if features not in FEATURES:
            raise ValueError(f"LimberConfig.features: unknown {features!r}. Use one of {FEATURES}.")
        if soft_prompt_norm is not None and not (isinstance(soft_prompt_norm, (int, float)) and soft_prompt_norm > 0):
            raise ValueError(f"LimberConfig.soft_prompt_norm: a positive L2 norm or None, got {soft_prompt_norm!r}. "
                             "from_parts(..., soft_prompt_norm='auto') measures the LM's token-embedding norm.")
        if num_pooled_tokens < 1:
            raise ValueError("LimberConfig.num_pooled_tokens: k must be at least 1.")
        if tiles_per_side < 1:
            raise ValueError(f"LimberConfig.tiles_per_side: at least 1 tile per side, got {tiles_per_side}.")
        if token_pool < 1 or (token_pool > 1 and features != "tokens"):
            raise ValueError("LimberConfig.token_pool: a factor of at least 1, and only with features='tokens'.")
        if token_pool > 1 and self.num_feature_tokens is not None:
            side = math.isqrt(self.grid_tokens)
            if side * side != self.grid_tokens or side % token_pool:
                raise ValueError(f"LimberConfig.token_pool: {self.grid_tokens} tokens do not form a square grid whose "
                                 f"side divides by {token_pool}; choose a factor of the side ({side}).")

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> tuple[dict, dict]:
        """Also registers the code the folder ships for its parts, only when trusted: `trust_remote_code=True`
        here, or this class itself loaded as remote code (transformers asked for the trust then)."""
        check_location(pretrained_model_name_or_path, "LiMBeR model")
        trusted = bool(kwargs.pop("trust_remote_code", None)) or runs_as_remote_code(cls)
        options = hub_options(kwargs)
        config_dict, kwargs = super().get_config_dict(pretrained_model_name_or_path, **kwargs)
        register_part_code(config_dict, pretrained_model_name_or_path, trust_remote_code=trusted, **options)
        return config_dict, kwargs

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> None:
        """Also writes the code of parts that transformers does not ship (hf_limber's CLIP tower), so the
        folder loads with transformers alone (`trust_remote_code=True`)."""
        os.makedirs(save_directory, exist_ok=True)
        for key, (auto_name, model_mapping) in PART_AUTO_CLASSES.items():
            save_part_code(save_directory, getattr(self, key), auto_name, model_mapping)
        super().save_pretrained(save_directory, **kwargs)
        if push_to_hub:
            # transformers would upload only files written after its own start; push everything instead.
            self.push_to_hub(kwargs.pop("repo_id", Path(save_directory).name), **kwargs)

    @property
    def num_image_tokens(self) -> int:
        """k: how many soft-prompt vectors one image becomes."""
        if self.features == "pooled":
            return self.num_pooled_tokens
        if self.features == "tiles":
            return self.tiles_per_side**2
        return self.grid_tokens // self.token_pool**2

    @property
    def grid_tokens(self) -> int:
        """Per-token features the encoder gives, after dropping a class token."""
        if self.num_feature_tokens is None:
            raise ValueError("LimberConfig.num_feature_tokens is unknown; build the model with LimberForCausalLM.from_parts.")
        return self.num_feature_tokens - int(self.has_class_token and self.drop_class_token)

    @property
    def lm_hidden_size(self) -> int:
        return self.text_config.get_text_config().hidden_size
