"""CHAIR on hand-worked captions: mentions, plurals, synonyms, longest phrases, once per caption."""

from __future__ import annotations

import evaluate
import pytest

from hf_limber.evaluation.chair import chair, object_mentions, plurals
from hf_limber.metrics import metric_path


def test_the_docstring_example_worked_by_hand():
    # caption 1 names cat, table (both there); caption 2 names cat (not there) and banana (there):
    # 1 hallucinated of 4 mentions, 1 of 2 captions.
    result = chair(["a cat on a table.", "a cat and a banana."], [["cat", "table"], ["banana"]])
    assert result.chair_i == 0.25 and result.chair_s == 0.5
    assert result.mentioned == [["cat", "table"], ["cat", "banana"]]
    assert result.hallucinated == [[], ["cat"]]


def test_plurals_count_as_their_noun_and_each_object_counts_once():
    result = chair(["two cats and a cat, three puppies, two knives"], [["cat"]],
                   synonyms={"cat": [], "dog": ["puppy"], "knife": [], "strawberry": []})
    assert result.mentioned == [["cat", "dog", "knife"]]
    assert result.chair_i == pytest.approx(2 / 3) and result.chair_s == 1.0
    assert {"strawberries", "knives", "boxes"} <= plurals("strawberry") | plurals("knife") | plurals("box")


def test_the_longest_phrase_wins_and_unknown_words_are_not_judged():
    lookup_vocabulary = {"hot dog": [], "dog": [], "ice cream": []}
    result = chair(["a hot dog next to ice cream and a spaceship"], [["hot dog", "ice cream"]],
                   synonyms=lookup_vocabulary)
    assert result.mentioned == [["hot dog", "ice cream"]] and result.chair_i == 0.0


def test_references_may_use_synonyms_and_an_empty_caption_mentions_nothing():
    synonyms = {"dog": ["puppy", "hound"], "cat": ["kitten"]}
    result = chair(["a kitten and a hound.", ""], [["cat", "puppy"], ["dog"]], synonyms=synonyms)
    assert result.mentioned == [["cat", "dog"], []] and result.chair_i == 0.0 and result.chair_s == 0.0
    assert object_mentions("Puppies!", {("puppy",): "dog", ("puppies",): "dog"}) == ["dog"]


def test_mismatched_lengths_are_a_clear_error():
    with pytest.raises(ValueError, match="one list of object nouns per caption"):
        chair(["a cat"], [])


def test_the_evaluate_module_agrees():
    module = evaluate.load(metric_path("chair"))
    result = module.compute(predictions=["a cat on a table.", "a cat and a banana."],
                            references=[["cat", "table"], ["banana"]])
    assert result["chair_i"] == 0.25 and result["chair_s"] == 0.5 and result["hallucinated"] == [[], ["cat"]]
    with_synonyms = module.compute(predictions=["three puppies"], references=[["cat"]], synonyms={"dog": ["puppy"]})
    assert with_synonyms["chair_i"] == 1.0
