"""One evaluation of a LiMBeR model on captioned (and questioned) images: CIDEr-D, CLIPScore and
RefCLIPScore of its captions, n-shot VQA accuracy and the lexical-concept analysis of the paper —
written as JSON, a markdown table and PNG plots (`hf-limber eval-limber`)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .captions import cider_d
from .clip_score import ref_clip_score
from .lexical import lexical_concepts
from .questions import answer_questions
from .vqa import vqa_accuracy


@dataclass
class LimberEvalSettings:
    split: str
    num_examples: int = 100
    image_column: str = "image"
    caption_column: str = "captions"
    questions_column: str | None = "questions"
    vqa_shots: Sequence[int] = (0, 1, 2, 4)
    shots_split: str = "train"  # where the solved examples of n-shot VQA come from
    max_new_tokens: int = 24
    num_beams: int = 1
    batch_size: int = 8
    seed: int = 0


@dataclass
class LimberEvaluation:
    report: dict[str, Any]
    captions: list[str] = field(repr=False)
    references: list[list[str]] = field(repr=False)
    lexical: Any = field(repr=False)
    rows: list[int] = field(repr=False)


def generate_captions(model: Any, processor: Any, images: Sequence[Any], batch_size: int = 8,
                      max_new_tokens: int = 24, num_beams: int = 1, progress: str | None = "captions") -> list[str]:
    """Greedy (or beam) captions, each cut at its first line (the prompt is the model's own)."""
    captions = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc=progress, unit="batch", leave=False) if progress else starts:
        batch = processor(images=list(images[start : start + batch_size]))
        tokens = model.generate(**batch, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False)
        captions += processor.decode_captions(tokens)
    return captions


def _questions(dataset: Any, settings: LimberEvalSettings, rng: random.Random) -> list[tuple[int, dict]]:
    """One question per evaluated image, drawn at random (same draw for every model with the same seed)."""
    return [(row, rng.choice(questions)) for row, questions in enumerate(dataset[settings.questions_column])
            if questions]


def _vqa(model: Any, processor: Any, dataset: Any, shots_source: Any, settings: LimberEvalSettings) -> dict[str, Any]:
    rng = random.Random(settings.seed)
    asked = _questions(dataset, settings, rng)
    results = {}
    pool = list(range(len(shots_source)))
    for shots in settings.vqa_shots:
        answers = []
        for start in tqdm(range(0, len(asked), settings.batch_size), desc=f"VQA {shots}-shot", leave=False):
            chunk = asked[start : start + settings.batch_size]
            examples = []
            for _ in chunk:
                solved = []
                for row in rng.sample(pool, shots):
                    question = rng.choice(shots_source[row][settings.questions_column])
                    solved.append((shots_source[row][settings.image_column], question["question"],
                                   question["multiple_choice_answer"]))
                examples.append(solved)
            answers += answer_questions(model, processor, [dataset[row][settings.image_column] for row, _ in chunk],
                                        [q["question"] for _, q in chunk], shots=examples)
        result = vqa_accuracy(answers, [q["answers"] for _, q in asked])
        results[str(shots)] = {"accuracy": result.accuracy, "questions": len(asked),
                               "examples": [{"question": q["question"], "answer": a, "truth": q["multiple_choice_answer"]}
                                            for (_, q), a in list(zip(asked, answers))[:5]]}
    return results


def evaluate_limber(model: Any, processor: Any, dataset_dict: Any, settings: LimberEvalSettings,
                    scorer: tuple[Any, Any] | None = None) -> LimberEvaluation:
    """Everything `hf-limber eval-limber` reports on the first `num_examples` rows of a split.
    `scorer` is the (CLIP model, processor) behind CLIPScore / RefCLIPScore; without it they are skipped."""
    if settings.split not in dataset_dict:
        raise ValueError(f"The dataset has no split {settings.split!r}; it has {', '.join(dataset_dict)}.")
    started = time.perf_counter()
    dataset = dataset_dict[settings.split]
    dataset = dataset.select(range(min(settings.num_examples, len(dataset))))
    model.eval()
    images = dataset[settings.image_column]
    references = [[refs] if isinstance(refs, str) else list(refs) for refs in dataset[settings.caption_column]]
    captions = generate_captions(model, processor, images, settings.batch_size, settings.max_new_tokens,
                                 settings.num_beams)
    lexical = lexical_concepts(captions, references)
    report: dict[str, Any] = {
        "split": settings.split, "num_examples": len(dataset), "cider_d": cider_d(captions, references).score,
        "lexical": lexical.flat(),
        "examples": [{"generated": c, "references": r} for c, r in zip(captions[:8], references[:8])],
    }
    if scorer is not None:
        scores = ref_clip_score(images, captions, references, *scorer)
        report["clip_score"], report["ref_clip_score"] = scores.clip_score, scores.ref_clip_score
    if settings.questions_column and settings.vqa_shots and settings.questions_column in dataset.column_names:
        report["vqa"] = _vqa(model, processor, dataset, dataset_dict[settings.shots_split], settings)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return LimberEvaluation(report, captions, references, lexical, list(range(len(dataset))))


def summary_row(report: dict[str, Any]) -> dict[str, float | None]:
    """The headline numbers of one report, flat (for comparison tables)."""
    lexical = report["lexical"]
    row: dict[str, float | None] = {"CIDEr-D": report["cider_d"], "CLIP-S": report.get("clip_score"),
                                    "RefCLIP-S": report.get("ref_clip_score")}
    for shots, result in report.get("vqa", {}).items():
        row[f"VQA {shots}-shot %"] = result["accuracy"]
    for category in ("nouns", "modifiers", "relations"):
        row[f"{category} P"], row[f"{category} R"] = lexical[f"{category}_precision"], lexical[f"{category}_recall"]
    row["noun Wu-Palmer P"], row["noun Wu-Palmer R"] = lexical["noun_wup_precision"], lexical["noun_wup_recall"]
    return row


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def comparison_table(rows: dict[str, dict[str, float | None]]) -> str:
    """Markdown: one row per named model, one column per headline number."""
    columns = list(next(iter(rows.values())))
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(_cell(row.get(column)) for column in columns) + " |"
              for name, row in rows.items()]
    return "\n".join(lines) + "\n"


def card_results(report: dict[str, Any], dataset: str) -> list[dict[str, Any]]:
    """The report as model-card results (`hf_limber.hub.cards.write_model_card`, model-index)."""
    split = report["split"]
    results = [{"task": "image-to-text", "dataset": dataset, "split": split, "metric": "cider", "metric_name": "CIDEr-D",
                "value": round(report["cider_d"], 4)}]
    for key, name in (("clip_score", "CLIPScore"), ("ref_clip_score", "RefCLIPScore")):
        if report.get(key) is not None:
            results.append({"task": "image-to-text", "dataset": dataset, "split": split, "metric": key,
                            "metric_name": name, "value": round(report[key], 4)})
    for shots, result in report.get("vqa", {}).items():
        results.append({"task": "visual-question-answering", "dataset": dataset, "split": split, "metric": "accuracy",
                        "metric_name": f"VQA accuracy, {shots}-shot", "value": round(result["accuracy"], 2)})
    return results


def write_limber_report(evaluation: LimberEvaluation, dataset: Any, settings: LimberEvalSettings,
                        out_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """report.json, report.md, concept_recall.png and examples.png in `out_dir`."""
    from .limber_plots import plot_caption_examples, plot_concept_recall

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = {**(extra or {}), **evaluation.report}
    plots = [plot_concept_recall(evaluation.lexical, out / "concept_recall.png"),
             plot_caption_examples([dataset[i][settings.image_column] for i in evaluation.rows[:6]],
                                   evaluation.captions[:6], evaluation.references[:6], out / "examples.png")]
    report["plots"] = [plot.name for plot in plots]
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    table = comparison_table({report.get("model", "model"): summary_row(report)})
    examples = "\n".join(f"- generated: “{e['generated']}” — reference: “{e['references'][0]}”"
                         for e in report["examples"])
    (out / "report.md").write_text(f"Split `{report['split']}`, {report['num_examples']} images.\n\n{table}\n"
                                   f"{examples}\n" + "".join(f"\n![{p.stem}]({p.name})\n" for p in plots))
    return out


def load_scorer(path: str | None) -> tuple[Any, Any] | None:
    """A CLIP (model, processor) for CLIPScore from a folder, or None."""
    if not path:
        return None
    from transformers import AutoModel, AutoProcessor

    return AutoModel.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)

