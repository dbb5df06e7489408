"""Unit-length image and text embeddings from any CLIP: an hf_limber `ClipModel` with its
`ClipProcessor`, a transformers `CLIPModel` with a `CLIPProcessor`, or an ONNX export of ours
(`hf_limber.clip.onnx.OnnxClipModel`) with the processor saved beside it. Every CLIP evaluation
(zero-shot, retrieval, linear probe, CLIPScore) starts here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..clip.processing_clip import ClipProcessor
from ..images import ImageInput


def _features(output: Any) -> torch.Tensor:
    # Ours and transformers 5 return a model output whose pooler_output is the projected embedding;
    # earlier transformers returned the tensor itself.
    return output if torch.is_tensor(output) else output.pooler_output


def _placement(model: Any) -> tuple[torch.device, torch.dtype]:
    """Where a model takes its inputs: a module's by its first parameter; a model without torch parameters
    (hf_limber.clip.onnx.OnnxClipModel) says so itself."""
    if isinstance(model, torch.nn.Module):
        parameter = next(model.parameters())
        return parameter.device, parameter.dtype
    return model.device, model.dtype


def _batches(count: int, batch_size: int, description: str | None) -> Any:
    starts = range(0, count, batch_size)
    return tqdm(starts, desc=description, unit="batch", leave=False) if description else starts


@torch.no_grad()
def embed_texts(
    model: torch.nn.Module, processor: Any, texts: Sequence[str], batch_size: int = 64, progress: str | None = None
) -> torch.Tensor:
    """Unit-length text embeddings, (len(texts), D) float32 on the CPU. `progress` names a bar."""
    if not isinstance(processor, ClipProcessor):
        kwargs = {"padding": True, "truncation": True, "return_tensors": "pt"}
    else:
        kwargs = {}  # ours pads and truncates (keeping the end-of-text token) by itself
    device, _ = _placement(model)
    chunks = []
    for start in _batches(len(texts), batch_size, progress):
        batch = processor(text=list(texts[start : start + batch_size]), **kwargs)
        features = model.get_text_features(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        )
        chunks.append(F.normalize(_features(features).float(), dim=-1).cpu())
    return torch.cat(chunks)


@torch.no_grad()
def embed_images(
    model: torch.nn.Module, processor: Any, images: Sequence[ImageInput], batch_size: int = 64,
    progress: str | None = None,
) -> torch.Tensor:
    """Unit-length image embeddings, (len(images), D) float32 on the CPU. `progress` names a bar."""
    device, dtype = _placement(model)
    chunks = []
    for start in _batches(len(images), batch_size, progress):
        pixels = processor(images=list(images[start : start + batch_size]), return_tensors="pt")["pixel_values"]
        features = model.get_image_features(pixel_values=pixels.to(device, dtype))
        chunks.append(F.normalize(_features(features).float(), dim=-1).cpu())
    return torch.cat(chunks)
