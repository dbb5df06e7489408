"""Configurations of the CLIP dual encoder: text tower, image tower (modified ResNet or ViT), both.

Every number a model needs lives here, and every combination that cannot be built fails here,
at config time, with the field and the fix in the message.

This file must stay importable on its own with only transformers installed: it is copied next to
the weights for `trust_remote_code` users.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import PretrainedConfig

from .presets import load_preset

ACTIVATIONS = ("quick_gelu", "gelu")
TOWERS = ("resnet", "vit")
# The modified ResNet halves the resolution five times (stem x4, three strided stages x8).
RESNET_STRIDE = 32
# Every attention head in the paper's models is 64 wide; head counts follow from widths.
HEAD_WIDTH = 64
# CLIP's softmax loss or SigLIP's sigmoid loss (Zhai et al. 2023), and each paper's start for logit_scale:
# the multiplier exp(logit_scale) starts at 1/0.07 (CLIP) or 10 (SigLIP, with logit_bias at -10).
OBJECTIVES = ("softmax", "sigmoid")
LOGIT_SCALE_INIT = {"softmax": math.log(1 / 0.07), "sigmoid": math.log(10.0)}


def _fail(config_name: str, field: str, problem: str, fix: str) -> None:
    raise ValueError(f"{config_name}.{field}: {problem}. {fix}")


def _check_sizes(config_name: str, sizes: dict[str, Any], rates: dict[str, Any]) -> None:
    """Sizes are positive whole numbers and rates lie in [0, 1), before anything is derived from them."""
    for field, value in sizes.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            _fail(config_name, field, f"must be a positive whole number, got {value!r}",
                  "Pass an integer of at least 1 (the presets show typical values: ClipConfig.from_preset).")
    for field, value in rates.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            _fail(config_name, field, f"must be a probability in [0, 1), got {value!r}", "The paper uses 0.0.")


def _set_block_fields(config: PretrainedConfig, projection_dim: int, hidden_act: str, layer_norm_eps: float,
                      attention_dropout: float, dropout: float) -> None:
    """The fields both towers' residual blocks and output projections read, set in one place."""
    config.projection_dim = projection_dim
    config.hidden_act = hidden_act
    config.layer_norm_eps = layer_norm_eps
    config.attention_dropout = attention_dropout
    config.dropout = dropout


class ClipTextConfig(PretrainedConfig):
    """The causal text Transformer: BPE tokens in, the end-of-text token's state out."""

    model_type = "limber_clip_text_model"
    base_config_key = "text_config"

    def __init__(
        self,
        vocab_size: int = 49408,
        hidden_size: int = 512,
        intermediate_size: int | None = None,
        num_hidden_layers: int = 12,
        num_attention_heads: int | None = None,
        max_position_embeddings: int = 77,
        projection_dim: int = 512,
        hidden_act: str = "quick_gelu",
        layer_norm_eps: float = 1e-5,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
        pad_token_id: int = 49407,
        bos_token_id: int = 49406,
        eos_token_id: int = 49407,
        **kwargs: Any,
    ) -> None:
        _check_sizes(type(self).__name__, {
            "vocab_size": vocab_size, "hidden_size": hidden_size, "intermediate_size": intermediate_size,
            "num_hidden_layers": num_hidden_layers, "num_attention_heads": num_attention_heads,
            "max_position_embeddings": max_position_embeddings, "projection_dim": projection_dim,
        }, {"attention_dropout": attention_dropout, "dropout": dropout})
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size or 4 * hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads or max(1, hidden_size // HEAD_WIDTH)
        self.max_position_embeddings = max_position_embeddings
        _set_block_fields(self, projection_dim, hidden_act, layer_norm_eps, attention_dropout, dropout)
        super().__init__(
            pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id, **kwargs
        )
        self.validate_fields()

    def validate_fields(self) -> None:
        name = type(self).__name__
        if self.hidden_size % self.num_attention_heads:
            _fail(name, "hidden_size", f"{self.hidden_size} is not divisible by num_attention_heads="
                  f"{self.num_attention_heads}", "Choose a width that is a multiple of the head count.")
        if self.hidden_act not in ACTIVATIONS:
            _fail(name, "hidden_act", f"unknown activation {self.hidden_act!r}", f"Use one of {ACTIVATIONS}.")
        if self.eos_token_id is None or not 0 <= self.eos_token_id < self.vocab_size:
            _fail(name, "eos_token_id", f"{self.eos_token_id} is not an id of a {self.vocab_size}-token "
                  "vocabulary", "The text is pooled at the end-of-text token: set its id.")
        if self.max_position_embeddings < 2:
            _fail(name, "max_position_embeddings", "a context needs room for start and end tokens",
                  "Use at least 2 (the paper uses 77).")


class ClipVisionConfig(PretrainedConfig):
    """The image tower: the paper's modified ResNet (`tower="resnet"`) or a ViT (`tower="vit"`).

    `hidden_size` is the ViT width or the ResNet stem width; `num_hidden_layers` is the ViT depth
    or the ResNet's four stage depths. `num_attention_heads` is the ViT's heads or the ResNet
    attention-pool heads; by default both follow from 64-wide heads, as in the paper.
    """

    model_type = "limber_clip_vision_model"
    base_config_key = "vision_config"

    def __init__(
        self,
        tower: str = "vit",
        image_size: int = 224,
        num_channels: int = 3,
        hidden_size: int = 768,
        num_hidden_layers: int | list[int] = 12,
        num_attention_heads: int | None = None,
        intermediate_size: int | None = None,
        patch_size: int = 32,
        projection_dim: int = 512,
        hidden_act: str = "quick_gelu",
        layer_norm_eps: float = 1e-5,
        attention_dropout: float = 0.0,
        dropout: float = 0.0,
        patch_dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        depths = num_hidden_layers if isinstance(num_hidden_layers, (list, tuple)) else [num_hidden_layers]
        _check_sizes(type(self).__name__, {
            "image_size": image_size, "num_channels": num_channels, "hidden_size": hidden_size,
            "intermediate_size": intermediate_size, "num_attention_heads": num_attention_heads,
            "patch_size": patch_size, "projection_dim": projection_dim,
            **{"num_hidden_layers": depth for depth in depths if not isinstance(depth, int) or depth < 1},
        }, {"attention_dropout": attention_dropout, "dropout": dropout, "patch_dropout": patch_dropout})
        self.tower = tower
        self.image_size = image_size
        self.num_channels = num_channels
        self.hidden_size = hidden_size
        resnet_depths = tower == "resnet" and isinstance(num_hidden_layers, (list, tuple))
        self.num_hidden_layers = list(num_hidden_layers) if resnet_depths else num_hidden_layers
        if num_attention_heads is None:
            num_attention_heads = max(1, self.feature_size // HEAD_WIDTH) if tower in TOWERS else 1
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size or 4 * hidden_size
        self.patch_size = patch_size
        _set_block_fields(self, projection_dim, hidden_act, layer_norm_eps, attention_dropout, dropout)
        # FLIP (Li et al. 2023): the share of a ViT's patch tokens dropped at random in training, never in eval.
        self.patch_dropout = patch_dropout
        super().__init__(**kwargs)
        self.validate_fields()

    @property
    def feature_size(self) -> int:
        """Width of the per-token features in `last_hidden_state` (ResNet: grid channels)."""
        return 32 * self.hidden_size if self.tower == "resnet" else self.hidden_size

    @property
    def grid_size(self) -> int:
        """Side of the square feature grid (tokens per side, class token not counted)."""
        return self.image_size // (RESNET_STRIDE if self.tower == "resnet" else self.patch_size)

    @property
    def num_feature_tokens(self) -> int:
        """Length of `last_hidden_state`: h*w grid cells, plus the class token for a ViT."""
        return self.grid_size**2 + (1 if self.tower == "vit" else 0)

    def validate_fields(self) -> None:
        name = type(self).__name__
        if self.tower not in TOWERS:
            _fail(name, "tower", f"unknown image tower {self.tower!r}", f"Use one of {TOWERS}.")
        if self.hidden_act not in ACTIVATIONS:
            _fail(name, "hidden_act", f"unknown activation {self.hidden_act!r}", f"Use one of {ACTIVATIONS}.")
        if self.feature_size % self.num_attention_heads:
            _fail(name, "num_attention_heads", f"feature width {self.feature_size} is not divisible by "
                  f"{self.num_attention_heads} heads", "Choose a head count that divides the width.")
        if self.tower == "resnet":
            if not isinstance(self.num_hidden_layers, list) or len(self.num_hidden_layers) != 4 or min(self.num_hidden_layers) < 1:
                _fail(name, "num_hidden_layers", f"a ResNet tower needs four stage depths >= 1, got "
                      f"{self.num_hidden_layers}", "Pass e.g. [3, 4, 6, 3] (RN50).")
            if self.hidden_size % 2:
                _fail(name, "hidden_size", f"the ResNet stem halves the width, {self.hidden_size} is odd",
                      "Use an even stem width (RN50 uses 64).")
            if self.patch_dropout:
                _fail(name, "patch_dropout", f"{self.patch_dropout} asks to drop patches, but a ResNet tower has no "
                      "patch tokens", "Set patch_dropout to 0 or train a ViT tower.")
            if self.image_size % RESNET_STRIDE:
                _fail(name, "image_size", f"{self.image_size} is not a multiple of the ResNet stride "
                      f"{RESNET_STRIDE}", f"Use e.g. {max(1, round(self.image_size / RESNET_STRIDE)) * RESNET_STRIDE}.")
        else:
            if not isinstance(self.num_hidden_layers, int) or self.num_hidden_layers < 1:
                _fail(name, "num_hidden_layers", f"a ViT tower needs one depth >= 1, got "
                      f"{self.num_hidden_layers}", "Pass an integer such as 12.")
            if self.image_size % self.patch_size:
                _fail(name, "image_size", f"{self.image_size} is not a multiple of patch_size "
                      f"{self.patch_size}", f"Use e.g. {max(1, round(self.image_size / self.patch_size)) * self.patch_size}.")


class ClipConfig(PretrainedConfig):
    """A CLIP dual encoder: a text config, a vision config, the shared embedding size, the temperature, and
    the contrastive objective it is trained with (`"softmax"`, CLIP; `"sigmoid"`, SigLIP with a learnable
    logit bias). `logit_scale_init_value` defaults to the objective's paper value."""

    model_type = "limber_clip"
    sub_configs = {"text_config": ClipTextConfig, "vision_config": ClipVisionConfig}
    # `logit_scale` is always the log value (the parameter); the cap is on its exponential, the multiplier.
    # Configs saved before the rename spell the cap `max_logit_scale`: read as the new name.
    attribute_map = {"max_logit_scale": "max_logit_scale_multiplier"}

    def __init__(
        self,
        text_config: dict | ClipTextConfig | None = None,
        vision_config: dict | ClipVisionConfig | None = None,
        projection_dim: int = 512,
        logit_scale_init_value: float | None = None,
        max_logit_scale_multiplier: float = 100.0,
        contrastive_objective: str = "softmax",
        logit_bias_init_value: float = -10.0,
        **kwargs: Any,
    ) -> None:
        max_logit_scale_multiplier = kwargs.pop("max_logit_scale", max_logit_scale_multiplier)
        if contrastive_objective not in OBJECTIVES:
            _fail("ClipConfig", "contrastive_objective", f"unknown objective {contrastive_objective!r}",
                  f"Use one of {OBJECTIVES}: CLIP's softmax loss or SigLIP's sigmoid loss.")
        if logit_scale_init_value is None:
            logit_scale_init_value = LOGIT_SCALE_INIT[contrastive_objective]
        self.text_config = self._sub_config(ClipTextConfig, text_config, projection_dim)
        self.vision_config = self._sub_config(ClipVisionConfig, vision_config, projection_dim)
        self.projection_dim = projection_dim
        self.logit_scale_init_value = logit_scale_init_value
        self.max_logit_scale_multiplier = max_logit_scale_multiplier
        # "sigmoid" gives the model SigLIP's learnable logit_bias (its start value below); "softmax" has none.
        self.contrastive_objective = contrastive_objective
        self.logit_bias_init_value = logit_bias_init_value
        super().__init__(**kwargs)
        if not 0 < math.exp(logit_scale_init_value) <= max_logit_scale_multiplier:
            _fail("ClipConfig", "logit_scale_init_value", f"exp({logit_scale_init_value:.4f}) is outside "
                  f"(0, max_logit_scale_multiplier={max_logit_scale_multiplier}]",
                  "The paper starts at log(1/0.07) and caps exp(logit_scale) at 100.")

    @staticmethod
    def _sub_config(cls: type[PretrainedConfig], value: Any, projection_dim: int) -> PretrainedConfig:
        # Both towers project into the one shared space: the dual encoder's projection_dim wins.
        if isinstance(value, PretrainedConfig):
            value = value.to_dict()
        value = {k: v for k, v in (value or {}).items() if k not in ("model_type", "transformers_version")}
        value["projection_dim"] = projection_dim
        return cls(**value)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "ClipConfig":
        """The configuration of a named architecture from the model zoo (`list_presets()`)."""
        return cls(**{**load_preset(name), **overrides})
