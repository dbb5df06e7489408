"""Zero-shot classification, retrieval recall, the linear probe, their `evaluate` modules, the
zero-shot pipeline of transformers and `hf-limber eval-clip`, on a tiny random CLIP and hand-made numbers."""

import json

import evaluate
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from huggingface_hub import ModelCard
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image as ImageFeature, Value
from PIL import Image
from transformers import pipeline

import hf_limber
from hf_limber.cli import main
from hf_limber.evaluation import (
    IMAGENET, ZeroShotClassifier, class_weights, embed_images, few_shot_indices, linear_probe, retrieval_recall,
    template_set, zero_shot_accuracy,
)
from hf_limber.evaluation.linear_probe import choose_C
from hf_limber.evaluation.zero_shot import accuracy_from_logits
from hf_limber.metrics import metric_path

CLASSES = ["cat", "dog", "red apple", "bus"]


@pytest.fixture(scope="module")
def tiny_clip(clip_tokenizer):
    config = hf_limber.ClipConfig.from_preset("tiny-vit")
    torch.manual_seed(0)
    return hf_limber.ClipModel(config).eval(), hf_limber.ClipProcessor.for_config(config, clip_tokenizer)


def random_images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(count)]


def test_template_sets():
    assert len(IMAGENET) == 80 and len(set(IMAGENET)) == 80
    assert all(template.count("{}") == 1 for name in ("imagenet", "simple", "emoji") for template in template_set(name))
    with pytest.raises(ValueError, match="exactly once"):
        template_set(["a photo"])
    with pytest.raises(ValueError, match="Unknown template set"):
        template_set("imagenette")


def test_class_weights_are_normalised_means_of_normalised_prompts(tiny_clip):
    model, processor = tiny_clip
    templates = ["a photo of a {}.", "a drawing of a {}.", "{}"]
    expected = []
    for name in CLASSES:
        batch = processor(text=[t.format(name) for t in templates])
        with torch.no_grad():
            embeds = F.normalize(model.get_text_features(batch["input_ids"], batch["attention_mask"]).pooler_output, dim=-1)
        expected.append(F.normalize(embeds.mean(0), dim=-1))
    # Batches of 2 cut across classes (3 prompts each): the grouping must not depend on batching.
    for batch_size in (2, 64):
        weights = class_weights(model, processor, CLASSES, templates, batch_size=batch_size)
        torch.testing.assert_close(weights, torch.stack(expected), atol=1e-6, rtol=0)


def test_accuracy_from_logits_by_hand():
    logits = torch.tensor([
        [5.0, 1, 0, 0, 0, 0],   # class 0, top-1 hit
        [1, 0, 5, 4, 3, 2],     # class 1: ranked 6th -> miss at 5
        [0, 5, 4, 3, 2, 1],     # class 2: ranked 3rd -> top-5 hit
        [0, 0, 0, 9, 0, 0],     # class 3: hit
    ])
    result = accuracy_from_logits(logits, [0, 1, 2, 3], list("abcdef"))
    assert result.top1 == 0.5 and result.top5 == 0.75
    assert result.per_class == {"a": 1.0, "b": 0.0, "c": 0.0, "d": 1.0}
    assert result.chance == pytest.approx(1 / 6)


def test_zero_shot_accuracy_matches_argmax_and_maps_labels(tiny_clip):
    model, processor = tiny_clip
    images = random_images(8)
    labels = ["cat", "dog-face", "cat", "bus", "dog-face", "bus", "cat", "dog-face"]
    dataset = {"image": images, "label": labels}
    result = zero_shot_accuracy(model, processor, dataset, ["cat", "dog face", "bus"], "simple",
                                labels=["cat", "dog-face", "bus"])
    weights = class_weights(model, processor, ["cat", "dog face", "bus"], "simple")
    predictions = (embed_images(model, processor, images) @ weights.T).argmax(-1).tolist()
    targets = [["cat", "dog-face", "bus"].index(label) for label in labels]
    assert result.predictions == predictions
    assert result.top1 == pytest.approx(np.mean([p == t for p, t in zip(predictions, targets)]))
    assert result.top5 == 1.0  # three classes: always in the top five
    with pytest.raises(ValueError, match="not among the classes"):
        zero_shot_accuracy(model, processor, {"image": images[:1], "label": ["horse"]}, ["cat"], "simple")


def test_classifier_caches_weights_and_gives_probabilities(tiny_clip, monkeypatch):
    model, processor = tiny_clip
    classifier = ZeroShotClassifier(model, processor, templates="emoji")
    calls = []
    original = processor.__class__.__call__
    monkeypatch.setattr(processor.__class__, "__call__", lambda self, *a, **k: calls.append(k) or original(self, *a, **k))
    first = classifier(random_images(2), CLASSES, top_k=3)
    text_calls = sum(1 for k in calls if k.get("text") is not None)
    second = classifier(random_images(2), CLASSES, top_k=3)
    assert sum(1 for k in calls if k.get("text") is not None) == text_calls  # no new prompt embeddings
    assert first == second and len(first[0]) == 3
    full = classifier(random_images(1), CLASSES, top_k=None)[0]
    assert sum(p for _, p in full) == pytest.approx(1.0)
    expected = (model.logit_scale_multiplier() * embed_images(model, processor, random_images(1))
                @ classifier.weights(CLASSES).T).softmax(-1)[0]
    assert [p for _, p in full] == pytest.approx(sorted(expected.tolist(), reverse=True), abs=1e-6)
    small = ZeroShotClassifier(model, processor, cache_size=2)
    for labels in (["a", "b"], ["c", "d"], ["a", "b"], ["e", "f"]):
        small.weights(labels)
    assert [names for names, _ in small._weights] == [("a", "b"), ("e", "f")]  # least recently used went first


def test_transformers_zero_shot_pipeline_runs_on_a_saved_model(tiny_clip, tmp_path):
    model, processor = tiny_clip
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    classify = pipeline("zero-shot-image-classification", model=str(tmp_path))
    images = random_images(2, seed=3)
    template = "This is a photo of {}."
    got = classify(images, candidate_labels=CLASSES, hypothesis_template=template)
    expected = ZeroShotClassifier(model, processor, templates=[template])(images, CLASSES, top_k=None)
    for row_got, row_expected in zip(got, expected):
        assert [r["label"] for r in row_got] == [label for label, _ in row_expected]
        assert [r["score"] for r in row_got] == pytest.approx([p for _, p in row_expected], abs=1e-5)


def test_retrieval_recall_by_hand():
    images = torch.eye(3)
    # text 0 -> image 0 ranked 1st; text 1 -> image 1 ranked 2nd; text 2 -> image 2 ranked 3rd.
    texts = torch.tensor([[1.0, 0.1, 0.0], [0.9, 0.5, 0.0], [0.6, 0.5, 0.1]])
    recall = retrieval_recall(images, texts, ks=(1, 2, 3))
    assert [recall[f"text_to_image_R@{k}"] for k in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 1])
    # image 0 ranks text 0 first; image 1 ranks text 1 first (0.5 ties text 2: ties favour the query);
    # image 2 ranks text 2 first.
    assert recall["image_to_text_R@1"] == pytest.approx(1.0)
    # Several texts per image: image 0 owns texts 0 and 2, image 1 owns text 1.
    two = retrieval_recall(torch.eye(2), torch.tensor([[0.1, 0.2], [0.1, 0.8], [0.9, 0.0]]), [0, 1, 0], ks=(1,))
    assert two["image_to_text_R@1"] == 1.0 and two["text_to_image_R@1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="text_to_image"):
        retrieval_recall(torch.eye(2), torch.eye(3))


def test_linear_probe_separates_separable_classes_and_picks_C_on_validation():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 16)) * 4

    def draw(n):
        y = np.repeat(np.arange(5), n)
        return centers[y] + rng.normal(size=(len(y), 16)), y

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = draw(4), draw(10), draw(10)
    result = linear_probe(train_x, train_y, val_x, val_y, test_x, test_y)
    assert result.accuracy == 1.0 and result.train_examples == 20
    C, accuracy = choose_C(train_x, train_y, val_x, val_y)
    assert C == result.C and accuracy == result.validation_accuracy == 1.0
    labels = [0] * 10 + [1] * 3 + [2] * 7
    chosen = few_shot_indices(labels, 4, seed=1)
    assert sorted(np.bincount(np.asarray(labels)[chosen]).tolist()) == [3, 4, 4]
    assert chosen == few_shot_indices(labels, 4, seed=1)


def test_evaluate_modules_equal_the_functions():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(12, 7)).astype(np.float32)
    targets = rng.integers(0, 7, 12).tolist()
    metric = evaluate.load(metric_path("zero_shot_accuracy"))
    got = metric.compute(predictions=scores.tolist(), references=targets, classnames=list("abcdefg"))
    expected = accuracy_from_logits(torch.tensor(scores), targets, list("abcdefg"))
    assert got["top1"] == pytest.approx(expected.top1) and got["top5"] == pytest.approx(expected.top5)
    assert got["per_class_top1"] == pytest.approx(expected.per_class)

    images, texts = rng.normal(size=(20, 8)), rng.normal(size=(20, 8))
    recall = evaluate.load(metric_path("retrieval_recall")).compute(predictions=images.tolist(), references=texts.tolist())
    unit = lambda x: F.normalize(torch.tensor(x, dtype=torch.float32), dim=-1)  # noqa: E731
    assert recall == pytest.approx(retrieval_recall(unit(images), unit(texts)))


def tiny_emoji_dataset(seed: int = 0) -> DatasetDict:
    subcategories = ["face-smiling", "animal-mammal", "transport-air"]
    features = Features({"image": ImageFeature(), "subcategory": Value("string"), "name": Value("string"),
                         "category": ClassLabel(names=["a", "b"]), "caption": Value("string")})

    def split(count: int, offset: int) -> Dataset:
        rows = [{"image": image, "subcategory": subcategories[i % 3], "name": f"thing {offset + i}",
                 "category": i % 2, "caption": f"A thing {offset + i} emoji"}
                for i, image in enumerate(random_images(count, seed + offset))]
        return Dataset.from_list(rows, features=features)

    return DatasetDict({"train": split(24, 0), "validation": split(9, 100), "test_style": split(12, 200)})


def test_eval_clip_command_writes_report_table_and_plots(tiny_clip, tmp_path, capsys):
    model, processor = tiny_clip
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    tiny_emoji_dataset().save_to_disk(tmp_path / "data")
    assert main(["eval-clip", str(tmp_path / "model"), str(tmp_path / "data"), "--shots", "1", "4",
                 "--out", str(tmp_path / "report"), "--card", "--recipe", "recipes/clip/emoji-small.yaml",
                 "--train-minutes", "1.5"]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["split"] == "test_style" and report["num_examples"] == 12
    assert set(report["zero_shot"]) == {"subcategory", "name"}
    assert set(report["zero_shot"]["subcategory"]) == {"simple", "emoji"}
    assert report["zero_shot"]["subcategory"]["simple"]["chance"] == pytest.approx(1 / 3)
    assert set(report["linear_probe"]["subcategory"]) == {"1", "4"}
    assert report["linear_probe"]["subcategory"]["4"]["train_examples"] == 12
    assert set(report["retrieval"]) == {f"{d}_R@{k}" for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)}
    for name in ("confusion_worst.png", "few_shot.png", "retrieval_examples.png"):
        assert (tmp_path / "report" / name).read_bytes()[:4] == b"\x89PNG"
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| subcategory (3 classes) | emoji |" in markdown and "![few_shot](few_shot.png)" in markdown
    assert "text to image" in capsys.readouterr().out
    card = ModelCard.load(tmp_path / "model" / "README.md")
    names = {metric.name for result in card.data.to_dict()["model-index"][0]["results"] for metric in
             [type("M", (), m) for m in result["metrics"]]}
    assert "zero-shot top-1, subcategory, emoji templates" in names and "4-shot linear probe top-1, subcategory" in names
    assert "few_shot.png" in card.text and "1 min 30 s" in card.text and "learning_rate" in card.text
