"""The pre-norm Transformer of CLIP and the two towers built on it: the causal text encoder and the ViT.

Attention packs q, k and v in one matrix (one matmul instead of three) and runs through
`torch.nn.functional.scaled_dot_product_attention`, so the fused kernels do the work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling

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


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float, depth: int) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        # The paper's scales: residual-branch outputs shrink with the depth of the stack.
        self.qkv = with_init_std(nn.Linear(width, 3 * width), width**-0.5)
        self.out_proj = with_init_std(nn.Linear(width, width), width**-0.5 * (2 * depth) ** -0.5)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, is_causal: bool) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal and mask is None,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))


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
        width, depth = config.hidden_size, config.num_hidden_layers
        self.layer_norm1 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.attn = Attention(width, config.num_attention_heads, config.attention_dropout, depth)
        self.layer_norm2 = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.mlp = Mlp(width, config.intermediate_size, config.hidden_act, depth)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.layer_norm1(x), mask, is_causal))
        return x + self.dropout(self.mlp(self.layer_norm2(x)))


class Encoder(nn.Module):
    def __init__(self, config: ClipTextConfig | ClipVisionConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, is_causal: bool = False,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        states = [x] if output_hidden_states else None
        for layer in self.layers:
            x = layer(x, mask, is_causal)
            if states is not None:
                states.append(x)
        return x, tuple(states) if states is not None else None


def causal_padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Boolean (batch, 1, L, L) mask: causal, padded keys hidden.

    A query whose every visible key is padding (left padding) would get an all-masked row and NaN
    from the softmax; letting it see itself keeps it finite, and its output is padding anyway.
    """
    length = attention_mask.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=attention_mask.device).tril()
    mask = causal & attention_mask.bool()[:, None, None, :]
    return mask | torch.eye(length, dtype=torch.bool, device=attention_mask.device)


class TextTower(nn.Module):
    """Token + position embeddings, causal Transformer, final LayerNorm, pooled at end-of-text."""

    def __init__(self, config: ClipTextConfig) -> None:
        super().__init__()
        self.config = config
        self.token_embedding = with_init_std(nn.Embedding(config.vocab_size, config.hidden_size), 0.02)
        self.position_embedding = nn.Parameter(torch.empty(config.max_position_embeddings, config.hidden_size))
        self.encoder = Encoder(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPooling:
        length = input_ids.shape[-1]
        if length > self.config.max_position_embeddings:
            raise ValueError(
                f"input_ids has {length} tokens but the text tower's context is "
                f"{self.config.max_position_embeddings}. Tokenize with the ClipProcessor, which truncates "
                "and keeps the end-of-text token."
            )
        x = self.token_embedding(input_ids) + self.position_embedding[:length]
        # Right padding never reaches the end-of-text token through a causal mask, so the fast
        # is_causal kernel is exact whenever no key has to be hidden from an earlier query.
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = causal_padding_mask(attention_mask)
        x, hidden_states = self.encoder(x, mask, is_causal=True, output_hidden_states=output_hidden_states)
        x = self.final_layer_norm(x)
        pooled = x[torch.arange(x.shape[0], device=x.device), self.end_of_text_positions(input_ids, attention_mask)]
        return BaseModelOutputWithPooling(last_hidden_state=x, pooler_output=pooled, hidden_states=hidden_states)

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


class VisionTransformerTower(nn.Module):
    """Patches + class token + positions, LayerNorm before the Transformer, LayerNorm on the class token."""

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

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool = False,
                interpolate_pos_encoding: bool = False) -> BaseModelOutputWithPooling:
        check_pixel_values(pixel_values, self.config, self.config.patch_size, interpolate_pos_encoding)
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))
        positions = resize_grid_positions(self.position_embedding, patches.shape[-2:], prefix=1)
        x = patches.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = self.pre_layernorm(torch.cat([cls, x], dim=1) + positions)
        x, hidden_states = self.encoder(x, output_hidden_states=output_hidden_states)
        return BaseModelOutputWithPooling(
            last_hidden_state=x, pooler_output=self.post_layernorm(x[:, 0]), hidden_states=hidden_states
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
