"""The CLIPs under comparison, built at the same size with random weights, with their own optimisers.

- ours: hf_limber's ClipModel + ContrastiveLoss, AdamW groups as ContrastiveTrainer builds them;
- transformers: CLIPModel (ViT towers only) with SDPA attention and its own loss (`return_loss=True`),
  AdamW as the transformers Trainer builds it by default;
- open_clip: `open_clip.create_model(name)` for the paper's architectures (a `CLIP` of the same
  shape for the small quick-run presets) + `ClipLoss`, AdamW groups as open_clip's training script.

Everyone computes the same function: QuickGELU where the preset uses it (open_clip is asked with
`force_quick_gelu`, transformers with `hidden_act`), 77-token causal text, the same pixels and ids.
Every optimiser is torch's fused AdamW, the fastest on this CPU and the transformers Trainer's
default (`adamw_torch_fused`); `adamw_section` shows why it matters.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import open_clip
import torch
from torch import nn
from transformers import CLIPConfig, CLIPModel, Trainer, TrainingArguments

from hf_limber import ClipConfig, ClipModel, ContrastiveLoss
from hf_limber.training.contrastive_trainer import ContrastiveTrainer, ContrastiveTrainingArguments

OPEN_CLIP_NAMES = {"ViT-B/32": "ViT-B-32", "RN50": "RN50"}
ADAMW_GROUP_KEYS = ("params", "lr", "betas", "eps", "weight_decay")


@dataclass
class Contender:
    name: str
    model: nn.Module
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (pixel_values, input_ids) -> scalar loss
    optimizer: torch.optim.Optimizer


def text_ids(batch: int, length: int, vocab: int) -> torch.Tensor:
    """Start token, random words, end-of-text (the largest id) at varied positions, zero padding after."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(1, vocab - 2, (batch, length), generator=generator)
    ids[:, 0] = vocab - 2
    for row in range(batch):
        end = length - 1 - (7 * row) % (length // 2)
        ids[row, end], ids[row, end + 1 :] = vocab - 1, 0
    return ids


def text_ids_of_lengths(lengths: list[int], width: int, vocab: int) -> torch.Tensor:
    """Like text_ids, with each row's end-of-text at the given length (start and end tokens included)."""
    ids = torch.randint(1, vocab - 2, (len(lengths), width), generator=torch.Generator().manual_seed(1))
    ids[:, 0] = vocab - 2
    for row, length in enumerate(lengths):
        ids[row, length - 1], ids[row, length:] = vocab - 1, 0
    return ids


def clip_inputs(config: ClipConfig, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    size = config.vision_config.image_size
    pixels = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    text = config.text_config
    return pixels, text_ids(batch, text.max_position_embeddings, text.vocab_size)


def adamw_like(groups: list[dict], **implementation: bool) -> torch.optim.AdamW:
    """The same parameter groups (with their lr, betas, eps, decay) in another AdamW implementation
    (`foreach=False` for the for-loop, or `foreach=True`)."""
    return torch.optim.AdamW([{key: group[key] for key in ADAMW_GROUP_KEYS} for group in groups], **implementation)


def ours_trainer_optimizer(model: ClipModel) -> torch.optim.Optimizer:
    """The optimiser exactly as ContrastiveTrainer builds it (per-tower betas/eps, no decay on gains)."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = ContrastiveTrainer(model=model, args=ContrastiveTrainingArguments(output_dir=tmp, use_cpu=True))
        return trainer.create_optimizer()


def ours(preset: str) -> Contender:
    config = ClipConfig.from_preset(preset)
    model = ClipModel(config).train()
    # "global" is the fastest mode in one process (one similarity matrix serves both directions).
    loss_fn = ContrastiveLoss("global")

    def loss(pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        out = model(input_ids=ids, pixel_values=pixels)
        return loss_fn(out.image_embeds, out.text_embeds, out.logit_scale_multiplier)

    return Contender("ours", model, loss, ours_trainer_optimizer(model))


def transformers_config(config: ClipConfig) -> CLIPConfig:
    text, vision = config.text_config, config.vision_config
    shared = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "hidden_act", "layer_norm_eps")
    return CLIPConfig(
        projection_dim=config.projection_dim,
        text_config={**{key: getattr(text, key) for key in shared}, "vocab_size": text.vocab_size,
                     "max_position_embeddings": text.max_position_embeddings, "bos_token_id": text.bos_token_id,
                     "eos_token_id": text.eos_token_id, "pad_token_id": 0},
        vision_config={**{key: getattr(vision, key) for key in shared}, "image_size": vision.image_size,
                       "patch_size": vision.patch_size},
    )


def transformers_peer(preset: str) -> Contender:
    config = ClipConfig.from_preset(preset)
    model = CLIPModel._from_config(transformers_config(config), attn_implementation="sdpa").train()

    def loss(pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return model(input_ids=ids, pixel_values=pixels, return_loss=True).loss

    with tempfile.TemporaryDirectory() as tmp:
        optimizer = Trainer(model=model, args=TrainingArguments(output_dir=tmp, report_to="none", use_cpu=True)).create_optimizer()
    return Contender("transformers", model, loss, optimizer)


def open_clip_model(preset: str, config: ClipConfig) -> nn.Module:
    quick_gelu = config.text_config.hidden_act == "quick_gelu"
    if preset in OPEN_CLIP_NAMES:
        return open_clip.create_model(OPEN_CLIP_NAMES[preset], force_quick_gelu=quick_gelu)
    text, vision = config.text_config, config.vision_config
    if vision.tower == "resnet":
        vision_cfg = {"layers": vision.num_hidden_layers, "width": vision.hidden_size,
                      "head_width": vision.feature_size // vision.num_attention_heads}
    else:
        vision_cfg = {"layers": vision.num_hidden_layers, "width": vision.hidden_size, "patch_size": vision.patch_size,
                      "head_width": vision.hidden_size // vision.num_attention_heads,
                      "mlp_ratio": vision.intermediate_size / vision.hidden_size}
    text_cfg = {"context_length": text.max_position_embeddings, "vocab_size": text.vocab_size, "width": text.hidden_size,
                "heads": text.num_attention_heads, "layers": text.num_hidden_layers,
                "mlp_ratio": text.intermediate_size / text.hidden_size}
    return open_clip.model.CLIP(config.projection_dim, {"image_size": vision.image_size, **vision_cfg}, text_cfg,
                                quick_gelu=quick_gelu)


def open_clip_peer(preset: str) -> Contender:
    model = open_clip_model(preset, ClipConfig.from_preset(preset)).train()
    loss_fn = open_clip.ClipLoss()

    def loss(pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        image, text, scale = model(pixels, ids)
        return loss_fn(image, text, scale)

    # open_clip's training script: no decay on gains, biases and the temperature; its ViT defaults.
    def excluded(name: str, parameter: nn.Parameter) -> bool:
        return parameter.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name

    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if excluded(n, p)], "weight_decay": 0.0},
              {"params": [p for n, p in named if not excluded(n, p)], "weight_decay": 0.2}]
    optimizer = torch.optim.AdamW(groups, lr=5e-4, betas=(0.9, 0.98), eps=1e-6, fused=True)
    return Contender("open_clip", model, loss, optimizer)


def contenders(preset: str) -> list[Contender]:
    """Ours and every peer that has this architecture (transformers has no ResNet CLIP)."""
    is_vit = ClipConfig.from_preset(preset).vision_config.tower == "vit"
    return [ours(preset), *([transformers_peer(preset)] if is_vit else []), open_clip_peer(preset)]
