"""How big and how often: the full run (paper sizes) and the quick smoke run.

The full run's sizes and rounds are chosen for the time it takes on one thread of an AVX2 machine
shared with other jobs: a full-size fp32 training step at batch 8 takes ~10 s there, a bf16 step at
batch 2 about a minute (bf16 matmuls are emulated without AVX512-BF16/AMX).
"""

from __future__ import annotations

from dataclasses import dataclass

from .limber import LLAVA_VIT, SMOLLM2_135M, LimberSizes
from .onnx_embedding import OnnxSizes


@dataclass(frozen=True)
class Settings:
    peak_sizes: dict[str, list[int]]  # square matmul sizes per dtype ("fp32", "bf16")
    peak_tries: int
    clip_presets: list[str]  # the first one is also used for AdamW, embedding and zero-shot
    clip_batch: dict[str, int]  # images (and as many texts) per training step, per dtype
    clip_repeats: dict[str, int]  # timed rounds per dtype: a bf16 step takes a minute on AVX2-only CPUs
    embed_batch: int
    zero_shot_images: int
    loss_batches: list[int]
    repeats: int  # timed rounds everywhere else
    limber: LimberSizes
    onnx: OnnxSizes


FULL = Settings(
    peak_sizes={"fp32": [512, 1024, 2048], "bf16": [256, 512, 1024]}, peak_tries=2,
    clip_presets=["ViT-B/32", "RN50"], clip_batch={"fp32": 8, "bf16": 2}, clip_repeats={"fp32": 3, "bf16": 1},
    embed_batch=8, zero_shot_images=4, loss_batches=[1024, 4096], repeats=4,
    limber=LimberSizes(resnet_preset="RN50x16", lm=SMOLLM2_135M, vit=LLAVA_VIT, batch=2, caption_tokens=16,
                       caption_images=2, new_tokens=16, repeats=2, caption_repeats=2),
    # 6 cases x (warm-up + 2 rounds) at batch 32 take about a minute per table on one thread.
    onnx=OnnxSizes(presets=["ViT-B/32", "RN50"], batches=[1, 32], threads=[1, 2], repeats=2, text_presets=["ViT-B/32"]),
)
QUICK = Settings(
    peak_sizes={"fp32": [256, 512], "bf16": [128, 256]}, peak_tries=1,
    clip_presets=["small-vit", "tiny-resnet"], clip_batch={"fp32": 4, "bf16": 2}, clip_repeats={"fp32": 1, "bf16": 1},
    embed_batch=4, zero_shot_images=2, loss_batches=[256, 1024], repeats=1,
    limber=LimberSizes(
        resnet_preset="tiny-resnet",
        lm={"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "intermediate_size": 128, "vocab_size": 1000},
        # 32-px patches at 64 px: 4 tokens, as the tiny ResNet's 2x2 grid
        vit={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "image_size": 64, "patch_size": 32},
        batch=1, caption_tokens=8, caption_images=2, new_tokens=4, repeats=1, caption_repeats=1,
    ),
    onnx=OnnxSizes(presets=["small-vit", "tiny-resnet"], batches=[1, 4], threads=[1], repeats=1,
                   text_presets=["small-vit", "tiny-resnet"]),
)
