"""PNG views of a CLIP evaluation: where zero-shot goes wrong, few-shot probes against zero-shot,
and what retrieval returns. matplotlib with the Agg backend: no screen needed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..images import prepare_image, to_rgb
from .retrieval import top_matches
from .zero_shot import ZeroShotResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_of_worst(result: ZeroShotResult, classnames: Sequence[str], path: Path, worst: int = 12,
                            columns: int = 12) -> Path:
    """Rows: the `worst` classes by top-1 (among those with at least two examples); columns: the
    classes they are most often taken for; cells: the fraction of a row's images predicted as the column."""
    plt = _pyplot()
    counts = Counter(result.labels)
    per_class = {i: result.per_class[name] for i, name in enumerate(classnames) if counts[i] >= 2}
    rows = sorted(per_class, key=lambda i: (per_class[i], i))[:worst]
    predicted = Counter(p for p, t in zip(result.predictions, result.labels) if t in rows)
    cols = [c for c, _ in predicted.most_common(columns)]
    matrix = np.zeros((len(rows), len(cols)))
    for p, t in zip(result.predictions, result.labels):
        if t in rows and p in cols:
            matrix[rows.index(t), cols.index(p)] += 1 / counts[t]
    figure, axes = plt.subplots(figsize=(2 + 0.55 * len(cols), 1.5 + 0.4 * len(rows)))
    image = axes.imshow(matrix, cmap="Reds", vmin=0, vmax=1)
    axes.set_xticks(range(len(cols)), [classnames[c] for c in cols], rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(rows)), [f"{classnames[r]} ({100 * per_class[r]:.0f}%)" for r in rows], fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_title(f"Zero-shot: the {len(rows)} worst classes and what they are taken for")
    figure.colorbar(image, ax=axes, fraction=0.03, label="fraction of the class")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_few_shot(probe: dict[str, dict[str, Any]], zero_shot: dict[str, dict[str, Any]], path: Path) -> Path:
    """Linear-probe top-1 against examples per class, with each zero-shot template set as a line."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5.5, 3.8))
    shots = [int(k) for k in probe]
    axes.plot(shots, [100 * probe[str(k)]["accuracy"] for k in shots], "o-", label="linear probe")
    for (name, result), style in zip(zero_shot.items(), ("--", ":", "-.", "--")):
        axes.axhline(100 * result["top1"], linestyle=style, color="gray", label=f"zero-shot ({name} templates)")
    if zero_shot:
        axes.axhline(100 * next(iter(zero_shot.values()))["chance"], color="black", lw=0.8, label="chance")
    axes.set_xscale("log", base=2)
    axes.set_xticks(shots, [str(k) for k in shots])
    axes.set_xlabel("training examples per class")
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_title("Few-shot linear probe vs zero-shot")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _thumbnail(image: Any) -> np.ndarray:
    picture = prepare_image(image)
    if torch.is_tensor(picture) or isinstance(picture, np.ndarray):
        return np.asarray(picture)
    return np.asarray(to_rgb(picture))


def plot_retrieval_examples(image_embeds: torch.Tensor, text_embeds: torch.Tensor, images: Sequence[Any],
                            captions: Sequence[str], path: Path, queries: int = 6, k: int = 5, seed: int = 0) -> Path:
    """Text-to-image search for a few random captions: each row one query and its top-k images,
    the image the caption belongs to framed in green, others in red."""
    plt = _pyplot()
    chosen = np.random.default_rng(seed).choice(len(captions), size=min(queries, len(captions)), replace=False)
    _, ranked = top_matches(text_embeds[chosen], image_embeds, k)
    figure, axes = plt.subplots(len(chosen), k, figsize=(1.6 * k, 1.9 * len(chosen)), squeeze=False)
    for row, (query, hits) in enumerate(zip(chosen, ranked.tolist())):
        for col, hit in enumerate(hits):
            axes[row, col].imshow(_thumbnail(images[hit]))
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
            for spine in axes[row, col].spines.values():
                spine.set_edgecolor("green" if hit == query else "red")
                spine.set_linewidth(3 if hit == query else 1)
        text = captions[query]
        axes[row, 0].set_title(text if len(text) < 90 else text[:87] + "...", loc="left", fontsize=7)
    figure.suptitle("Text-to-image retrieval: query caption, top images (green = its own image)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
