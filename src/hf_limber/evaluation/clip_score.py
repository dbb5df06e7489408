"""CLIPScore and RefCLIPScore (Hessel et al. 2021, "CLIPScore: A Reference-free Evaluation Metric
for Image Captioning"), as their released code computes them.

CLIP-S = w * max(cos(image, "A photo depicts " + caption), 0) with w = 2.5, which spreads the
cosines CLIP typically gives captions (about 0 to 0.4) over 0 to 1. RefCLIP-S is the harmonic
mean of CLIP-S and the best cosine between the caption and any of its references (references get
the same prefix; this side has no w and no clipping at 0, as in the released code).
LiMBeR (Merullo et al. 2023) reports both. Any CLIP can score: an hf_limber `ClipModel` with a
`ClipProcessor`, or a transformers `CLIPModel` with a `CLIPProcessor`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..images import ImageInput
from .embedding import embed_images, embed_texts

DEFAULT_PREFIX = "A photo depicts"
DEFAULT_W = 2.5


def clip_scores_from_embeddings(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, w: float = DEFAULT_W
) -> torch.Tensor:
    """Per-pair CLIP-S, w * max(cos, 0), of row i of `image_embeds` with row i of `text_embeds`."""
    cosine = (F.normalize(image_embeds, dim=-1) * F.normalize(text_embeds, dim=-1)).sum(-1)
    return w * cosine.clamp(min=0)


def best_reference_similarity(text_embeds: torch.Tensor, reference_embeds: Sequence[torch.Tensor]) -> torch.Tensor:
    """For each caption i, the largest cosine with any row of `reference_embeds[i]`."""
    text_embeds = F.normalize(text_embeds, dim=-1)
    return torch.stack([
        (F.normalize(refs, dim=-1) @ text).max() for text, refs in zip(text_embeds, reference_embeds, strict=True)
    ])


def harmonic_mean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """2ab / (a + b), and 0 where a + b = 0 (the released code gives NaN there)."""
    total = a + b
    return torch.where(total == 0, torch.zeros_like(total), 2 * a * b / torch.where(total == 0, 1, total))


def with_prefix(captions: Sequence[str], prefix: str) -> list[str]:
    """"A photo depicts" + " " + caption: the prompt Hessel et al. found to help CLIP judge captions."""
    return [f"{prefix} {caption}" if prefix else caption for caption in captions]


@dataclass(frozen=True)
class ClipScoreResult:
    """Mean CLIP-S and per-item CLIP-S; RefCLIP-S likewise when references were given. On the
    released code's scale (typically 0 to 1; papers often print x100)."""

    clip_score: float
    scores: list[float]
    ref_clip_score: float | None = None
    ref_scores: list[float] | None = None


def _check_lengths(**named: Sequence[Any]) -> None:
    lengths = {name: len(values) for name, values in named.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"Expected one entry per image in each of {', '.join(lengths)}; got lengths {lengths}.")
    if not next(iter(lengths.values())):
        raise ValueError("CLIPScore needs at least one (image, caption) pair.")


def clip_score(images: Sequence[ImageInput], captions: Sequence[str], model: torch.nn.Module, processor: Any,
               **options: Any) -> ClipScoreResult:
    """Reference-free CLIP-S of each caption for its image, and their mean: `ref_clip_score` without
    references (``options``: its w, prefix and batch_size)."""
    return ref_clip_score(images, captions, None, model, processor, **options)


def ref_clip_score(
    images: Sequence[ImageInput],
    captions: Sequence[str],
    references: Sequence[Sequence[str]] | None,
    model: torch.nn.Module,
    processor: Any,
    w: float = DEFAULT_W,
    prefix: str = DEFAULT_PREFIX,
    batch_size: int = 64,
) -> ClipScoreResult:
    """CLIP-S of each caption given its image, and RefCLIP-S given also its reference captions (when
    ``references`` is not None)."""
    _check_lengths(images=images, captions=captions, **({} if references is None else {"references": references}))
    image_embeds = embed_images(model, processor, images, batch_size)
    text_embeds = embed_texts(model, processor, with_prefix(captions, prefix), batch_size)
    scores = clip_scores_from_embeddings(image_embeds, text_embeds, w)
    if references is None:
        return ClipScoreResult(clip_score=scores.mean().item(), scores=scores.tolist())
    references = [[refs] if isinstance(refs, str) else list(refs) for refs in references]
    for index, refs in enumerate(references):
        if not refs:
            raise ValueError(f"Item {index} has no reference captions; RefCLIPScore needs at least one per item.")
    flat = embed_texts(model, processor, with_prefix([r for refs in references for r in refs], prefix), batch_size)
    reference_embeds = list(flat.split([len(refs) for refs in references]))
    ref_scores = harmonic_mean(scores, best_reference_similarity(text_embeds, reference_embeds))
    return ClipScoreResult(
        clip_score=scores.mean().item(), scores=scores.tolist(),
        ref_clip_score=ref_scores.mean().item(), ref_scores=ref_scores.tolist(),
    )
