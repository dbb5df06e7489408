"""Emoji scenes: layouts, captions true of the picture, VQA-shaped questions, splits, determinism."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import datasets
import pytest

from hf_limber.data import build_emoji_scenes
from hf_limber.data.catalog import assign_split, normalise_codepoints
from hf_limber.data.scene_text import Placed, captions, position, questions, relations, summary
from hf_limber.data.scenes import PATCH_COLOURS, PATCH_INSET

SIZE = 64
GRID = 2
SEED = 5
VALIDATION_FRACTION = 0.25
BUILD = dict(
    limit=60,
    num_scenes=32,
    num_test_scenes=8,
    image_size=SIZE,
    grid=GRID,
    seed=SEED,
    validation_fraction=VALIDATION_FRACTION,
    progress=False,
)


@pytest.fixture(scope="module")
def tile_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("scene-tiles")


@pytest.fixture(scope="module")
def built(tmp_path_factory, tile_cache):
    out = tmp_path_factory.mktemp("scenes")
    return out, build_emoji_scenes(out, cache_dir=tile_cache, **BUILD)


def _placed(row: int, col: int, noun: str = "cat", size: str = "small", patch: str | None = None) -> Placed:
    return Placed(
        noun=noun,
        name=noun,
        codepoints="1F431",
        category="Animals & Nature",
        size=size,
        patch=patch,
        row=row,
        col=col,
        box=(0, 0, 1, 1),
    )


def test_relations_follow_grid_cells():
    a, b, c = _placed(0, 0, "cat"), _placed(0, 1, "dog"), _placed(1, 1, "pizza")
    assert set(relations(a, b)) == {"to the left of", "next to"}
    assert set(relations(b, a)) == {"to the right of", "next to"}
    assert set(relations(a, c)) == {"to the left of", "above"}
    assert set(relations(c, b)) == {"below"}
    assert position(0, 0, 2) == "top left" and position(1, 1, 3) == "center" and position(0, 1, 3) == "top"


def test_plural_names_take_plural_verbs():
    rng = random.Random(1)
    tickets = _placed(0, 0, "admission tickets")
    assert tickets.plural and not _placed(0, 0, "face with tears of joy").plural
    assert not _placed(0, 0, "octopus").plural and not _placed(0, 0, "glass of milk").plural
    sentences = captions([tickets], 2, "plain white", rng, 5)
    assert not any("a admission" in s or "an admission" in s or "tickets is" in s for s in sentences)
    asked = [qa["question"] for qa in questions([tickets, _placed(1, 1, "dog")], "beans", 2, rng)]
    assert "Where are the admission tickets?" in asked and "Are there beans?" in asked


def test_captions_are_distinct_and_name_every_relation_truthfully():
    rng = random.Random(0)
    objects = [_placed(0, 0, "cat", "large", "red"), _placed(1, 1, "dog")]
    sentences = captions(objects, 2, "plain white", rng, 5)
    assert len(sentences) == 5 == len(set(sentences))
    for sentence in sentences:
        assert "cat" in sentence or "dog" in sentence
        assert "dog to the left of" not in sentence and "cat below" not in sentence
        assert "the dog is above" not in sentence and "the cat is to the right of" not in sentence


def test_the_summary_names_every_object_in_reading_order():
    objects = [_placed(1, 0, "dog", "large"), _placed(0, 1, "admission tickets"), _placed(0, 0, "apple")]
    assert summary(objects) == "Three emoji: an apple, admission tickets and a dog."
    assert summary([_placed(1, 1, "cat")]) == "One emoji: a cat."


def _concept_split(obj: dict) -> str:
    return assign_split(normalise_codepoints(obj["codepoints"]), SEED, VALIDATION_FRACTION)


def test_splits_styles_and_columns(built):
    _, dataset = built
    assert list(dataset) == ["train", "validation", "test_novel_concepts", "test_openmoji"]
    assert dataset["train"].num_rows == 32
    assert all(dataset[split].num_rows == 8 for split in ("validation", "test_novel_concepts", "test_openmoji"))
    assert set(dataset["test_openmoji"]["style"]) == {"openmoji"}
    trained_styles = set(dataset["train"]["style"])
    assert "openmoji" not in trained_styles | set(dataset["validation"]["style"])
    assert dataset["train"].column_names == ["image", "scene_id", "style", "captions", "summary", "objects",
                                                 "questions"]
    # Seen concepts everywhere but in test_novel_concepts, which shows only concepts training never names.
    for split, expected in (("train", "train"), ("validation", "train"), ("test_openmoji", "train"),
                            ("test_novel_concepts", "validation")):
        assert {_concept_split(obj) for row in dataset[split] for obj in row["objects"]} == {expected}, split
    # Validation scenes are new pictures, not copies of training scenes.
    assert not {row["scene_id"] for row in dataset["validation"]} & {row["scene_id"] for row in dataset["train"]}
    train_layouts = {json.dumps(row["objects"], sort_keys=True) for row in dataset["train"]}
    assert not any(json.dumps(row["objects"], sort_keys=True) in train_layouts for row in dataset["validation"])


def test_the_common_nouns_vocabulary_names_plain_things_every_style_draws(tmp_path, tile_cache):
    from hf_limber.data.plan import plan_build
    from hf_limber.data.vocabulary import scene_noun

    plan = plan_build(vocabulary="common-nouns")
    nouns = [scene_noun(c) for c in plan.catalog.concepts]
    assert 200 <= len(nouns) == len(set(nouns)) <= 320
    assert {"dog", "cat", "banana", "bicycle", "guitar"} <= set(nouns)
    assert all(re.fullmatch(r"[a-z]+", noun) for noun in nouns)
    assert not {"face", "flag", "ox", "dna"} & set(nouns)  # faces, symbols, rare words
    for source in plan.report.found.values():
        index = source.index(plan.catalog)
        assert all(c.key in index for c in plan.catalog.concepts), source.style
    scenes = build_emoji_scenes(tmp_path / "nouns", cache_dir=tile_cache, vocabulary="common-nouns",
                                **{**BUILD, "limit": None})
    assert {o["noun"] for row in scenes["train"] for o in row["objects"]} <= set(nouns)
    with pytest.raises(ValueError, match="Unknown vocabulary 'rare'"):
        plan_build(vocabulary="rare")


def test_scene_content_matches_the_picture(built):
    _, dataset = built
    counts = Counter()
    for rows in dataset.values():
        for row in rows:
            image, objects = row["image"], row["objects"]
            assert image.size == (SIZE, SIZE) and image.mode == "RGB"
            assert 1 <= len(objects) <= 3
            counts[len(objects)] += 1
            assert len({(o["row"], o["col"]) for o in objects}) == len(objects)
            cell = SIZE / GRID
            for obj in objects:
                x0, y0, x1, y1 = obj["box"]
                # The emoji lies inside its own cell, so relations between cells hold in pixels.
                assert obj["col"] * cell - 1 <= x0 and x1 <= (obj["col"] + 1) * cell + 1
                assert obj["row"] * cell - 1 <= y0 and y1 <= (obj["row"] + 1) * cell + 1
                if obj["patch_color"]:
                    # The coloured square shows in the rim between the cell's edge and the emoji.
                    rim = (int((obj["col"] + 0.5) * cell), int(obj["row"] * cell + PATCH_INSET * cell) + 1)
                    assert rim[1] < y0
                    colour = image.getpixel(rim)
                    assert max(abs(a - b) for a, b in zip(colour, PATCH_COLOURS[obj["patch_color"]], strict=True)) < 40
            caps = row["captions"]
            assert len(caps) == 5 == len(set(caps))
            assert all(any(o["noun"] in c for o in objects) for c in caps)
    assert set(counts) == {1, 2, 3}


def test_questions_are_vqa_shaped_and_correct(built):
    _, dataset = built
    types = Counter()
    for row in dataset["train"]:
        objects = {o["noun"]: o for o in row["objects"]}
        for qa in row["questions"]:
            types[qa["question_type"]] += 1
            assert len(qa["answers"]) == 10
            assert qa["multiple_choice_answer"] == Counter(qa["answers"]).most_common(1)[0][0]
            # The majority answer keeps full VQA accuracy: at least 3 of 10 agree.
            assert qa["answers"].count(qa["multiple_choice_answer"]) >= 3
            answer, question = qa["multiple_choice_answer"], qa["question"]
            if question == "How many emoji are there?":
                assert answer == str(len(objects))
            where = re.fullmatch(r"Where (?:is|are) the (.+)\?", question)
            if where:
                obj = objects[where[1]]
                assert answer == position(obj["row"], obj["col"], GRID)
            if question.startswith("What is in the "):
                assert (
                    position(objects[answer]["row"], objects[answer]["col"], GRID)
                    == question[len("What is in the ") : -1]
                )
            relation = re.fullmatch(
                r"(?:Is|Are) the (.+) (to the left of|to the right of|above|below) the (.+)\?", question
            )
            if relation:
                first, phrase, second = relation.groups()
                a, b = (_placed(objects[n]["row"], objects[n]["col"], n) for n in (first, second))
                assert answer == ("yes" if phrase in relations(a, b) else "no")
    assert {"what", "where", "how many", "yes/no"} <= set(types)


def test_same_seed_gives_identical_scenes(built, tmp_path, tile_cache):
    _, first = built
    second = build_emoji_scenes(tmp_path / "again", cache_dir=tile_cache, **BUILD)
    for split in first:
        a = first[split].cast_column("image", datasets.Image(decode=False))
        b = second[split].cast_column("image", datasets.Image(decode=False))
        assert a.to_dict() == b.to_dict(), split


def test_patch_probability_and_object_sizes_are_options(built, tmp_path, tile_cache):
    _, default = built
    patches = [o["patch_color"] for row in default["train"] for o in row["objects"]]
    assert 0 < sum(p is not None for p in patches) < len(patches)  # the default draws some (40%)
    plain = build_emoji_scenes(tmp_path / "plain", cache_dir=tile_cache,
                               **{**BUILD, "patch_probability": 0.0, "object_sizes": (0.5, 1.0)})
    assert all(o["patch_color"] is None for row in plain["train"] for o in row["objects"])
    cell = SIZE // GRID
    assert {o["size"]: o["box"][2] - o["box"][0] for row in plain["train"] for o in row["objects"]} == \
        {"small": cell // 2, "large": cell}
    # The scenes' own draws stay in step up to the first patch: the same cells, the same first object.
    def layout(rows):
        return [([(o["row"], o["col"]) for o in row["objects"]], row["objects"][0]["noun"]) for row in rows]

    assert layout(plain["train"]) == layout(default["train"])
    with pytest.raises(ValueError, match="patch_probability"):
        build_emoji_scenes(tmp_path / "bad", cache_dir=tile_cache, **{**BUILD, "patch_probability": 1.5})
    with pytest.raises(ValueError, match="object_sizes"):
        build_emoji_scenes(tmp_path / "bad", cache_dir=tile_cache, **{**BUILD, "object_sizes": (0.8, 0.5)})


def test_card_and_report(built):
    out, dataset = built
    card = (out / "README.md").read_text()
    report = json.loads((out / "build_report.json").read_text())
    assert "visual-question-answering" in card and "First image's captions" in card
    for style in report["styles"]:
        assert (out / "examples" / f"{style}.png").is_file()
    assert sum(sum(v.values()) for v in report["splits"].values()) == sum(d.num_rows for d in dataset.values())
