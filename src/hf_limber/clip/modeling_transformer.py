"""The pre-norm Transformer of CLIP and the two towers built on it: the causal text encoder and the ViT.

Attention packs q, k and v in one matrix (one matmul instead of three) and runs through the
implementation `config._attn_implementation` names, transformers' way: "sdpa" (the default,
`torch.nn.functional.scaled_dot_product_attention`, so the fused kernels do the work) or "eager"
(written out, so the attention weights can be returned).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .configuration_clip import ClipTextConfig, ClipVisionConfig


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the GELU approximation the OpenAI weights were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


def with_init_std(module: nn.Module, std: float) -> nn.Module:
    """Tag a layer with the standard deviation of its normal initialisation.

    transformers initialises custom models leaf by leaf (containers without parameters of their own
    are never visited), so the paper's per-layer scales travel with the layers themselves.
    """
    module.init_std = std
    return module


def activation(name: str) -> nn.Module:
    return QuickGELU() if name == "quick_gelu" else nn.GELU()


def attention_weights_out(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                          is_causal: bool = False, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The "eager" implementation: attention written out, so that its weights exist and can be returned.

    Same calling convention as transformers' attention functions; the output is (batch, length, heads, head width).
    The towers never pass `attention_mask` (padding is handled by token order, see `real_tokens_first`).
    """
    scores = (query @ key.transpose(-1, -2)) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    if is_causal:
        scores = scores.masked_fill(causal_mask(query.shape[-2], key.shape[-2], query.device).logical_not(),
                                    torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return (weights @ value).transpose(1, 2), weights


def causal_mask(queries: int, keys: int, device: torch.device) -> torch.Tensor:
    return torch.ones(queries, keys, dtype=torch.bool, device=device).tril(keys - queries)


def attend(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, is_causal: bool,
           output_attentions: bool, dropout: float = 0.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Run `config._attn_implementation` ("sdpa" unless set; "eager" computes the weights).

    Asking for the weights runs the eager math for that call whatever the setting: SDPA never
    materialises them, and both give the same outputs.
    """
    name = "eager" if output_attentions else module.config._attn_implementation or "sdpa"
    implementation = ALL_ATTENTION_FUNCTIONS.get_interface(name, attention_weights_out)
    out, weights = implementation(module, query, key, value, None, dropout=dropout, scaling=None, is_causal=is_causal)
    return out, weights if output_attentions else None


class Attention(nn.Module):
    def __init__(self, config: ClipTextConfig | ClipVisionConfig) -> None:
        super().__init__()
        self.config = config
        width, self.heads = config.hidden_size, config.num_attention_heads
        # The paper's scales: residual-branch outputs shrink with the depth of the stack.
        self.qkv = with_init_std(nn.Linear(width, 3 * width), width**-0.5)
        self.out_proj = with_init_std(nn.Linear(width, width), width**-0.5 * (2 * config.num_hidden_layers) ** -0.5)

    def forward(self, x: torch.Tensor, is_causal: bool = False,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        dropout = self.config.attention_dropout if self.training else 0.0
        out, weights = attend(self, q, k, v, is_causal, output_attentions, dropout)
        return self.out_proj(out.reshape(batch, length, width)), weights


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int, act: str, depth: int) -> None:
        super().__init__()
        self.fc1 = with_init_std(nn.Linear(width, hidden), (2 * width) ** -0.5)
        self.act = activation(act)
        self.fc2 = with_init_std(nn.Linear(hidden, width), width**-0.5 * (2 * depth) ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(GradientCheckpointingLayer):
    """x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: ClipTextConfig | ClipVisionConfig) -> None:
        super().__init__()
        width = config.hidden_size
        self.layer_norm1 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.attn = Attention(config)
        self.layer_norm2 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.mlp = Mlp(width, config.intermediate_size, config.hidden_act, config.num_hidden_layers)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, is_causal: bool = False,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attn(self.layer_norm1(x), is_causal, output_attentions)
        x = x + self.dropout(attended)
        return x + self.dropout(self.mlp(self.layer_norm2(x))), weights


class Encoder(nn.Module):
    def __init__(self, config: ClipTextConfig | ClipVisionConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))

    def forward(self, x: torch.Tensor, is_causal: bool = False, output_hidden_states: bool = False,
                output_attentions: bool = False) -> BaseModelOutput:
        """`hidden_states`: the input, then every block's output (transformers' convention)."""
        states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for layer in self.layers:
            x, weights = layer(x, is_causal, output_attentions)
            if states is not None:
                states.append(x)
            if attentions is not None:
                attentions.append(weights)
        return BaseModelOutput(last_hidden_state=x, hidden_states=tuple(states) if states is not None else None,
                               attentions=tuple(attentions) if attentions is not None else None)


def real_tokens_first(attention_mask: torch.Tensor) -> torch.Tensor:
    """Per row, the positions of its real tokens in order, then those of its padding.

    Run in this order under a causal mask, every real token sees exactly the real tokens before it,
    which is what the padding mask allows: the fused `is_causal` kernel then serves any padding
    (right, left, gaps) with no mask and no branch on the data, so `torch.export` and
    `torch.compile(fullgraph=True)` trace one graph. Right-padded rows are already in this order.
    Padding positions then see real tokens and earlier padding: their outputs are unspecified.
    """
    return torch.argsort(attention_mask.eq(0).to(torch.uint8), dim=-1, stable=True)


def take(x: torch.Tensor, order: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """`x` with its positions along `dim` in `order` (batch, length): one order per row of the batch."""
    shape = [1] * x.ndim
    shape[0], shape[dim] = order.shape
    return x.gather(dim, order.view(shape).expand_as(x))


class TextTower(nn.Module):
    """Token + position embeddings, causal Transformer, final LayerNorm, pooled at end-of-text.

    `hidden_states` (when asked): the embeddings, then each block's output, num_hidden_layers + 1 of
    (batch, length, width), before the final LayerNorm. `attentions`: one (batch, heads, length, length) per block.
    """

    def __init__(self, config: ClipTextConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = with_init_std(nn.Embedding(config.vocab_size, config.hidden_size), 0.02)
        self.position_embedding = nn.Parameter(torch.empty(config.max_position_embeddings, config.hidden_size))
        self.encoder = Encoder(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def get_input_embeddings(self) -> nn.Module:
        return self.token_embedding

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.token_embedding = value

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False, output_attentions: bool = False,
    ) -> BaseModelOutputWithPooling:
        length = input_ids.shape[-1]
        if length > self.config.max_position_embeddings:
            raise ValueError(
                f"input_ids has {length} tokens but the text tower's context is "
                f"{self.config.max_position_embeddings}. Tokenize with the ClipProcessor, which truncates "
                "and keeps the end-of-text token."
            )
        order = None if attention_mask is None else real_tokens_first(attention_mask)
        out = self.encoder(self.embed(input_ids, order), is_causal=True, output_hidden_states=output_hidden_states,
                           output_attentions=output_attentions)
        if order is not None:
            out = in_input_order(out, order.argsort(dim=-1))
        x = self.final_layer_norm(out.last_hidden_state)
        pooled = x[torch.arange(x.shape[0], device=x.device), self.end_of_text_positions(input_ids, attention_mask)]
        return BaseModelOutputWithPooling(last_hidden_state=x, pooler_output=pooled, hidden_states=out.hidden_states,
                                          attentions=out.attentions)

    def embed(self, input_ids: torch.Tensor, order: torch.Tensor | None) -> torch.Tensor:
        """Token plus position embeddings, the tokens taken in `order` when given; each keeps its input position."""
        if order is None:
            return self.token_embedding(input_ids) + self.position_embedding[: input_ids.shape[-1]]
        return self.token_embedding(take(input_ids, order)) + self.position_embedding[order]

    def end_of_text_positions(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """First end-of-text token of each row; the last real token where a row has none."""
        is_eot = input_ids == self.config.eos_token_id
        if attention_mask is not None:
            # Padding may reuse the end-of-text id (CLIP pads with it): only real tokens count.
            is_eot &= attention_mask.bool()
            last_real = attention_mask.long().cumsum(-1).argmax(-1)
        else:
            last_real = torch.full_like(input_ids[:, 0], input_ids.shape[-1] - 1)
        return torch.where(is_eot.any(-1), is_eot.int().argmax(-1), last_real)


def in_input_order(out: BaseModelOutput, inverse: torch.Tensor) -> BaseModelOutput:
    """Encoder outputs computed in another token order (`real_tokens_first`), put back in the input's."""
    states = None if out.hidden_states is None else tuple(take(state, inverse) for state in out.hidden_states)
    attentions = None if out.attentions is None else tuple(
        take(take(weights, inverse, dim=2), inverse, dim=3) for weights in out.attentions
    )
    return BaseModelOutput(last_hidden_state=take(out.last_hidden_state, inverse), hidden_states=states,
                           attentions=attentions)


class VisionTransformerTower(nn.Module):
    """Patches + class token + positions, LayerNorm before the Transformer, LayerNorm on the class token.

    `hidden_states` (when asked): the embedded patches after the first LayerNorm, then each block's output,
    num_hidden_layers + 1 of (batch, 1 + patches, width); the last equals `last_hidden_state`.
    `attentions`: one (batch, heads, 1 + patches, 1 + patches) per block.
    """

    def __init__(self, config: ClipVisionConfig) -> None:
        super().__init__()
        self.config = config
        width = config.hidden_size
        self.patch_embedding = nn.Conv2d(
            config.num_channels, width, kernel_size=config.patch_size, stride=config.patch_size, bias=False
        )
        self.class_embedding = nn.Parameter(torch.empty(width))
        self.position_embedding = nn.Parameter(torch.empty(config.num_feature_tokens, width))
        self.pre_layernorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.encoder = Encoder(config)
        self.post_layernorm = nn.LayerNorm(width, eps=config.layer_norm_eps)

    def get_input_embeddings(self) -> nn.Module:
        """The patch embedding, as in transformers' CLIP: where the image enters the network."""
        return self.patch_embedding

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool = False,
                interpolate_pos_encoding: bool = False, output_attentions: bool = False) -> BaseModelOutputWithPooling:
        check_pixel_values(pixel_values, self.config, self.config.patch_size, interpolate_pos_encoding)
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))
        positions = resize_grid_positions(self.position_embedding, patches.shape[-2:], prefix=1)
        x = patches.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = self.pre_layernorm(torch.cat([cls, x], dim=1) + positions)
        out = self.encoder(x, output_hidden_states=output_hidden_states, output_attentions=output_attentions)
        return BaseModelOutputWithPooling(
            last_hidden_state=out.last_hidden_state, pooler_output=self.post_layernorm(out.last_hidden_state[:, 0]),
            hidden_states=out.hidden_states, attentions=out.attentions,
        )


def check_pixel_values(pixel_values: torch.Tensor, config: ClipVisionConfig, stride: int,
                       interpolate_pos_encoding: bool = False) -> None:
    """The tower's own size, or with `interpolate_pos_encoding` any size its stride divides."""
    expected = (config.num_channels, config.image_size, config.image_size)
    if interpolate_pos_encoding and pixel_values.ndim == 4 and pixel_values.shape[1] == config.num_channels:
        if all(side % stride == 0 and side >= stride for side in pixel_values.shape[2:]):
            return
        raise ValueError(f"pixel_values has shape {tuple(pixel_values.shape)}: with interpolate_pos_encoding=True "
                         f"its height and width must be multiples of {stride} (the tower's stride).")
    if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != expected:
        raise ValueError(
            f"pixel_values has shape {tuple(pixel_values.shape)}, the image tower expects (batch, "
            f"{', '.join(map(str, expected))}). Prepare images with the model's ClipProcessor, or pass "
            "interpolate_pos_encoding=True for another size."
        )


def resize_grid_positions(positions: torch.Tensor, grid: Sequence[int], prefix: int) -> torch.Tensor:
    """Position embeddings (prefix tokens, then a square grid, row by row) for another grid (height,
    width): the grid part resized bicubically, as open_clip's resize_pos_embed and transformers'
    interpolate_pos_encoding do. Unchanged when the grid already fits."""
    height, width = int(grid[0]), int(grid[1])
    side = math.isqrt(positions.shape[0] - prefix)
    if (height, width) == (side, side):
        return positions
    table = positions[prefix:].reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
    resized = nn.functional.interpolate(table, size=(height, width), mode="bicubic", align_corners=False)
    resized = resized.permute(0, 2, 3, 1).reshape(height * width, -1).to(positions.dtype)
    return torch.cat([positions[:prefix], resized])
