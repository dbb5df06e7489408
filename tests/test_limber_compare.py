"""`hf-limber compare-encoders` at toy size: the label-only and random towers are built with the
CLIP's architecture, every run trains and is evaluated, the page has both tables and plots, and a
second run reuses everything."""

import json

import pytest
import torch
import yaml
from datasets import Dataset, DatasetDict
from limber_parts import language_model, word_tokenizer
from PIL import Image

from hf_limber import ClipConfig, ClipModel, ClipProcessor, ClipVisionModel
from hf_limber.cli import main
from hf_limber.limber import LimberForCausalLM

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


def scenes(n: int) -> Dataset:
    question = {"question": "what color is it ?", "answers": ["red"] * 10, "multiple_choice_answer": "red"}
    return Dataset.from_list([
        {"image": Image.new("RGB", (40, 40), COLOURS[c]), "captions": [f"a {c} apple", f"the {c} car"],
         "summary": f"one emoji: a {c} apple.", "questions": [question]}
        for c in (list(COLOURS)[i % 3] for i in range(n))])


def concepts(n: int) -> Dataset:
    return Dataset.from_list([{"image": Image.new("RGB", (40, 40), COLOURS[c]), "name": f"{c} thing"}
                              for c in (list(COLOURS)[i % 3] for i in range(n))])


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, clip_tokenizer):
    root = tmp_path_factory.mktemp("compare")
    config = ClipConfig.from_preset("tiny-vit")
    torch.manual_seed(0)
    ClipModel(config).save_pretrained(root / "clip")
    ClipProcessor.for_config(config, clip_tokenizer).save_pretrained(root / "clip")
    language_model("llama").save_pretrained(root / "lm")
    word_tokenizer().save_pretrained(root / "lm")
    DatasetDict(train=scenes(12), validation=scenes(6)).save_to_disk(root / "scenes")
    DatasetDict(train=concepts(12)).save_to_disk(root / "emoji")
    fields = {"clip": root / "clip", "dataset": root / "scenes", "language_model": root / "lm",
              "label_dataset": root / "emoji", "label_column": "name", "label_epochs": 1, "label_batch_size": 4, "out": root / "out",
              "docs": root / "docs" / "comparison.md", "limber_steps": 2, "batch_size": 4, "eval_examples": 3,
              "vqa_shots": [0, 1], "pooled_k": [1, 2], "token_pool": 2, "k_eval_examples": 2,
              "k_limber_steps": 1, "seeds": [0, 1], "limber_recipe": root / "limber.yaml"}
    # The emoji LiMBeR recipe, at the tiny tower's own image size (a tiny LM's context has no room for more).
    limber = yaml.safe_load((ROOT / "recipes" / "limber" / "emoji-smollm2.yaml").read_text())
    (root / "limber.yaml").write_text(yaml.safe_dump({**limber, "image_size": None, "token_pool": 1}))
    path = root / "recipe.yaml"
    path.write_text("\n".join(f"{k}: {json.dumps(v if isinstance(v, (int, list)) else str(v))}" for k, v in fields.items()))
    return root, path


def test_compare_encoders_runs_every_encoder_and_k_with_seeds(recipe, capsys):
    root, path = recipe
    assert main(["compare-encoders", str(path)]) == 0
    results = json.loads((root / "out" / "results.json").read_text())
    settings = {"clip", "labels", "random", "clip-ft", "clip-grid-all", "clip-pooled-k1", "clip-pooled-k2",
                "clip-grid-pool2"}
    assert {f"{setting}-seed{seed}" for setting in settings for seed in (0, 1)} <= set(results)
    assert results["clip-grid-all-seed0"]["steps"] == 1 and results["clip-seed0"]["steps"] == 2
    assert [results[f"clip-pooled-k{k}-seed1"]["k"] for k in (1, 2)] == [1, 2]
    assert results["clip-grid-pool2-seed0"]["k"] * 4 == results["clip-seed0"]["k"] == 16
    assert set(results["labels-seed0"]["report"]["vqa"]) == {"0", "1"} and "vqa" not in results["clip-pooled-k1-seed0"]["report"]
    # Seeds give different projections; every run is evaluated on the same scenes.
    first, second = (LimberForCausalLM.from_pretrained(root / "out" / "limber" / f"clip-seed{seed}") for seed in (0, 1))
    assert not torch.equal(first.projection.weight, second.projection.weight)
    assert len(results["clip-seed0"]["report"]["per_item"]["cider_d"]) == 3
    # The fine-tuned run trained its encoder: the adapter carries it and it differs from the CLIP tower.
    tuned = LimberForCausalLM.from_pretrained(root / "out" / "limber" / "clip-ft-seed0")
    assert tuned.config.train_image_encoder
    assert not torch.equal(tuned.image_encoder.vision_model.position_embedding,
                           first.image_encoder.vision_model.position_embedding)
    # The label-only tower has the CLIP tower's architecture, and its own weights.
    clip_tower = ClipVisionModel.from_pretrained(root / "clip")
    label_tower = ClipVisionModel.from_pretrained(root / "out" / "encoders" / "labels")
    assert clip_tower.config.to_dict()["hidden_size"] == label_tower.config.to_dict()["hidden_size"]
    assert not torch.equal(clip_tower.vision_model.position_embedding, label_tower.vision_model.position_embedding)
    page = (root / "docs" / "comparison.md").read_text()
    assert "| clip | 2 |" in page and "| labels | 2 |" in page and "| clip-ft | 2 |" in page
    assert "| clip-pooled-k2 | 2 |" in page and "| clip-grid-pool2 | 2 |" in page
    assert "| clip vs labels: language supervision" in page and "against all grid tokens" in page
    assert any(word in page for word in ("| holds |", "| fails |", "| cannot be told apart |"))
    # Every run's model card carries its own results and the comparison's plots.
    card = (root / "out" / "limber" / "labels-seed1" / "README.md").read_text()
    assert "CIDEr-D" in card and "VQA accuracy, 1-shot" in card and "class labels only" in card
    assert "k_study.png" in card and "encoders.png" in card and "concept_recall.png" in card
    for plot in ("encoders.png", "k_study.png"):
        assert (root / "docs" / "comparison" / plot).read_bytes()[:4] == b"\x89PNG"

    # One stage runner (the quickstart's): a second run reuses every stage; the features are cached once
    # per encoder and form, and each run trained and evaluated in a stage of its own.
    stages = json.loads((root / "out" / "stages.json").read_text())["stages"]
    assert set(results) < set(stages) and sum(name.startswith("features-") for name in stages) == 5
    capsys.readouterr()
    assert main(["compare-encoders", str(path)]) == 0
    assert capsys.readouterr().out.count("reused") == len(stages)
    # A new seed runs its own stages only.
    assert main(["compare-encoders", str(path), "--seeds", "0", "1", "2"]) == 0
    log = capsys.readouterr().out
    assert log.count("reused") == len(stages) and "clip-seed2: LiMBeR" in log
