"""`hf-limber eval-limber` and its report on a tiny LiMBeR: numbers equal the metric functions on the
same generated captions, VQA runs zero- and few-shot, plots are written."""

import json

import pytest
from datasets import Dataset, DatasetDict
from limber_parts import image_encoder, language_model, word_tokenizer
from PIL import Image

from hf_limber import ClipConfig, ClipProcessor
from hf_limber.cli import main
from hf_limber.evaluation import cider_d, ref_clip_score
from hf_limber.evaluation.grounding import grounding_scores
from hf_limber.evaluation.limber_report import (
    comparison_table,
    generate_captions,
    load_scorer,
    sentence_end_ids,
    summary_row,
)
from hf_limber.limber import LimberForCausalLM, LimberProcessor

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


def scenes(n: int) -> Dataset:
    rows = []
    for i in range(n):
        colour = list(COLOURS)[i % 3]
        question = {"question": "what color is it ?", "answers": [colour] * 8 + ["red", "blue"],
                    "multiple_choice_answer": colour, "question_type": "what"}
        rows.append({"image": Image.new("RGB", (40, 40), COLOURS[colour]),
                     "captions": [f"a {colour} apple on the left", f"the {colour} apple", f"a small {colour} car"],
                     "questions": [question, {**question, "question": "is there a cat ?", "question_type": "yes/no",
                                              "answers": ["no"] * 10, "multiple_choice_answer": "no"}],
                     "objects": [{"noun": "apple"}] + ([{"noun": "car"}] if i % 2 else [])})
    return Dataset.from_list(rows)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, clip_tokenizer):
    root = tmp_path_factory.mktemp("limber-eval")
    clip = image_encoder("clip-vit")
    clip.save_pretrained(root / "clip")
    ClipProcessor.for_config(ClipConfig.from_preset("tiny-vit"), clip_tokenizer).save_pretrained(root / "clip")
    language_model("llama").save_pretrained(root / "lm")
    word_tokenizer().save_pretrained(root / "lm")
    model = LimberForCausalLM.from_parts(root / "clip", root / "lm")
    model.save_pretrained(root / "model")
    LimberProcessor.for_model(model, word_tokenizer()).save_pretrained(root / "model")
    DatasetDict(train=scenes(12), validation=scenes(6)).save_to_disk(root / "data")
    return root


def test_eval_limber_reports_the_metrics_of_its_captions(saved, capsys):
    out = saved / "report"
    assert main(["eval-limber", str(saved / "model"), str(saved / "data"), "--num-examples", "5",
                 "--vqa-shots", "0", "2", "--max-new-tokens", "4", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["scorer"] == str(saved / "clip")  # the encoder is a whole CLIP: it scores by default

    model = LimberForCausalLM.from_pretrained(saved / "model")
    processor = LimberProcessor.from_pretrained(saved / "model")
    validation = DatasetDict.load_from_disk(saved / "data")["validation"].select(range(5))
    captions = generate_captions(model, processor, validation["image"], max_new_tokens=4, progress=None)
    assert [example["generated"] for example in report["examples"]] == captions
    assert report["cider_d"] == pytest.approx(cider_d(captions, validation["captions"]).score)
    scores = ref_clip_score(validation["image"], captions, validation["captions"], *load_scorer(str(saved / "clip")))
    assert report["clip_score"] == pytest.approx(scores.clip_score)
    assert report["ref_clip_score"] == pytest.approx(scores.ref_clip_score)
    assert set(report["vqa"]) == {"0", "2"} and report["vqa"]["0"]["questions"] == 5
    assert all(0 <= result["accuracy"] <= 100 for result in report["vqa"].values())
    assert {"nouns_precision", "relations_recall", "noun_wup_precision"} <= set(report["lexical"])
    for name in ("concept_recall.png", "examples.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert "| model | CIDEr-D | CLIP-S | RefCLIP-S | object R | CHAIR-i | loops | VQA 0-shot % |" in capsys.readouterr().out

    # Grounding against the scenes' objects, with the objects of every split as the vocabulary.
    objects = [[o["noun"] for o in row] for row in validation["objects"]]
    grounding = grounding_scores(captions, objects, {"apple": [], "car": []}).intervals()
    for name in ("object_recall", "chair_i", "chair_s", "loops"):
        assert report[name] == pytest.approx(grounding[name].estimate)
        assert report["intervals"][name]["low"] <= report[name] <= report["intervals"][name]["high"]
    assert report["intervals"]["cider_d"]["estimate"] == pytest.approx(report["cider_d"])
    # VQA: per question type, and the same questions shown another scene's image.
    zero = report["vqa"]["0"]
    assert zero["interval"]["estimate"] == pytest.approx(zero["accuracy"])
    assert 0 <= zero["shuffled_accuracy"] <= 100
    assert zero["gain_over_shuffled"]["estimate"] == pytest.approx(zero["accuracy"] - zero["shuffled_accuracy"])
    assert sum(entry["questions"] for entry in zero["per_type"].values()) == 5
    assert set(zero["per_type"]) <= {"what", "yes/no"}
    assert "VQA 0-shot by question type" in (out / "report.md").read_text()


def test_captions_stop_at_the_end_of_their_sentence():
    tokenizer = word_tokenizer()
    ends = sentence_end_ids(tokenizer)
    assert tokenizer.convert_tokens_to_ids(".") in ends and tokenizer.convert_tokens_to_ids("?") in ends
    assert tokenizer.convert_tokens_to_ids("cat") not in ends


def test_comparison_table_lays_models_side_by_side():
    report = {"cider_d": 0.5, "clip_score": None, "vqa": {"0": {"accuracy": 12.5}},
              "lexical": {f"{c}_{m}": 0.25 for c in ("nouns", "modifiers", "relations") for m in ("precision", "recall")}
              | {"noun_wup_precision": 0.75, "noun_wup_recall": None}}
    table = comparison_table({"clip": summary_row(report), "random": summary_row(report)})
    lines = table.splitlines()
    assert lines[0].startswith("| model | CIDEr-D | CLIP-S | RefCLIP-S | VQA 0-shot % | nouns P |")
    assert lines[2].startswith("| clip | 0.500 | – | – | 12.500 | 0.250 |") and lines[3].startswith("| random |")
