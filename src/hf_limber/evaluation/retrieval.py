"""Image-to-text and text-to-image retrieval recall@K, as the CLIP paper reports it on Flickr30k/COCO.

A query counts as found at K when any of its correct matches ranks among the K most similar
candidates. An image may own several texts (COCO's five captions); `text_to_image[j]` names the
image text j describes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_KS = (1, 5, 10)


def _recall(similarity: torch.Tensor, correct: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    # Rank of the best-ranked correct candidate per query: how many candidates score strictly higher.
    best_correct = similarity.masked_fill(~correct, float("-inf")).max(dim=1, keepdim=True).values
    rank = (similarity > best_correct).sum(dim=1)
    return {k: (rank < k).float().mean().item() for k in ks}


def retrieval_recall(
    image_embeds: torch.Tensor, text_embeds: torch.Tensor, text_to_image: Sequence[int] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Recall@K both ways from unit embeddings: {"image_to_text_R@1": ..., "text_to_image_R@1": ...}.
    Without `text_to_image`, text i describes image i."""
    if text_to_image is None:
        if len(image_embeds) != len(text_embeds):
            raise ValueError(
                f"{len(image_embeds)} images and {len(text_embeds)} texts: pass text_to_image to say which "
                "image each text describes when they are not paired one to one."
            )
        text_to_image = range(len(text_embeds))
    owner = torch.as_tensor(list(text_to_image))
    if len(owner) != len(text_embeds) or owner.min() < 0 or owner.max() >= len(image_embeds):
        raise ValueError("text_to_image must give, for every text, the index of an existing image.")
    similarity = image_embeds.float() @ text_embeds.float().T  # (images, texts)
    correct = owner[None, :] == torch.arange(len(image_embeds))[:, None]
    if not correct.any(1).all():
        raise ValueError("Some images have no text describing them; image-to-text recall is undefined for them.")
    image_to_text = _recall(similarity, correct, ks)
    text_to_image_recall = _recall(similarity.T, correct.T, ks)
    return {
        **{f"image_to_text_R@{k}": value for k, value in image_to_text.items()},
        **{f"text_to_image_R@{k}": value for k, value in text_to_image_recall.items()},
    }


def top_matches(query_embeds: torch.Tensor, candidate_embeds: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most similar candidates per query: (scores, indices), each (queries, k)."""
    return (query_embeds @ candidate_embeds.T).topk(min(k, len(candidate_embeds)), dim=-1)
