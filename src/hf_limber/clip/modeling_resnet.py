"""The CLIP paper's modified ResNet image tower.

Three changes to ResNet-D style networks, all from the paper: a stem of three 3x3 convolutions
ending in an average pool, anti-aliased strided blocks (average pooling before the stride instead
of a strided convolution), and attention pooling over the final grid instead of a global average.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .configuration_clip import RESNET_STRIDE, ClipVisionConfig
from .modeling_transformer import attend, check_pixel_values, resize_grid_positions, with_init_std

EXPANSION = 4


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
    return conv, nn.BatchNorm2d(out_channels)


class Downsample(nn.Module):
    """The shortcut of a block that changes shape: pool first, then a 1x1 projection."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv, self.bn = conv_bn(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.pool(x)))


class Bottleneck(GradientCheckpointingLayer):
    def __init__(self, in_channels: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(in_channels, planes, 1)
        self.conv2, self.bn2 = conv_bn(planes, planes, 3)
        # Stride by average pooling after the 3x3 convolution: the anti-aliased downsampling.
        self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3, self.bn3 = conv_bn(planes, planes * EXPANSION, 1)
        # Zero the last gain of the residual branch: every block starts as the identity.
        self.bn3.zero_init = True
        needs_projection = stride > 1 or in_channels != planes * EXPANSION
        self.downsample = Downsample(in_channels, planes * EXPANSION, stride) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.pool(F.relu(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class AttentionPool2d(nn.Module):
    """Multi-head attention from the grid's mean (the query) over the mean and every cell."""

    def __init__(self, config: ClipVisionConfig) -> None:
        super().__init__()
        self.config = config
        width, self.heads = config.feature_size, config.num_attention_heads
        self.positional_embedding = nn.Parameter(torch.empty(config.grid_size**2 + 1, width))
        self.q_proj = with_init_std(nn.Linear(width, width), width**-0.5)
        self.k_proj = with_init_std(nn.Linear(width, width), width**-0.5)
        self.v_proj = with_init_std(nn.Linear(width, width), width**-0.5)
        self.c_proj = with_init_std(nn.Linear(width, config.projection_dim), width**-0.5)

    def forward(self, tokens: torch.Tensor, grid: Sequence[int] | None = None,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The pooled, projected vector and, when asked, the query's weights (batch, heads, 1, 1 + cells)."""
        positions = self.positional_embedding if grid is None else resize_grid_positions(self.positional_embedding,
                                                                                           grid, prefix=1)
        x = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1) + positions.to(tokens.dtype)
        batch, length, width = x.shape
        # Only the mean token is read out, so only its query is computed.
        q = self.q_proj(x[:, :1]).view(batch, 1, self.heads, -1).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, self.heads, -1).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.heads, -1).transpose(1, 2)
        out, weights = attend(self, q, k, v, is_causal=False, output_attentions=output_attentions)
        return self.c_proj(out.reshape(batch, width)), weights


class ModifiedResNetTower(nn.Module):
    def __init__(self, config: ClipVisionConfig) -> None:
        super().__init__()
        self.config = config
        width = config.hidden_size
        self.conv1, self.bn1 = conv_bn(config.num_channels, width // 2, 3, stride=2)
        self.conv2, self.bn2 = conv_bn(width // 2, width // 2, 3)
        self.conv3, self.bn3 = conv_bn(width // 2, width, 3)
        self.stem_pool = nn.AvgPool2d(2)
        in_channels = width
        stages = []
        for index, depth in enumerate(config.num_hidden_layers):
            planes, stride = width * 2**index, 1 if index == 0 else 2
            blocks = [Bottleneck(in_channels, planes, stride)]
            in_channels = planes * EXPANSION
            blocks += [Bottleneck(in_channels, planes, 1) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.attnpool = AttentionPool2d(config)

    def get_input_embeddings(self) -> nn.Module:
        """The stem's first convolution: the ResNet's counterpart of a ViT's patch embedding, where the image
        enters the network (what `enable_input_require_grads` hooks)."""
        return self.conv1

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool = False,
                interpolate_pos_encoding: bool = False, output_attentions: bool = False) -> BaseModelOutputWithPooling:
        """`hidden_states` (when asked): the stem's output, then each of the four stages' outputs, as
        (batch, channels, height, width) maps; the last, flattened to tokens, is `last_hidden_state`.
        `attentions`: the attention pool's weights, one (batch, heads, 1, 1 + cells) tensor: how the pooled
        query reads the grid (cell 0 is the grid's mean)."""
        check_pixel_values(pixel_values, self.config, RESNET_STRIDE, interpolate_pos_encoding)
        x = pixel_values.to(self.conv1.weight.dtype)
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = F.relu(bn(conv(x)))
        x = self.stem_pool(x)
        states = [x] if output_hidden_states else None
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            if states is not None:
                states.append(x)
        grid_shape = x.shape[-2:]
        grid = x.flatten(2).transpose(1, 2)
        # The attention pool ends in the projection to the shared space (the paper's layout), so the
        # pooled vector is already an image embedding.
        pooled, weights = self.attnpool(grid, grid_shape, output_attentions)
        return BaseModelOutputWithPooling(
            last_hidden_state=grid, pooler_output=pooled,
            hidden_states=tuple(states) if states is not None else None,
            attentions=(weights,) if output_attentions else None,
        )
