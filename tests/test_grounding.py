"""Object recall, hallucination and loops per caption, worked by hand."""

from __future__ import annotations

import pytest

from hf_limber.evaluation.grounding import grounding_scores, repeats_a_trigram

SYNONYMS = {"cat": [], "dog": ["puppy"], "apple": [], "hot dog": []}


def test_scores_per_caption():
    scores = grounding_scores(
        ["A cat next to two puppies.", "An apple and a cat with a hat with a hat.", "A hot dog."],
        [["cat", "dog"], ["apple"], ["dog"]],
        SYNONYMS,
    )
    assert scores.recall == [1.0, 1.0, 0.0]          # "hot dog" is not the scene's dog
    assert scores.mentioned == [2, 2, 1] and scores.hallucinated == [0, 1, 1]
    assert scores.loops == [False, True, False]
    intervals = scores.intervals()
    assert intervals["object_recall"].estimate == pytest.approx(2 / 3)
    assert intervals["chair_i"].estimate == pytest.approx(2 / 5)
    assert intervals["chair_s"].estimate == pytest.approx(2 / 3)
    assert intervals["loops"].estimate == pytest.approx(1 / 3)


def test_a_trigram_repeat_is_a_loop_and_a_word_repeat_is_not():
    assert repeats_a_trigram("a red square and a red square")
    assert not repeats_a_trigram("a cat and a dog and a bird")
    with pytest.raises(ValueError, match="one object list per caption"):
        grounding_scores(["a cat"], [], SYNONYMS)
