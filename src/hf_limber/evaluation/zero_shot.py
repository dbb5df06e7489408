"""Zero-shot classification from class names and prompt templates (Radford et al. 2021, sec. 3.1.4).

Each class's weight is its prompt ensemble: embed "template.format(name)" for every template,
normalise each embedding, average over the templates and renormalise. An image's class scores are
cosine similarities with those weights, scaled by exp(logit_scale) (the inverse temperature) for probabilities.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..images import ImageInput
from .embedding import embed_images, embed_texts
from .templates import template_set


def class_weights(
    model: torch.nn.Module, processor: Any, classnames: Sequence[str], templates: Sequence[str] | str,
    batch_size: int = 256, progress: str | None = None,
) -> torch.Tensor:
    """(C, D) unit-length class embeddings, each the normalised mean of its normalised prompt embeddings.
    All C x T prompts are embedded in batches of `batch_size`, across class boundaries."""
    templates = template_set(templates)
    if not classnames:
        raise ValueError("No class names given: zero-shot classification needs at least one.")
    prompts = [template.format(name) for name in classnames for template in templates]
    embeds = embed_texts(model, processor, prompts, batch_size, progress)
    return F.normalize(embeds.view(len(classnames), len(templates), -1).mean(1), dim=-1)


def _logit_scale_multiplier(model: torch.nn.Module) -> float:
    # The log-value parameter both ours and transformers' CLIPModel hold (ours is capped while it trains).
    return model.logit_scale.exp().item()


class ZeroShotClassifier:
    """A CLIP turned into a classifier over `classnames`. Class weights are computed once per
    (classnames, templates) and kept — the `cache_size` most recently used label sets — so
    re-labelling in an app costs only the new label set, and memory stays bounded."""

    def __init__(self, model: torch.nn.Module, processor: Any, templates: Sequence[str] | str = "simple",
                 batch_size: int = 256, cache_size: int = 32) -> None:
        self.model = model.eval()
        self.processor = processor
        self.templates = template_set(templates)
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._weights: OrderedDict[tuple[tuple[str, ...], tuple[str, ...]], torch.Tensor] = OrderedDict()

    def weights(self, classnames: Sequence[str], templates: Sequence[str] | str | None = None) -> torch.Tensor:
        key = (tuple(classnames), template_set(templates) if templates is not None else self.templates)
        if key in self._weights:
            self._weights.move_to_end(key)
        else:
            self._weights[key] = class_weights(self.model, self.processor, *key, batch_size=self.batch_size)
            while len(self._weights) > self.cache_size:
                self._weights.popitem(last=False)
        return self._weights[key]

    def logits(self, image_embeds: torch.Tensor, classnames: Sequence[str],
               templates: Sequence[str] | str | None = None) -> torch.Tensor:
        """Temperature-scaled cosine similarities (N, C) of unit image embeddings with the classes."""
        return _logit_scale_multiplier(self.model) * image_embeds @ self.weights(classnames, templates).T

    def __call__(self, images: Sequence[ImageInput], classnames: Sequence[str], top_k: int | None = 5,
                 templates: Sequence[str] | str | None = None) -> list[list[tuple[str, float]]]:
        """For each image, the `top_k` (class name, probability) pairs, most likely first."""
        image_embeds = embed_images(self.model, self.processor, images, self.batch_size)
        probs = self.logits(image_embeds, classnames, templates).softmax(-1)
        k = min(top_k or len(classnames), len(classnames))
        values, indices = probs.topk(k, dim=-1)
        return [[(classnames[i], p) for i, p in zip(row_i.tolist(), row_p.tolist())]
                for row_i, row_p in zip(indices, values)]


@dataclass(frozen=True)
class ZeroShotResult:
    """Top-1 / top-5 accuracy (fractions), per-class top-1 and the predictions behind them."""

    top1: float
    top5: float
    per_class: dict[str, float]
    predictions: list[int] = field(repr=False)
    labels: list[int] = field(repr=False)
    chance: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"top1": self.top1, "top5": self.top5, "chance": self.chance, "num_classes": len(self.per_class),
                "num_examples": len(self.labels), "per_class_top1": self.per_class}


def label_indices(values: Sequence[Any], labels: Sequence[Any]) -> list[int]:
    """Map a dataset's label column (indices, or values found in `labels`) to class indices."""
    index = {label: i for i, label in enumerate(labels)}
    result = []
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and value not in index:
            if not 0 <= value < len(labels):
                raise ValueError(f"Label index {value} is outside the {len(labels)} classes given.")
            result.append(value)
        elif value in index:
            result.append(index[value])
        else:
            raise ValueError(f"Label {value!r} is not among the classes given; pass every label the dataset uses.")
    return result


def accuracy_from_logits(logits: torch.Tensor, targets: Sequence[int], classnames: Sequence[str]) -> ZeroShotResult:
    """Top-1, top-5 and per-class top-1 of (N, C) scores against class indices."""
    targets_t = torch.as_tensor(list(targets))
    ranked = logits.topk(min(5, logits.shape[1]), dim=-1).indices
    hit1 = ranked[:, 0] == targets_t
    hit5 = (ranked == targets_t[:, None]).any(-1)
    per_class = {}
    for index, name in enumerate(classnames):
        members = targets_t == index
        if members.any():
            per_class[name] = hit1[members].float().mean().item()
    return ZeroShotResult(
        top1=hit1.float().mean().item(), top5=hit5.float().mean().item(), per_class=per_class,
        predictions=ranked[:, 0].tolist(), labels=targets_t.tolist(), chance=1 / len(classnames),
    )


def zero_shot_accuracy(
    model: torch.nn.Module, processor: Any, dataset: Any, classnames: Sequence[str],
    templates: Sequence[str] | str = "simple", label_column: str = "label", image_column: str = "image",
    labels: Sequence[Any] | None = None, image_embeds: torch.Tensor | None = None, batch_size: int = 256,
) -> ZeroShotResult:
    """Zero-shot top-1/top-5 and per-class accuracy on a `datasets.Dataset` (or any mapping of columns).

    `classnames` go into the templates. The label column holds class indices, or values listed in
    `labels` (default: `classnames`) — e.g. labels "face-smiling" shown to the model as "face smiling".
    Pass `image_embeds` to reuse embeddings already computed for the same rows."""
    targets = label_indices(dataset[label_column], labels if labels is not None else classnames)
    if image_embeds is None:
        image_embeds = embed_images(model, processor, dataset[image_column], batch_size, progress="images")
    weights = class_weights(model, processor, classnames, templates, batch_size, progress="class prompts")
    return accuracy_from_logits(image_embeds @ weights.T, targets, classnames)
