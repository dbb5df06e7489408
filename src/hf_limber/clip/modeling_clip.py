"""CLIP as transformers models: the dual encoder, each tower alone, each tower with its projection.

Initialisation follows the paper's released code (OpenAI's `initialize_parameters`), applied to
every tower because `from_pretrained` builds on the meta device and each parameter must be set here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_clip import ClipConfig, ClipTextConfig, ClipVisionConfig
from .modeling_resnet import AttentionPool2d, ModifiedResNetTower
from .modeling_transformer import TextTower, VisionTransformerTower, resize_grid_positions, with_init_std


@dataclass
class ClipOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    # exp(logit_scale) as used for the logits: what a sharded contrastive loss needs beside the embeddings.
    logit_scale_multiplier: torch.Tensor | None = None
    # SigLIP's learnable bias added to the logits (config.contrastive_objective == "sigmoid"); None for CLIP.
    logit_bias: torch.Tensor | None = None
    # What get_text_features / get_image_features return: pooler_output already projected (as in transformers 5).
    text_model_output: BaseModelOutputWithPooling | None = None
    vision_model_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in super().to_tuple())

    @property
    def logit_scale(self) -> torch.Tensor | None:
        """Deprecated: this field held exp(logit_scale), not the log value; read `logit_scale_multiplier`."""
        warnings.warn("ClipOutput.logit_scale held exp(logit_scale), the multiplier: read "
                      "ClipOutput.logit_scale_multiplier instead.", FutureWarning, stacklevel=2)
        return self.logit_scale_multiplier


@dataclass
class ClipTextModelOutput(ModelOutput):
    text_embeds: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class ClipVisionModelOutput(ModelOutput):
    image_embeds: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def contrastive_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy of an in-batch similarity matrix whose diagonal holds the pairs.

    The one-process case of `hf_limber.ContrastiveLoss`, kept here so that remote-code copies of
    this file stay self-contained; training uses `ContrastiveLoss`, which is exact across processes.
    """
    labels = torch.arange(logits_per_text.shape[0], device=logits_per_text.device)
    return (F.cross_entropy(logits_per_text, labels) + F.cross_entropy(logits_per_text.t(), labels)) / 2


def sigmoid_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """SigLIP's loss of an in-batch logit matrix (bias included) whose diagonal holds the pairs: the sum over
    all pairs of −log σ(±logit), + for pairs and − otherwise, divided by the batch size. The one-process case
    of `hf_limber.ContrastiveLoss(objective="sigmoid")`, here for the same reason as `contrastive_loss`."""
    signs = 2 * torch.eye(logits_per_text.shape[0], device=logits_per_text.device, dtype=logits_per_text.dtype) - 1
    return -F.logsigmoid(signs * logits_per_text).sum() / logits_per_text.shape[0]


class PatchDropout(nn.Module):
    """FLIP's patch dropout (Li et al. 2023): in training, each image keeps a random `1 - rate` share of its
    patch tokens (at least one; the class token always); in eval it keeps them all.

    It acts on the ViT's tokens after the positions are added and the pre-LayerNorm applied, through a forward
    hook on that LayerNorm (`vision_tower` installs it): the norm is per token, so this equals open_clip's
    dropping before it.
    """

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.rate:
            return tokens
        batch, patches = tokens.shape[0], tokens.shape[1] - 1
        keep = max(1, int(patches * (1 - self.rate)))
        kept = torch.rand(batch, patches, device=tokens.device).topk(keep, dim=1).indices + 1
        return torch.cat([tokens[:, :1], tokens.gather(1, kept[..., None].expand(-1, -1, tokens.shape[2]))], dim=1)

    def after_pre_layernorm(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        return self(output)


def vision_tower(config: ClipVisionConfig) -> nn.Module:
    if config.tower == "resnet":
        return ModifiedResNetTower(config)
    tower = VisionTransformerTower(config)
    if config.patch_dropout:
        tower.patch_dropout = PatchDropout(config.patch_dropout)
        tower.pre_layernorm.register_forward_hook(tower.patch_dropout.after_pre_layernorm)
    return tower


def visual_projection(config: ClipVisionConfig) -> nn.Module:
    # The ResNet's attention pool already ends in the projection to the shared space.
    if config.tower == "resnet":
        return nn.Identity()
    return projection(config.hidden_size, config.projection_dim)


class ClipPreTrainedModel(PreTrainedModel):
    config_class = ClipConfig
    base_model_prefix = "clip"
    main_input_name = "input_ids"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["Block", "Bottleneck"]

    def output_flags(self, output_attentions: bool | None, output_hidden_states: bool | None) -> dict[str, bool]:
        """The per-call output flags; where a call leaves one unset, the config's (transformers' precedence)."""
        return {
            "output_attentions": self.config.output_attentions if output_attentions is None else output_attentions,
            "output_hidden_states": (self.config.output_hidden_states if output_hidden_states is None
                                     else output_hidden_states),
        }

    def _embedding_tower(self) -> nn.Module:
        # A model with a text tower embeds tokens (resize_token_embeddings works on it, as in transformers);
        # an image model's input embedding is where the image enters its tower.
        return self.text_model if hasattr(self, "text_model") else self.vision_model

    def get_input_embeddings(self) -> nn.Module:
        return self._embedding_tower().get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self._embedding_tower().set_input_embeddings(value)

    @torch.no_grad()
    def resize_image_size(self, image_size: int) -> None:
        """Take `image_size` pictures from now on, without `interpolate_pos_encoding`: the stored position
        embeddings (a ViT's, or a ResNet attention pool's) resized once, bicubically as
        `interpolate_pos_encoding` does on every call, and `image_size` in the config updated. The CLIP
        paper fine-tuned ViT-L/14 at 336 px this way."""
        tower = getattr(self, "vision_model", None)
        if tower is None:
            raise ValueError(f"{type(self).__name__} has no image tower whose resolution could change.")
        config = tower.config
        previous, config.image_size = config.image_size, image_size
        try:
            config.validate_fields()
        except ValueError:
            config.image_size = previous
            raise
        holder, name = (tower.attnpool, "positional_embedding") if config.tower == "resnet" else (tower, "position_embedding")
        positions = getattr(holder, name)
        resized = resize_grid_positions(positions, (config.grid_size, config.grid_size), prefix=1)
        setattr(holder, name, nn.Parameter(resized.clone(), requires_grad=positions.requires_grad))

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # Layers tagged with `init_std` (see `with_init_std`) get the paper's scale; convolutions keep
        # PyTorch's default, as the paper's ResNets did.
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if hasattr(module, "init_std"):
                init.normal_(module.weight, std=module.init_std)
            else:
                init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=getattr(module, "init_std", 0.02))
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            (init.zeros_ if getattr(module, "zero_init", False) else init.ones_)(module.weight)
            init.zeros_(module.bias)
            if isinstance(module, nn.BatchNorm2d):
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, TextTower):
            init.normal_(module.position_embedding, std=0.01)
        elif isinstance(module, VisionTransformerTower):
            width = module.config.hidden_size
            init.normal_(module.class_embedding, std=width**-0.5)
            init.normal_(module.position_embedding, std=width**-0.5)
        elif isinstance(module, AttentionPool2d):
            init.normal_(module.positional_embedding, std=module.c_proj.in_features**-0.5)
        elif isinstance(module, ClipModel):
            init.constant_(module.logit_scale, module.config.logit_scale_init_value)
            if module.logit_bias is not None:
                init.constant_(module.logit_bias, module.config.logit_bias_init_value)


def projection(in_features: int, out_features: int) -> nn.Linear:
    return with_init_std(nn.Linear(in_features, out_features, bias=False), in_features**-0.5)


class ClipTextModel(ClipPreTrainedModel):
    config_class = ClipTextConfig
    _no_split_modules = ["Block"]
    # Loading one tower from a full CLIP folder leaves the other tower's weights unused, by design.
    _keys_to_ignore_on_load_unexpected = [r"^vision_model\.", r"^visual_projection\.", r"^text_projection\.",
                                          r"^logit_(scale|bias)$"]

    def __init__(self, config: ClipTextConfig) -> None:
        super().__init__(config)
        self.text_model = TextTower(config)
        self.post_init()

    @can_return_tuple
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None, output_attentions: bool | None = None, **kwargs: Any,
    ) -> BaseModelOutputWithPooling:
        """Outputs as `TextTower` documents them; a tuple with `return_dict=False`."""
        return self.text_model(input_ids, attention_mask, **self.output_flags(output_attentions, output_hidden_states))


class ClipVisionModel(ClipPreTrainedModel):
    """The image tower alone. For a ResNet tower `pooler_output` is already projected (see `visual_projection`)."""

    config_class = ClipVisionConfig
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _keys_to_ignore_on_load_unexpected = [r"^text_model\.", r"^text_projection\.", r"^visual_projection\.",
                                          r"^logit_(scale|bias)$", r"^classifier\."]

    def __init__(self, config: ClipVisionConfig) -> None:
        super().__init__(config)
        self.vision_model = vision_tower(config)
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None,
                interpolate_pos_encoding: bool = False, output_attentions: bool | None = None,
                **kwargs: Any) -> BaseModelOutputWithPooling:
        """`interpolate_pos_encoding=True` takes images of another size (a multiple of the tower's stride):
        the position embeddings are resized to the new grid. Hidden states and attentions are each tower's
        (`VisionTransformerTower`, `ModifiedResNetTower`); a tuple with `return_dict=False`."""
        return self.vision_model(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding,
                                 **self.output_flags(output_attentions, output_hidden_states))


class ClipVisionForImageClassification(ClipPreTrainedModel):
    """The image tower with a linear classifier on its pooled output, trained on labels alone: the
    vision-only supervised counterpart of a CLIP tower (LiMBeR compares the two). Its folder also
    loads as a `ClipVisionModel` (the classifier is ignored)."""

    config_class = ClipVisionConfig
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: ClipVisionConfig) -> None:
        super().__init__(config)
        self.vision_model = vision_tower(config)
        pooled = config.projection_dim if config.tower == "resnet" else config.hidden_size  # ResNet: attention pool output
        self.classifier = nn.Linear(pooled, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                interpolate_pos_encoding: bool = False, **kwargs: Any) -> ImageClassifierOutput:
        out = self.vision_model(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding,
                                **self.output_flags(output_attentions, output_hidden_states))
        logits = self.classifier(out.pooler_output)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                     attentions=out.attentions)


class ClipTextModelWithProjection(ClipPreTrainedModel):
    config_class = ClipTextConfig
    _no_split_modules = ["Block"]
    _keys_to_ignore_on_load_unexpected = [r"^vision_model\.", r"^visual_projection\.", r"^logit_(scale|bias)$"]

    def __init__(self, config: ClipTextConfig) -> None:
        super().__init__(config)
        self.text_model = TextTower(config)
        self.text_projection = projection(config.hidden_size, config.projection_dim)
        self.post_init()

    @can_return_tuple
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None, output_attentions: bool | None = None, **kwargs: Any,
    ) -> ClipTextModelOutput:
        out = self.text_model(input_ids, attention_mask, **self.output_flags(output_attentions, output_hidden_states))
        return ClipTextModelOutput(
            text_embeds=self.text_projection(out.pooler_output), last_hidden_state=out.last_hidden_state,
            hidden_states=out.hidden_states, attentions=out.attentions,
        )


class ClipVisionModelWithProjection(ClipPreTrainedModel):
    config_class = ClipVisionConfig
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _keys_to_ignore_on_load_unexpected = [r"^text_model\.", r"^text_projection\.", r"^logit_(scale|bias)$"]

    def __init__(self, config: ClipVisionConfig) -> None:
        super().__init__(config)
        self.vision_model = vision_tower(config)
        self.visual_projection = visual_projection(config)
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None,
                interpolate_pos_encoding: bool = False, output_attentions: bool | None = None,
                **kwargs: Any) -> ClipVisionModelOutput:
        out = self.vision_model(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding,
                                **self.output_flags(output_attentions, output_hidden_states))
        return ClipVisionModelOutput(
            image_embeds=self.visual_projection(out.pooler_output), last_hidden_state=out.last_hidden_state,
            hidden_states=out.hidden_states, attentions=out.attentions,
        )


class ClipModel(ClipPreTrainedModel):
    """The dual encoder: both towers, their projections into one space, and the learnable temperature (with
    `config.contrastive_objective="sigmoid"` also SigLIP's learnable `logit_bias`, added to the logits).

    `logit_scale` is the log of the factor on the cosine similarities (the paper's log inverse
    temperature); `logit_scale_multiplier()` is that factor. Training caps the factor at
    `config.max_logit_scale_multiplier` (100 in the paper) by clamping the parameter in place after
    each optimiser step: `ContrastiveTrainer` does it; a training loop of your own calls
    `model.clamp_logit_scale_()` after every `optimizer.step()`.
    """

    def __init__(self, config: ClipConfig) -> None:
        super().__init__(config)
        self.text_model = TextTower(config.text_config)
        self.vision_model = vision_tower(config.vision_config)
        self.text_projection = projection(config.text_config.hidden_size, config.projection_dim)
        self.visual_projection = visual_projection(config.vision_config)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))
        sigmoid = config.contrastive_objective == "sigmoid"
        self.logit_bias = nn.Parameter(torch.tensor(config.logit_bias_init_value)) if sigmoid else None
        self.post_init()

    @can_return_tuple
    def get_text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None, output_attentions: bool | None = None, **kwargs: Any,
    ) -> BaseModelOutputWithPooling:
        """The text tower's outputs with `pooler_output` the text embedding in the shared space, not normalised
        (transformers 5's convention)."""
        out = self.text_model(input_ids, attention_mask, **self.output_flags(output_attentions, output_hidden_states))
        out.pooler_output = self.text_projection(out.pooler_output)
        return out

    @can_return_tuple
    def get_image_features(
        self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False,
        output_hidden_states: bool | None = None, output_attentions: bool | None = None, **kwargs: Any,
    ) -> BaseModelOutputWithPooling:
        """The image tower's outputs with `pooler_output` the image embedding in the shared space, not normalised
        (transformers 5's convention)."""
        out = self.vision_model(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding,
                                **self.output_flags(output_attentions, output_hidden_states))
        out.pooler_output = self.visual_projection(out.pooler_output)
        return out

    def logit_scale_multiplier(self) -> torch.Tensor:
        """exp(logit_scale), the factor on the cosine similarities (the inverse of the paper's temperature)."""
        return self.logit_scale.exp()

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """Clamp `logit_scale` in place to [0, log(config.max_logit_scale_multiplier)]; call it after every
        optimiser step (`ContrastiveTrainer` does).

        The one place the cap is enforced, as in OpenAI's and open_clip's training code: on the parameter
        after the step, not in `forward`. A clamp inside `forward` would stop the gradient once the
        parameter passed the cap, leaving it stuck above the cap even when the loss later wants it lower;
        clamped in place, the parameter sits at the cap and still gets its gradient. `forward` uses
        exp(logit_scale) as it is, as transformers' CLIPModel does.
        """
        self.logit_scale.clamp_(0, math.log(self.config.max_logit_scale_multiplier))

    def temperature(self) -> torch.Tensor:
        """Deprecated: it returned exp(logit_scale), the inverse temperature; use logit_scale_multiplier()."""
        warnings.warn("ClipModel.temperature() returns exp(logit_scale), the inverse temperature: call "
                      "logit_scale_multiplier() instead.", FutureWarning, stacklevel=2)
        return self.logit_scale_multiplier()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        return_loss: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs: Any,
    ) -> ClipOutput:
        """A tuple with `return_dict=False`; hidden states and attentions in `text_model_output` and
        `vision_model_output`, as each tower documents them."""
        if input_ids is None or pixel_values is None:
            raise ValueError(
                "ClipModel.forward needs both input_ids and pixel_values; use get_text_features or "
                "get_image_features to embed one modality."
            )
        if return_loss and input_ids.shape[0] != pixel_values.shape[0]:
            raise ValueError(
                f"return_loss=True needs (image, text) pairs, got {input_ids.shape[0]} texts and "
                f"{pixel_values.shape[0]} images: pass one text per image (row i of each is a pair), or leave "
                "return_loss unset to score every text against every image."
            )
        flags = self.output_flags(output_attentions, output_hidden_states)
        text_out = self.get_text_features(input_ids, attention_mask, return_dict=True, **flags)
        vision_out = self.get_image_features(pixel_values, interpolate_pos_encoding, return_dict=True, **flags)
        text_embeds = F.normalize(text_out.pooler_output, dim=-1)
        image_embeds = F.normalize(vision_out.pooler_output, dim=-1)
        multiplier = self.logit_scale_multiplier()
        logits_per_text = multiplier * text_embeds @ image_embeds.t()
        if self.logit_bias is not None:
            logits_per_text = logits_per_text + self.logit_bias
        loss = None
        if return_loss:
            loss = (sigmoid_loss if self.logit_bias is not None else contrastive_loss)(logits_per_text)
        return ClipOutput(
            loss=loss, logits_per_image=logits_per_text.t(), logits_per_text=logits_per_text,
            text_embeds=text_embeds, image_embeds=image_embeds, logit_scale_multiplier=multiplier,
            logit_bias=self.logit_bias,
            text_model_output=text_out, vision_model_output=vision_out,
        )
