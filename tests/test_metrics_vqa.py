"""VQA accuracy and answer normalisation, on cases worked by hand from the official definition."""

import evaluate
import pytest

from hf_limber.evaluation import answer_accuracy, normalize_answer, truncate_answer, vqa_accuracy
from hf_limber.metrics import metric_path


@pytest.mark.parametrize(("answer", "normalised"), [
    ("Two dogs!", "2 dogs"),            # "!" touches no space: becomes a space; number word; case
    ("The cat.", "cat"),                # article; sentence period
    ("an apple", "apple"),
    ("None", "0"),
    ("dont know", "don't know"),        # contraction gets its apostrophe
    ("whats up", "what's up"),
    ("3.5", "3.5"),                     # a period before a digit stays
    ("t-shirt", "t shirt"),             # "-" touching no space becomes a space ...
    ("t - shirt", "t shirt"),           # ... and is removed where it touches one
    ("1,000", "1000"),                  # a comma between digits: punctuation removed, not spaced
    ("red,white", "red white"),
    ("yes\n", "yes"),
    ("Im", "im"),                       # the official table spells "I'm" with a capital: never applies
    ("ten o'clock", "10 o'clock"),
])
def test_normalize_answer(answer, normalised):
    assert normalize_answer(answer) == normalised


@pytest.mark.parametrize(("matching_humans", "accuracy"), [
    (0, 0.0),
    (1, 0.3),   # 9 subsets hold the one match: 9 * 1/3 / 10
    (2, 0.6),   # 2 subsets hold 1 match, 8 hold 2: (2/3 + 16/3) / 10
    (3, 0.9),   # 3 subsets hold 2 matches, 7 hold 3: (3 * 2/3 + 7) / 10
    (4, 1.0),   # every subset holds at least 3
    (10, 1.0),
])
def test_leave_one_out_average(matching_humans, accuracy):
    answers = ["cat"] * matching_humans + ["dog"] * (10 - matching_humans)
    assert answer_accuracy("Cat.", answers) == pytest.approx(accuracy)


def test_human_answers_get_the_punctuation_step_only_when_they_disagree():
    # Disagreeing answers are punctuation-normalised, so "t-shirt" meets the prediction's "t shirt".
    assert answer_accuracy("t-shirt", ["t-shirt"] * 5 + ["shirt"] * 5) == 1.0
    # Unanimous answers are compared as the dataset ships them (already normalised in VQA).
    assert answer_accuracy("t-shirt", ["t-shirt"] * 10) == 0.0
    assert answer_accuracy("t-shirt", ["t shirt"] * 10) == 1.0
    # Number words are normalised on the prediction side only.
    assert answer_accuracy("two", ["2"] * 10) == 1.0
    assert answer_accuracy("2", ["two"] * 10) == 0.0


def test_vqa_accuracy_is_the_mean_in_percent():
    result = vqa_accuracy(["Two.", "yes", "no"], [["2"] * 10, ["yes"] * 3 + ["no"] * 7, ["yes"] * 10])
    assert result.scores == pytest.approx([1.0, 0.9, 0.0])
    assert result.accuracy == pytest.approx(100 * 1.9 / 3)


def test_errors_say_what_to_pass():
    with pytest.raises(ValueError, match="one list of human answers per predicted answer"):
        vqa_accuracy(["yes"], [])
    with pytest.raises(ValueError, match="not a single string"):
        answer_accuracy("yes", "yes")


def test_evaluate_module_gives_the_function_result():
    metric = evaluate.load(metric_path("vqa_accuracy"))
    predictions = ["Two.", "yes", "blue"]
    references = [["2"] * 10, ["yes"] * 3 + ["no"] * 7, ["blue", "navy"] * 5]
    result = metric.compute(predictions=predictions, references=references)
    expected = vqa_accuracy(predictions, references)
    assert result == {"accuracy": pytest.approx(expected.accuracy), "scores": pytest.approx(expected.scores)}


@pytest.mark.parametrize(("prediction", "answers", "cut"), [
    ("no, the mango is not large", ["no"] * 10, "no"),
    ("Top left corner of the picture", ["top left", "upper left", "top left corner"], "top left corner"),
    ("two emoji", ["2", "two"], "2"),              # normalised first: "two" -> "2", then one word
    ("", ["yes"], ""),
])
def test_answers_are_cut_to_the_longest_human_answer(prediction, answers, cut):
    assert truncate_answer(prediction, answers) == cut
    assert answer_accuracy(truncate_answer("no, the mango is not large", ["no"] * 10), ["no"] * 10) == 1.0
