"""PNG views of a LiMBeR evaluation: which reference concepts the captions recover, and captions
next to their images. matplotlib with the Agg backend: no screen needed."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .clip_plots import _pyplot, _thumbnail
from .lexical import LexicalResult


def plot_concept_recall(lexical: LexicalResult, path: Path, top: int = 20) -> Path:
    """Per-concept recall (items whose generated caption names a concept its references name) of the
    most frequent reference nouns, modifiers and relations, one panel each."""
    plt = _pyplot()
    categories = ("nouns", "modifiers", "relations")
    figure, axes = plt.subplots(1, 3, figsize=(14, 0.3 * top + 1.5))
    for axis, category in zip(axes, categories):
        result = getattr(lexical, category)
        concepts = result.top[:top][::-1]
        recalls = [result.per_concept[c].in_both / max(result.per_concept[c].in_references, 1) for c in concepts]
        axis.barh(range(len(concepts)), recalls, color="tab:blue")
        axis.set_yticks(range(len(concepts)), concepts, fontsize=8)
        axis.set_xlim(0, 1)
        axis.set_xlabel("recall")
        axis.set_title(f"{category}: P {result.precision:.2f}, R {result.recall:.2f}", fontsize=10)
    figure.suptitle("Reference concepts recovered by the generated captions (most frequent at the top)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_caption_examples(images: Sequence[Any], captions: Sequence[str], references: Sequence[Sequence[str]],
                          path: Path, columns: int = 3) -> Path:
    """Images with their generated caption (bold) and first reference caption below."""
    plt = _pyplot()
    rows = (len(images) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 5.0 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, image, caption, refs in zip(axes.flat, images, captions, references):
        axis.imshow(_thumbnail(image))
        generated = textwrap.fill(f"generated: {caption}", 48)
        reference = textwrap.fill(f"reference: {refs[0]}", 48)
        axis.set_title(generated, fontsize=8, fontweight="bold", loc="left")
        axis.text(0, -0.04, reference, transform=axis.transAxes, fontsize=8, va="top")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
