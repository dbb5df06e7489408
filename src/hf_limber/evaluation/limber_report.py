"""One evaluation of a LiMBeR model on captioned (and questioned) images: CIDEr-D, CLIPScore and
RefCLIPScore of its captions; on scenes with object lists, object recall, hallucinations (CHAIR) and
repetition loops; n-shot VQA accuracy per question type next to the same model shown another
scene's image (what the LM answers blind); and the paper's lexical-concept analysis. Every headline
number carries a 95% bootstrap interval over the evaluated images. Written as JSON, a markdown table
and PNG plots (`hf-limber eval-limber`)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .bootstrap import Interval, mean_interval, paired_difference
from .captions import cider_d
from .chair import scene_synonyms
from .clip_score import ref_clip_score
from .grounding import grounding_scores
from .lexical import lexical_concepts
from .questions import answer_questions
from .vqa import truncate_answer, vqa_accuracy


@dataclass
class LimberEvalSettings:
    split: str
    num_examples: int = 100
    image_column: str = "image"
    caption_column: str = "captions"
    questions_column: str | None = "questions"
    vqa_shots: Sequence[int] = (0, 1, 2, 4)
    shots_split: str = "train"  # where the solved examples of n-shot VQA come from
    objects_column: str | None = "objects"  # per image, a list of {"noun": ...}: object recall and CHAIR
    max_new_tokens: int = 24
    num_beams: int = 1
    # Measured (issue 16): 1.2 took repetition loops from 21.5% of captions to 0 at the same object recall.
    repetition_penalty: float = 1.2
    no_repeat_ngram_size: int = 0
    stop_at_sentence_end: bool = True  # a caption is one sentence: stop at its period, not 24 tokens later
    shuffled_baseline: bool = True  # VQA again with each question shown another image
    # Score an answer's first words only, as many as the longest human answer has (MAGMA/LiMBeR's protocol).
    truncate_answers: bool = True
    batch_size: int = 8
    seed: int = 0


@dataclass
class LimberEvaluation:
    report: dict[str, Any]
    captions: list[str] = field(repr=False)
    references: list[list[str]] = field(repr=False)
    lexical: Any = field(repr=False)
    rows: list[int] = field(repr=False)

    def to_markdown(self, model: str = "model") -> str:
        """The split, the metrics with their intervals and example captions (report.md without its plots)."""
        return report_markdown({"model": model, **self.report})


def report_markdown(report: dict[str, Any]) -> str:
    table = comparison_table({report.get("model", "model"): summary_row(report)})
    examples = "\n".join(f"- generated: “{e['generated']}” — reference: “{e['references'][0]}”"
                         for e in report["examples"])
    return f"Split `{report['split']}`, {report['num_examples']} images.\n\n{table}\n{interval_table(report)}\n{examples}\n"


def sentence_end_ids(tokenizer: Any) -> list[int]:
    """Token ids that end a sentence or a line (".", "!", "?" alone or ending a short token, newlines)."""
    ends = []
    for token, index in tokenizer.get_vocab().items():
        text = tokenizer.convert_tokens_to_string([token])
        if text.strip() in (".", "!", "?") or "\n" in text:
            ends.append(index)
    return sorted(ends)


def generate_captions(model: Any, processor: Any, images: Sequence[Any], batch_size: int = 8,
                      max_new_tokens: int = 24, num_beams: int = 1, progress: str | None = "captions",
                      stop_at_sentence_end: bool = True, **generate_kwargs: Any) -> list[str]:
    """Greedy (or beam) captions, each cut at its first line (the prompt is the model's own); with
    ``stop_at_sentence_end`` decoding stops at the first sentence end instead of running on."""
    captions = []
    if stop_at_sentence_end:
        generate_kwargs["eos_token_id"] = [*sentence_end_ids(processor.tokenizer), processor.tokenizer.eos_token_id]
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc=progress, unit="batch", leave=False) if progress else starts:
        batch = processor(images=list(images[start : start + batch_size]))
        tokens = model.generate(**batch, max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False,
                                pad_token_id=processor.tokenizer.pad_token_id or processor.tokenizer.eos_token_id,
                                **generate_kwargs)
        captions += processor.decode_captions(tokens)
    return captions


def _questions(dataset: Any, settings: LimberEvalSettings, rng: random.Random) -> list[tuple[int, dict]]:
    """One question per evaluated image, drawn at random (same draw for every model with the same seed)."""
    return [(row, rng.choice(questions)) for row, questions in enumerate(dataset[settings.questions_column])
            if questions]


def _percent(interval: Interval) -> dict[str, float]:
    return {key: (100 * value if key != "confidence" else value) for key, value in interval.to_dict().items()}


def _answers(model: Any, processor: Any, images: list[Any], questions: list[str], shots: list[list[Any]],
             settings: LimberEvalSettings, description: str, truths: list[list[str]]) -> list[str]:
    answers = []
    for start in tqdm(range(0, len(questions), settings.batch_size), desc=description, leave=False):
        end = start + settings.batch_size
        answers += answer_questions(model, processor, images[start:end], questions[start:end], shots=shots[start:end])
    if settings.truncate_answers:
        answers = [truncate_answer(answer, truth) for answer, truth in zip(answers, truths)]
    return answers


def _vqa(model: Any, processor: Any, dataset: Any, shots_source: Any, settings: LimberEvalSettings) -> dict[str, Any]:
    """n-shot VQA accuracy overall and per question type, each with its interval; with the shuffled
    baseline, the same questions asked of another scene's image, and the gain over it (paired)."""
    rng = random.Random(settings.seed)
    asked = _questions(dataset, settings, rng)
    images = [dataset[row][settings.image_column] for row, _ in asked]
    questions = [q["question"] for _, q in asked]
    truths = [q["answers"] for _, q in asked]
    types = [q.get("question_type", "all") for _, q in asked]
    pool = list(range(len(shots_source)))
    results = {}
    for shots in settings.vqa_shots:
        examples = []
        for _ in asked:
            solved = []
            for row in rng.sample(pool, shots):
                question = rng.choice(shots_source[row][settings.questions_column])
                solved.append((shots_source[row][settings.image_column], question["question"],
                               question["multiple_choice_answer"]))
            examples.append(solved)
        answers = _answers(model, processor, images, questions, examples, settings, f"VQA {shots}-shot", truths)
        scores = vqa_accuracy(answers, truths).scores
        result: dict[str, Any] = {"accuracy": 100 * sum(scores) / len(scores), "questions": len(asked),
                                  "interval": _percent(mean_interval(scores, settings.seed)), "per_type": {},
                                  "scores": scores, "truncated_to_longest_answer": settings.truncate_answers}
        shuffled_scores = None
        if settings.shuffled_baseline and len(asked) > 1:
            # Each question sees the next question's image: what the LM answers without the right picture.
            rotated = images[1:] + images[:1]
            shuffled = _answers(model, processor, rotated, questions, examples, settings, f"VQA {shots}-shot, shuffled",
                                truths)
            shuffled_scores = vqa_accuracy(shuffled, truths).scores
            result["shuffled_accuracy"] = 100 * sum(shuffled_scores) / len(shuffled_scores)
            result["shuffled_scores"] = shuffled_scores
            result["gain_over_shuffled"] = _percent(paired_difference(scores, shuffled_scores, settings.seed))
        for kind in sorted(set(types)):
            members = [i for i, t in enumerate(types) if t == kind]
            per_type: dict[str, Any] = {"questions": len(members),
                                        "accuracy": _percent(mean_interval([scores[i] for i in members], settings.seed))}
            if shuffled_scores is not None:
                per_type["shuffled"] = 100 * sum(shuffled_scores[i] for i in members) / len(members)
                per_type["gain"] = _percent(paired_difference([scores[i] for i in members],
                                                              [shuffled_scores[i] for i in members], settings.seed))
            result["per_type"][kind] = per_type
        result["examples"] = [{"question": q["question"], "answer": a, "truth": q["multiple_choice_answer"]}
                              for (_, q), a in list(zip(asked, answers))[:5]]
        results[str(shots)] = result
    return results


def evaluate_limber(model: Any, processor: Any, dataset_dict: Any, settings: LimberEvalSettings,
                    scorer: tuple[Any, Any] | None = None) -> LimberEvaluation:
    """Everything `hf-limber eval-limber` reports on the first `num_examples` rows of a split.
    `scorer` is the (CLIP model, processor) behind CLIPScore / RefCLIPScore; without it they are skipped.
    Object recall and CHAIR use the objects of every split as the vocabulary (`scene_synonyms`)."""
    if settings.split not in dataset_dict:
        raise ValueError(f"The dataset has no split {settings.split!r}; it has {', '.join(dataset_dict)}.")
    started = time.perf_counter()
    dataset = dataset_dict[settings.split]
    dataset = dataset.select(range(min(settings.num_examples, len(dataset))))
    model.eval()
    images = dataset[settings.image_column]
    references = [[refs] if isinstance(refs, str) else list(refs) for refs in dataset[settings.caption_column]]
    captions = generate_captions(model, processor, images, settings.batch_size, settings.max_new_tokens,
                                 settings.num_beams, stop_at_sentence_end=settings.stop_at_sentence_end,
                                 repetition_penalty=settings.repetition_penalty,
                                 no_repeat_ngram_size=settings.no_repeat_ngram_size)
    lexical = lexical_concepts(captions, references)
    cider = cider_d(captions, references)
    intervals = {"cider_d": mean_interval(cider.scores, settings.seed)}
    report: dict[str, Any] = {
        "split": settings.split, "num_examples": len(dataset), "cider_d": cider.score,
        "lexical": lexical.flat(),
        "examples": [{"generated": c, "references": r} for c, r in zip(captions[:8], references[:8])],
        # Per image, in row order: what paired comparisons of models on the same images resample.
        "per_item": {"cider_d": cider.scores},
    }
    if settings.objects_column and settings.objects_column in dataset.column_names:
        vocabulary = scene_synonyms(row for split in dataset_dict.values() for row in split.select_columns(
            [settings.objects_column]).to_list() if settings.objects_column in split.column_names)
        objects = [[obj["noun"] for obj in row] for row in dataset[settings.objects_column]]
        scores = grounding_scores(captions, objects, vocabulary)
        grounding = scores.intervals(settings.seed)
        intervals |= grounding
        report |= {name: interval.estimate for name, interval in grounding.items()}
        report["per_item"] |= {"object_recall": scores.recall, "hallucinated": scores.hallucinated,
                               "mentioned": scores.mentioned, "loops": [float(loop) for loop in scores.loops]}
    if scorer is not None:
        scores = ref_clip_score(images, captions, references, *scorer)
        report["clip_score"], report["ref_clip_score"] = scores.clip_score, scores.ref_clip_score
        intervals["clip_score"] = mean_interval(scores.scores, settings.seed)
        if scores.ref_scores is not None:
            intervals["ref_clip_score"] = mean_interval(scores.ref_scores, settings.seed)
    report["intervals"] = {name: interval.to_dict() for name, interval in intervals.items()}
    if settings.questions_column and settings.vqa_shots and settings.questions_column in dataset.column_names:
        report["vqa"] = _vqa(model, processor, dataset, dataset_dict[settings.shots_split], settings)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return LimberEvaluation(report, captions, references, lexical, list(range(len(dataset))))


def summary_row(report: dict[str, Any]) -> dict[str, float | None]:
    """The headline numbers of one report, flat (for comparison tables)."""
    lexical = report["lexical"]
    row: dict[str, float | None] = {"CIDEr-D": report["cider_d"], "CLIP-S": report.get("clip_score"),
                                    "RefCLIP-S": report.get("ref_clip_score")}
    if "object_recall" in report:
        row |= {"object R": report["object_recall"], "CHAIR-i": report["chair_i"], "loops": report["loops"]}
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


HEADLINES = {  # report key -> name on the page
    "object_recall": "object recall", "chair_i": "CHAIR-i (hallucinated objects)",
    "chair_s": "CHAIR-s (captions with one)", "loops": "captions with a repeated 3-gram",
    "cider_d": "CIDEr-D", "clip_score": "CLIPScore", "ref_clip_score": "RefCLIPScore",
}


def interval_table(report: dict[str, Any]) -> str:
    """Markdown: each headline number with its 95% bootstrap interval, then VQA per question type."""
    intervals = report.get("intervals", {})
    lines = ["| metric | value | 95% interval |", "|---|---:|---|"]
    for key, name in HEADLINES.items():
        if key in intervals:
            i = intervals[key]
            lines.append(f"| {name} | {i['estimate']:.3f} | [{i['low']:.3f}, {i['high']:.3f}] |")
    for shots, result in report.get("vqa", {}).items():
        i = result.get("interval")
        if i:
            lines.append(f"| VQA {shots}-shot % | {i['estimate']:.1f} | [{i['low']:.1f}, {i['high']:.1f}] |")
        if "gain_over_shuffled" in result:
            g = result["gain_over_shuffled"]
            lines.append(f"| VQA {shots}-shot gain over shuffled images (points) | {g['estimate']:.1f} | "
                         f"[{g['low']:.1f}, {g['high']:.1f}] |")
    for shots, result in report.get("vqa", {}).items():
        if result.get("per_type"):
            cut = "; answers cut to the longest human answer's length" if result.get("truncated_to_longest_answer") else ""
            lines += ["", f"VQA {shots}-shot by question type (shuffled: each question shown another scene{cut}):", "",
                      "| type | questions | accuracy % [95%] | shuffled % | gain (points) [95%] |", "|---|---:|---|---:|---|"]
            for kind, entry in result["per_type"].items():
                a, g = entry["accuracy"], entry.get("gain")
                gain = f"{g['estimate']:.1f} [{g['low']:.1f}, {g['high']:.1f}]" if g else "–"
                shuffled = f"{entry['shuffled']:.1f}" if "shuffled" in entry else "–"
                lines.append(f"| {kind} | {entry['questions']} | {a['estimate']:.1f} [{a['low']:.1f}, {a['high']:.1f}] | "
                             f"{shuffled} | {gain} |")
    return "\n".join(lines) + "\n"


def card_results(report: dict[str, Any], dataset: str) -> list[dict[str, Any]]:
    """The report as model-card results (`hf_limber.hub.cards.write_model_card`, model-index)."""
    split = report["split"]
    results = [{"task": "image-to-text", "dataset": dataset, "split": split, "metric": "cider", "metric_name": "CIDEr-D",
                "value": round(report["cider_d"], 4)}]
    for key, name in (("clip_score", "CLIPScore"), ("ref_clip_score", "RefCLIPScore"), ("object_recall", "object recall"),
                      ("chair_i", "CHAIR-i")):
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
    (out / "report.md").write_text(report_markdown(report) + "".join(f"\n![{p.stem}]({p.name})\n" for p in plots))
    return out


def load_scorer(path: str | None) -> tuple[Any, Any] | None:
    """A CLIP (model, processor) for CLIPScore from a folder, or None."""
    if not path:
        return None
    from transformers import AutoModel, AutoProcessor

    return AutoModel.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)

