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
from hf_limber.evaluation.limber_report import comparison_table, generate_captions, load_scorer, summary_row
from hf_limber.limber import LimberForCausalLM, LimberProcessor

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


def scenes(n: int) -> Dataset:
    rows = []
    for i in range(n):
        colour = list(COLOURS)[i % 3]
        question = {"question": "what color is it ?", "answers": [colour] * 8 + ["red", "blue"],
                    "multiple_choice_answer": colour}
        rows.append({"image": Image.new("RGB", (40, 40), COLOURS[colour]),
                     "captions": [f"a {colour} apple on the left", f"the {colour} apple", f"a small {colour} car"],
                     "questions": [question, {**question, "question": "is there a cat ?",
                                              "answers": ["no"] * 10, "multiple_choice_answer": "no"}]})
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
    assert "| model | CIDEr-D | CLIP-S | RefCLIP-S | VQA 0-shot % | VQA 2-shot % |" in capsys.readouterr().out


def test_comparison_table_lays_models_side_by_side():
    report = {"cider_d": 0.5, "clip_score": None, "vqa": {"0": {"accuracy": 12.5}},
              "lexical": {f"{c}_{m}": 0.25 for c in ("nouns", "modifiers", "relations") for m in ("precision", "recall")}
              | {"noun_wup_precision": 0.75, "noun_wup_recall": None}}
    table = comparison_table({"clip": summary_row(report), "random": summary_row(report)})
    lines = table.splitlines()
    assert lines[0].startswith("| model | CIDEr-D | CLIP-S | RefCLIP-S | VQA 0-shot % | nouns P |")
    assert lines[2].startswith("| clip | 0.500 | – | – | 12.500 | 0.250 |") and lines[3].startswith("| random |")
