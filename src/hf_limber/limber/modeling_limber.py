"""LimberForCausalLM: frozen image encoder -> one trained linear map -> k soft prompts -> frozen causal LM.

Image positions are ordinary placeholder tokens in `input_ids` (transformers' Llava convention):
the processor writes k of them per image, and the projected features are scattered into the
embeddings there, so attention masks, padding and positions work as for plain text. The
placeholder id lies outside the LM's vocabulary and never reaches the LM's embedding table.
"""

from __future__ import annotations

import copy
import inspect
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .adapter import (
    LM_ADAPTER_FOLDER,
    adapter_state_dict,
    has_peft_adapter,
    load_adapter,
    load_image_encoder,
    load_language_model_adapter,
    save_peft_adapter,
    without_peft_layers,
)
from .configuration_limber import LimberConfig
from .encoders import encode, is_timm, measure, timm_create, vision_part
from .remote_code import hub_options

IGNORE_INDEX = -100


def _freeze(module: nn.Module, loaded: bool) -> nn.Module:
    module.requires_grad_(False)
    module.eval()
    if loaded:
        # A part handed in ready-made must not be re-initialised by the wrapper's post_init. Parts
        # built here from configs are left alone: from_pretrained still has to fill their
        # non-persistent buffers (rotary frequencies, for one).
        for submodule in module.modules():
            submodule._is_hf_initialized = True
    return module


def mean_embedding_norm(language_model: PreTrainedModel) -> float:
    """The mean L2 norm of the LM's input token embeddings (SmolLM2-135M: 3.2)."""
    weight = language_model.get_input_embeddings().weight
    return round(float(weight.detach().float().norm(dim=-1).mean()), 4)


def check(condition: torch.Tensor, message: Callable[[], str]) -> None:
    """Raise ValueError(message()) unless `condition` holds, without a Python branch on tensor data:
    torch.export and torch.compile(fullgraph=True) keep the check as a runtime assertion."""
    if torch.compiler.is_compiling():
        torch._check_tensor_all(condition)  # Dynamo cannot trace a message built from tensor values
    else:
        torch._check_tensor_all_with(ValueError, condition, message)


def pool_token_grid(tokens: torch.Tensor, factor: int) -> torch.Tensor:
    """(batch, side*side, width) tokens of a square grid -> (batch, (side/factor)^2, width) averages."""
    batch, count, width = tokens.shape
    side = math.isqrt(count)
    grid = tokens.transpose(1, 2).reshape(batch, width, side, side)
    return nn.functional.avg_pool2d(grid, factor).flatten(2).transpose(1, 2)


def split_into_tiles(pixel_values: torch.Tensor, per_side: int) -> torch.Tensor:
    """(batch, channels, h, w) pictures -> (batch * per_side², channels, h/per_side, w/per_side) tiles, each
    picture's tiles in reading order (row by row)."""
    batch, channels, height, width = pixel_values.shape
    if height % per_side or width % per_side:
        raise ValueError(f"A {height}x{width} picture does not split into {per_side}x{per_side} equal tiles; "
                         "prepare pictures with the model's LimberProcessor (it resizes to config.image_size).")
    tiles = pixel_values.reshape(batch, channels, per_side, height // per_side, per_side, width // per_side)
    return tiles.permute(0, 2, 4, 1, 3, 5).reshape(-1, channels, height // per_side, width // per_side)


class LimberForCausalLM(PreTrainedModel):
    config_class = LimberConfig
    base_model_prefix = "limber"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # _no_split_modules is the parts' own (the LM's decoder layers, the encoder's blocks): post_init gathers
    # it from the children, so device_map="auto" never cuts a layer in two (tests/test_limber_device_map.py).
    # The Auto classes a saved folder's code is named under (auto_map): AutoModel, and the one the
    # image-text-to-text pipeline loads with.
    AUTO_CLASSES = ("AutoModel", "AutoModelForImageTextToText")

    @classmethod
    def can_generate(cls) -> bool:
        """`generate` is the LM's, run on the image-filled embeddings: pipelines, streamers and a
        `generation_config` apply to it as to any generating model."""
        return True

    def __init__(self, config: LimberConfig, image_encoder: nn.Module | None = None,
                 language_model: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        encoder_given, lm_given = image_encoder is not None, language_model is not None
        if not encoder_given:
            image_encoder = (timm_create(config.timm_model, **(config.timm_kwargs or {})) if config.timm_model
                             else AutoModel.from_config(config.vision_config))
        if not lm_given:
            language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.image_encoder = _freeze(image_encoder, loaded=encoder_given)
        if config.train_image_encoder:  # the paper's fine-tuned-encoder setting (BEiT-FT)
            self.image_encoder.requires_grad_(True)
        self.language_model = _freeze(language_model, loaded=lm_given)
        # Read once: forward asks on every training step whether the LM can skip logits.
        self._lm_keeps_logits = "logits_to_keep" in inspect.signature(self.language_model.forward).parameters
        k = config.num_image_tokens
        outputs = config.lm_hidden_size * (k if config.features == "pooled" else 1)
        self.projection = nn.Linear(config.image_feature_size, outputs)
        self.projection_dropout = nn.Dropout(config.projection_dropout)
        self.post_init()

    @classmethod
    def from_parts(
        cls, image_encoder: nn.Module | str | os.PathLike, language_model: PreTrainedModel | str | os.PathLike,
        **projection_options: Any,
    ) -> "LimberForCausalLM":
        """Join an image encoder and a causal LM (models or paths) with a new, trainable projection.

        `projection_options` are LimberConfig fields: features, feature_layer, drop_class_token, train_image_encoder,
        num_pooled_tokens, token_pool, tiles_per_side, image_token, prompt, projection_dropout, normalize_features, image_size
        (feed the encoder pictures of this size instead of its own: a ResNet's grid grows with it),
        soft_prompt_norm ("auto": the LM's mean token-embedding norm, measured here) — and, for a timm
        encoder created with non-default arguments, timm_kwargs (they cannot be read back from the model).
        """
        vision_source = str(image_encoder) if isinstance(image_encoder, (str, os.PathLike)) else None
        text_source = str(language_model) if isinstance(language_model, (str, os.PathLike)) else None
        if vision_source is not None:
            image_encoder = load_image_encoder(vision_source)
        if text_source is not None:
            language_model = AutoModelForCausalLM.from_pretrained(text_source)
        image_encoder = vision_part(image_encoder)
        vision_source = vision_source or getattr(image_encoder, "name_or_path", None) or None
        text_source = text_source or language_model.name_or_path or None
        options = dict(projection_options)
        if options.get("soft_prompt_norm") == "auto":
            options["soft_prompt_norm"] = mean_embedding_norm(language_model)
        features = options.get("features", "tokens")
        image_size = options.pop("image_size", None)
        if features == "tiles":
            # Each tile is one encoder input: the picture is tiles_per_side encoder inputs wide unless asked otherwise.
            tiles = options.get("tiles_per_side", 2)
            shape = measure(image_encoder, options.get("feature_layer", -1), image_size and image_size // tiles)
            image_size = image_size or shape.image_size * tiles
        else:
            # Another input size than the encoder's own: more grid tokens, its position embeddings resized.
            shape = measure(image_encoder, options.get("feature_layer", -1), image_size)
            image_size = shape.image_size
        timm_model = getattr(image_encoder, "pretrained_cfg", {}).get("architecture") if is_timm(image_encoder) else None
        config = LimberConfig(
            # Copies: the wrapper's own set-up must not touch the live parts' configs.
            vision_config=None if timm_model else copy.deepcopy(image_encoder.config),
            text_config=copy.deepcopy(language_model.config),
            timm_model=timm_model,
            image_size=image_size,
            image_feature_size=shape.token_size if features == "tokens" else shape.pooled_size,
            num_feature_tokens=shape.num_tokens,
            has_class_token=shape.has_class_token,
            vision_source=vision_source, text_source=text_source,
            **options,
        )
        return cls(config, image_encoder=image_encoder, language_model=language_model).eval()

    # -- frozen parts ---------------------------------------------------------------------------

    def train(self, mode: bool = True) -> "LimberForCausalLM":
        super().train(mode)
        self.image_encoder.train(mode and self.config.train_image_encoder)
        self.language_model.eval()
        # Checkpointed layers look at their own `training` flag: flip only that flag so gradient
        # checkpointing works while every dropout of the frozen LM stays in eval mode (a LoRA's own
        # dropout trains with it).
        for name, module in self.language_model.named_modules():
            if getattr(module, "gradient_checkpointing", False) or ".lora_dropout." in name:
                module.training = mode
        return self

    def _set_gradient_checkpointing(self, enable: bool = True, **kwargs: Any) -> None:
        """transformers' switch (behind gradient_checkpointing_enable/disable), then `train` again: the LM's
        checkpointed layers take the wrapper's mode, so checkpointing is active whichever of `model.train()`
        and `gradient_checkpointing_enable()` came first."""
        super()._set_gradient_checkpointing(enable=enable, **kwargs)
        self.train(self.training)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def add_language_model_adapter(self, peft_config: Any) -> None:
        """Inject a PEFT adapter (`peft.LoraConfig(r=8)`: on the LM's attention projections by default)
        into the frozen LM, in place: its layers train with the projection while the LM's own weights
        stay frozen, and `save_pretrained` saves it in peft's files beside the projection."""
        from peft import inject_adapter_in_model

        if has_peft_adapter(self.language_model):
            raise ValueError("The LM already carries a PEFT adapter; a LiMBeR model saves one. Build the model anew.")
        peft_config.base_model_name_or_path = self.config.text_source or self.language_model.name_or_path
        inject_adapter_in_model(peft_config, self.language_model)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The encoder features the projection reads (what `hf-limber cache-features` stores); with
        gradients only when the encoder is trained too."""
        pooled = self.config.features != "tokens"
        if self.config.features == "tiles":
            pixel_values = split_into_tiles(pixel_values, self.config.tiles_per_side)
        with torch.set_grad_enabled(self.config.train_image_encoder and torch.is_grad_enabled()):
            features = encode(self.image_encoder, pixel_values, self.config.feature_layer, pooled=pooled)
        if self.config.features == "tiles":
            return features.view(-1, self.config.num_image_tokens, features.shape[-1])
        if not pooled and self.config.has_class_token and self.config.drop_class_token:
            features = features[:, 1:]
        if self.config.token_pool > 1:
            features = pool_token_grid(features, self.config.token_pool)
        return features

    def project(self, image_features: torch.Tensor) -> torch.Tensor:
        """k soft-prompt vectors per image: (images, k, lm_hidden_size)."""
        features = image_features.to(self.projection.weight.dtype)
        if self.config.normalize_features:
            features = nn.functional.layer_norm(features, features.shape[-1:])
        tokens = self.projection(features)
        tokens = tokens.view(tokens.shape[0], self.config.num_image_tokens, self.config.lm_hidden_size)
        if self.config.soft_prompt_norm is not None:
            # Every prompt at the length of a typical token embedding: the map then learns directions,
            # and the LM never sees inputs far larger or smaller than the ones it was trained on.
            tokens = tokens * (self.config.soft_prompt_norm / tokens.norm(dim=-1, keepdim=True).clamp_min(1e-6))
        return self.projection_dropout(tokens)

    def embed(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None,
              image_features: torch.Tensor | None = None) -> torch.Tensor:
        """LM input embeddings with the projected image features at the placeholder positions."""
        is_image = input_ids == self.config.image_token_id
        embeds = self.get_input_embeddings()(input_ids.masked_fill(is_image, 0))
        if pixel_values is None and image_features is None:
            check(is_image.logical_not().all(),
                  lambda: "input_ids hold image tokens but no pixel_values or image_features were given.")
            return embeds
        if image_features is None:
            image_features = self.image_features(pixel_values)
        tokens = self.project(image_features)
        check(is_image.sum() == tokens.shape[0] * tokens.shape[1], lambda: (
            f"input_ids hold {int(is_image.sum())} image tokens but {tokens.shape[0]} image(s) give "
            f"{tokens.shape[0]} x {tokens.shape[1]} = {tokens.shape[0] * tokens.shape[1]} soft prompts. "
            "Prepare text and images together with the model's LimberProcessor."))
        return embeds.masked_scatter(is_image[..., None], tokens.to(embeds.dtype))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """`logits_to_keep` (with labels; CaptionCollator sets it): logits and loss only for the last
        that many positions, where the captions are. The LM's vocabulary projection is a fifth of a
        SmolLM2-135M training step, and a frozen LM needs no logits for the image and prompt positions."""
        keep = kwargs.pop("logits_to_keep", 0)
        if labels is not None:
            # Never a loss on image positions, whatever the labels say.
            labels = labels.masked_fill(input_ids == self.config.image_token_id, IGNORE_INDEX)
        embeds = self.embed(input_ids, pixel_values, image_features)
        if labels is None or not keep or not self._lm_keeps_logits:
            return self.language_model(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels,
                                       use_cache=False, **kwargs)
        items = kwargs.pop("num_items_in_batch", None)
        output = self.language_model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False,
                                     logits_to_keep=keep, **kwargs)
        output.loss = self.language_model.loss_function(output.logits, labels[:, -keep:],
                                                        vocab_size=output.logits.shape[-1], num_items_in_batch=items)
        return output

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        **generate_kwargs: Any,
    ) -> torch.Tensor:
        """New tokens only. Images enter once, in the prefill embeddings; decoding then runs on the
        LM's KV cache, with any `GenerationConfig` (greedy, beams, sampling). Pad batches on the left."""
        return self.language_model.generate(
            inputs_embeds=self.embed(input_ids, pixel_values, image_features),
            attention_mask=attention_mask, **generate_kwargs,
        )

    # -- saving: the adapter (limber/adapter.py) or everything ------------------------------------

    # What save_pretrained writes when not told otherwise; push_to_hub(full=...) sets it for its upload,
    # since transformers' push_to_hub calls save_pretrained without a way to pass `full` on.
    save_full: bool = False

    def save_pretrained(self, save_directory: str | os.PathLike, full: bool | None = None, **kwargs: Any) -> None:
        """By default only the trained tensors (the projection, a few MB) and a config naming the encoder
        and the LM; `full=True` (or `save_full`) writes every weight. A PEFT adapter on the LM (LoRA,
        added with `add_language_model_adapter`) is saved in both forms in peft's
        own files, in the subfolder LM_ADAPTER_FOLDER; the full form's LM weights are the base ones."""
        full = self.save_full if full is None else full
        self.config.saved_parts = "full" if full else "adapter"
        lora = has_peft_adapter(self.language_model)
        self.config.language_model_adapter = LM_ADAPTER_FOLDER if lora else None
        if not full:
            kwargs["state_dict"] = adapter_state_dict(kwargs.pop("state_dict", None) or self.state_dict(), self.config)
        elif lora:
            kwargs["state_dict"] = without_peft_layers(kwargs.pop("state_dict", None) or self.state_dict(), self)
        if self._auto_class is not None:  # transformers names only `_auto_class`; name every Auto class that loads it
            reference = f"{Path(__file__).stem}.{type(self).__name__}"
            self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}),
                                    **dict.fromkeys(self.AUTO_CLASSES, reference)}
        super().save_pretrained(save_directory, **kwargs)
        if lora and kwargs.get("is_main_process", True):
            save_peft_adapter(self.language_model, Path(save_directory) / LM_ADAPTER_FOLDER)

    def push_to_hub(self, repo_id: str, *args: Any, full: bool = False, **kwargs: Any) -> Any:
        """transformers' push_to_hub, in the adapter form by default or with every weight (`full=True`)."""
        previous, self.save_full = self.save_full, full
        try:
            return super().push_to_hub(repo_id, *args, **kwargs)
        finally:
            self.save_full = previous

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any,
        image_encoder: nn.Module | None = None, language_model: PreTrainedModel | None = None, **kwargs: Any,
    ) -> "LimberForCausalLM":
        """Loads both forms. An adapter loads its encoder and LM from the sources its config names,
        or from the `image_encoder` / `language_model` given here. Code shipped in the folder (for a
        part transformers does not know) runs only with `trust_remote_code=True`."""
        config = kwargs.pop("config", None)
        # Not isinstance(LimberConfig): remote code loaded from a local folder gives the config its own module.
        if not isinstance(config, PretrainedConfig):
            config = LimberConfig.from_pretrained(config or pretrained_model_name_or_path, **hub_options(kwargs),
                                                  trust_remote_code=kwargs.get("trust_remote_code"))
        if getattr(config, "saved_parts", "full") == "full":
            model = super().from_pretrained(pretrained_model_name_or_path, *args, config=config, **kwargs)
            load_language_model_adapter(model, pretrained_model_name_or_path, **kwargs)
            return model
        return load_adapter(cls, pretrained_model_name_or_path, config, image_encoder, language_model, *args, **kwargs)
