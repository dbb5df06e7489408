"""Shared fixtures: tiny CLIP configs, the released CLIP vocabulary (shipped by open_clip), no Hub."""

from __future__ import annotations

import os

import pytest
import torch

# Nothing in the test suite may reach the Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import hf_limber  # noqa: E402  (registers the Auto classes)
from hf_limber.clip.tokenization import clip_tokenizer_from_bpe, default_bpe_path  # noqa: E402


@pytest.fixture(scope="session")
def bpe_path():
    path = default_bpe_path()
    assert path is not None, "open_clip_torch (dev extra) carries the CLIP vocabulary the tests use"
    return path


@pytest.fixture(scope="session")
def clip_tokenizer(bpe_path):
    return clip_tokenizer_from_bpe(bpe_path, context_length=32)


@pytest.fixture(params=["tiny-vit", "tiny-resnet"])
def tiny_config(request):
    return hf_limber.ClipConfig.from_preset(request.param)


def random_inputs(config, batch: int = 3, length: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    """Token ids with an end-of-text token and right padding after it, and random pixels."""
    generator = torch.Generator().manual_seed(seed)
    text = config.text_config
    ids = torch.randint(0, text.bos_token_id, (batch, length), generator=generator)
    ids[:, 0] = text.bos_token_id
    mask = torch.ones_like(ids)
    for row in range(batch):
        end = length - 1 - row * 2
        ids[row, end] = text.eos_token_id
        ids[row, end + 1 :] = text.pad_token_id
        mask[row, end + 1 :] = 0
    size = config.vision_config.image_size
    pixels = torch.randn(batch, 3, size, size, generator=generator)
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels}
