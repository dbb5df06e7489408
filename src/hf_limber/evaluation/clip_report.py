"""One evaluation of a CLIP on a labelled image-text dataset: zero-shot accuracy per label level and
template set, few-shot linear probes against zero-shot, and retrieval recall — written as JSON, a
markdown table and PNG plots (`hf-limber eval-clip`)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .embedding import embed_images, embed_texts
from .linear_probe import few_shot_indices, linear_probe
from .retrieval import retrieval_recall
from .zero_shot import ZeroShotResult, zero_shot_accuracy


@dataclass
class ClipEvalSettings:
    split: str
    label_columns: Sequence[str] = ("subcategory", "name")
    template_sets: Sequence[str] = ("simple", "emoji")
    caption_column: str | None = "caption"
    image_column: str = "image"
    probe_column: str | None = "subcategory"  # the level of the few-shot linear probes
    probe_train_split: str = "train"
    probe_validation_split: str = "validation"
    shots: Sequence[int] = (1, 4, 16)
    seed: int = 0
    batch_size: int = 256


def prompt_name(label: Any) -> str:
    """A label as the text encoder should read it: "face-smiling" -> "face smiling"."""
    return str(label).replace("-", " ").replace("_", " ")


@dataclass
class ClipEvaluation:
    """What `evaluate_clip` measured, plus what the plots need (predictions, embeddings)."""

    report: dict[str, Any]
    zero_shot: dict[str, dict[str, ZeroShotResult]] = field(repr=False)
    image_embeds: torch.Tensor = field(repr=False)
    text_embeds: torch.Tensor | None = field(repr=False)


def _probe(model: torch.nn.Module, processor: Any, dataset_dict: Any, settings: ClipEvalSettings,
           test_embeds: torch.Tensor, labels: list[Any]) -> dict[str, Any]:
    column = settings.probe_column
    index = {label: i for i, label in enumerate(labels)}
    train, validation = dataset_dict[settings.probe_train_split], dataset_dict[settings.probe_validation_split]
    test_y = [index[value] for value in dataset_dict[settings.split][column]]
    # Only the classes of the evaluated split take part: the probe answers the same question as zero-shot.
    val_rows = [i for i, value in enumerate(validation[column]) if value in index]
    validation = validation.select(val_rows)
    val_x = embed_images(model, processor, validation[settings.image_column], settings.batch_size, "probe validation")
    val_y = [index[value] for value in validation[column]]
    train_values = train[column]
    train_rows = [i for i, value in enumerate(train_values) if value in index]
    row_labels = [index[train_values[i]] for i in train_rows]
    results = {}
    for shots in settings.shots:
        picked = few_shot_indices(row_labels, shots, settings.seed)
        subset = train.select([train_rows[j] for j in picked])
        train_x = embed_images(model, processor, subset[settings.image_column], settings.batch_size, f"{shots}-shot")
        result = linear_probe(train_x, [row_labels[j] for j in picked], val_x, val_y, test_embeds, test_y)
        results[str(shots)] = {"accuracy": result.accuracy, "validation_accuracy": result.validation_accuracy,
                               "C": result.C, "train_examples": result.train_examples}
    return results


def evaluate_clip(model: torch.nn.Module, processor: Any, dataset_dict: Any, settings: ClipEvalSettings) -> ClipEvaluation:
    """Everything `hf-limber eval-clip` reports, on `dataset_dict[settings.split]`."""
    if settings.split not in dataset_dict:
        raise ValueError(f"The dataset has no split {settings.split!r}; it has {', '.join(dataset_dict)}.")
    started = time.perf_counter()
    dataset = dataset_dict[settings.split]
    missing = [c for c in (*settings.label_columns, settings.image_column) if c not in dataset.column_names]
    if missing:
        raise ValueError(f"Split {settings.split!r} lacks columns {missing}; it has {dataset.column_names}.")
    model.eval()
    image_embeds = embed_images(model, processor, dataset[settings.image_column], settings.batch_size, "images")
    report: dict[str, Any] = {"split": settings.split, "num_examples": len(dataset), "zero_shot": {}}
    zero_shot: dict[str, dict[str, ZeroShotResult]] = {}
    for column in settings.label_columns:
        labels = sorted(set(dataset[column]))
        zero_shot[column] = {
            name: zero_shot_accuracy(model, processor, dataset, [prompt_name(label) for label in labels], name,
                                     label_column=column, labels=labels, image_embeds=image_embeds,
                                     batch_size=settings.batch_size)
            for name in settings.template_sets
        }
        report["zero_shot"][column] = {name: result.as_dict() for name, result in zero_shot[column].items()}

    if settings.probe_column and settings.shots:
        labels = sorted(set(dataset[settings.probe_column]))
        report["linear_probe"] = {settings.probe_column: _probe(model, processor, dataset_dict, settings,
                                                                image_embeds, labels)}
    text_embeds = None
    if settings.caption_column:
        text_embeds = embed_texts(model, processor, dataset[settings.caption_column], settings.batch_size, "captions")
        report["retrieval"] = retrieval_recall(image_embeds, text_embeds)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return ClipEvaluation(report, zero_shot, image_embeds, text_embeds)


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def markdown_table(report: dict[str, Any]) -> str:
    """The report as markdown tables (accuracies and recalls in percent)."""
    lines = [f"Split `{report['split']}`, {report['num_examples']} images.", "",
             "| zero-shot | templates | top-1 % | top-5 % | chance % | top-1 / chance |", "|---|---|---|---|---|---|"]
    for column, by_templates in report["zero_shot"].items():
        for name, result in by_templates.items():
            lines.append(f"| {column} ({result['num_classes']} classes) | {name} | {_percent(result['top1'])} | "
                         f"{_percent(result['top5'])} | {_percent(result['chance'])} | "
                         f"{result['top1'] / result['chance']:.1f}x |")
    for column, by_shots in report.get("linear_probe", {}).items():
        lines += ["", f"| linear probe on {column} | train examples | top-1 % | C |", "|---|---|---|---|"]
        for shots, result in by_shots.items():
            lines.append(f"| {shots}-shot | {result['train_examples']} | {_percent(result['accuracy'])} | "
                         f"{result['C']:.3g} |")
    if "retrieval" in report:
        lines += ["", "| retrieval | R@1 % | R@5 % | R@10 % |", "|---|---|---|---|"]
        for direction in ("image_to_text", "text_to_image"):
            lines.append(f"| {direction.replace('_', ' ')} | " + " | ".join(
                _percent(report["retrieval"][f"{direction}_R@{k}"]) for k in (1, 5, 10)) + " |")
    return "\n".join(lines) + "\n"


def card_results(report: dict[str, Any], dataset: str) -> list[dict[str, Any]]:
    """The report as model-card results (`hf_limber.hub.cards.write_model_card`, model-index)."""
    split = report["split"]
    results = []
    for column, by_templates in report["zero_shot"].items():
        for templates, result in by_templates.items():
            results.append({"task": "zero-shot-image-classification", "dataset": dataset, "split": split,
                            "metric": "accuracy", "metric_name": f"zero-shot top-1, {column}, {templates} templates",
                            "value": round(result["top1"], 4)})
    for column, by_shots in report.get("linear_probe", {}).items():
        for shots, result in by_shots.items():
            results.append({"task": "image-classification", "dataset": dataset, "split": split, "metric": "accuracy",
                            "metric_name": f"{shots}-shot linear probe top-1, {column}",
                            "value": round(result["accuracy"], 4)})
    for name, value in report.get("retrieval", {}).items():
        results.append({"task": "image-text-retrieval", "dataset": dataset, "split": split, "metric": "recall",
                        "metric_name": name.replace("_", " "), "value": round(value, 4)})
    return results


def write_report(evaluation: ClipEvaluation, dataset: Any, settings: ClipEvalSettings, out_dir: str | Path,
                 extra: dict[str, Any] | None = None) -> Path:
    """report.json, report.md and the PNG plots in `out_dir`; returns the folder."""
    from .clip_plots import plot_confusion_of_worst, plot_few_shot, plot_retrieval_examples

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {**(extra or {}), **evaluation.report}
    plots = []
    if settings.label_columns:
        column = settings.label_columns[0]
        best = max(evaluation.zero_shot[column].values(), key=lambda result: result.top1)
        plots.append(plot_confusion_of_worst(best, list(best.per_class), out / "confusion_worst.png"))
    if "linear_probe" in report:
        column = settings.probe_column
        plots.append(plot_few_shot(report["linear_probe"][column], report["zero_shot"].get(column, {}),
                                   out / "few_shot.png"))
    if evaluation.text_embeds is not None:
        plots.append(plot_retrieval_examples(evaluation.image_embeds, evaluation.text_embeds,
                                             dataset[settings.image_column], dataset[settings.caption_column],
                                             out / "retrieval_examples.png", seed=settings.seed))
    report["plots"] = [plot.name for plot in plots]
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(markdown_table(report) + "".join(f"\n![{p.stem}]({p.name})\n" for p in plots))
    return out
