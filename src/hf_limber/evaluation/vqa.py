"""VQA accuracy as the official VQA evaluation computes it (Antol et al. 2015; Goyal et al. 2017).

An answer counts as fully right when at least 3 of the human annotators gave it. To smooth over
annotator noise, the official code scores a prediction against each leave-one-out subset of the
(ten) human answers, `min(matches among the others / 3, 1)`, and averages. Before matching, the
prediction is normalised: punctuation, periods, case, number words, articles and contractions
without apostrophes; the human answers get the punctuation step when they disagree.
LiMBeR (Merullo et al. 2023) reports this metric for VQAv2.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .captions import check_references

# The official code removes these characters where they touch a space (or when the text has a
# comma between digits) and replaces them with a space everywhere else ("t-shirt" -> "t shirt").
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
DIGIT_COMMA = re.compile(r"(\d)(,)(\d)")
# A period is dropped unless a digit follows it ("3.5" survives, "yes." loses its period).
PERIOD = re.compile(r"\.(?!\d)")

NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
ARTICLES = frozenset({"a", "an", "the"})


def _contraction_table() -> dict[str, str]:
    """Spellings without an apostrophe -> the contraction, as the official table has them.

    A contraction with one apostrophe is recognised without it ("dont"); one with several, with
    any single apostrophe missing ("couldnt've", "couldn'tve"). Words that are also ordinary
    words ("its", "well", "were", "hell") are not in the table. The official table spells "I"
    in upper case although it lower-cases answers first, so those entries never apply; and it maps
    "somebody'd" to "somebodyd". Both kept, to give the official numbers.
    """
    contractions = (
        "ain't aren't can't could've couldn't didn't doesn't don't hadn't hasn't haven't he'd he's how'd "
        "how'll how's I'm I've isn't it'd it'll ma'am mightn't might've mustn't must've needn't not've "
        "o'clock oughtn't shan't should've shouldn't somebody'll somebody's someone'd someone'll someone's "
        "something'd something'll that's there'd there're there's they'd they'll they're they've 'twas "
        "wasn't we've weren't what'll what're what's what've when's where'd where's where've who'd who'll "
        "who's who've why'll why're why's won't would've wouldn't y'all you'd you'll you're you've "
        "couldn't've hadn't've he'd've I'd've it'd've mightn't've 'ow's'at she'd've shouldn't've "
        "somebody'd've someone'd've something'd've there'd've they'd've we'd've who'd've wouldn't've "
        "y'all'll y'all'd've you'd've"
    ).split()
    table = {"let's": "let's", "she's": "she's", "somebody'd": "somebodyd"}
    for word in contractions:
        apostrophes = [i for i, ch in enumerate(word) if ch == "'"]
        for i in apostrophes:
            table[word[:i] + word[i + 1 :]] = word
    return table


CONTRACTIONS = _contraction_table()


def _strip_punctuation(text: str) -> str:
    spaced_or_number = DIGIT_COMMA.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        touches_space = f"{mark} " in text or f" {mark}" in text
        out = out.replace(mark, "" if touches_space or spaced_or_number else " ")
    return PERIOD.sub("", out)


def _normalise_words(text: str) -> str:
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES)


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(text: str) -> str:
    """An answer as the official VQA evaluation compares it: "Two dogs!" -> "2 dogs".

    Lower case; punctuation and sentence periods removed; number words up to ten as digits;
    articles dropped; apostrophes restored in contractions ("dont" -> "don't").
    """
    return _normalise_words(_strip_punctuation(_clean(text)))


@dataclass(frozen=True)
class VqaResult:
    """Accuracy in percent (the mean over questions x 100, as the official code reports it,
    unrounded) and each question's accuracy in [0, 1], in input order."""

    accuracy: float
    scores: list[float]


def answer_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """One question's VQA accuracy: the mean over leave-one-out subsets of min(matches / 3, 1).

    `answers` are the human answers of the dataset (ten in VQAv2), which the official data ships
    already normalised; they get only the punctuation step, and only when they disagree.
    """
    if isinstance(answers, str) or not answers:
        raise ValueError("Pass the list of human answers of the question (ten in VQAv2), not a single string.")
    predicted = normalize_answer(prediction)
    answers = [_clean(answer) for answer in answers]
    if len(set(answers)) > 1:
        answers = [_strip_punctuation(answer) for answer in answers]
    matches = sum(answer == predicted for answer in answers)
    # Leaving out a matching answer leaves matches - 1 among the others; any other, matches.
    per_subset = [min((matches - (answer == predicted)) / 3, 1.0) for answer in answers]
    return sum(per_subset) / len(per_subset)


def truncate_answer(prediction: str, answers: Sequence[str]) -> str:
    """The prediction cut to as many words as the longest human answer: a frozen LM answers in
    sentences ("no, the mango is small"), and open-ended VQA of frozen LMs (MAGMA, LiMBeR) scores
    only that many of its first words."""
    longest = max(len(normalize_answer(answer).split()) for answer in answers)
    return " ".join(normalize_answer(prediction).split()[: max(longest, 1)])


def vqa_accuracy(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> VqaResult:
    """VQA accuracy of predicted answers, each against its question's list of human answers."""
    check_references(predictions, references, "VQA accuracy", prediction="predicted answer", reference="human answers")
    scores = [answer_accuracy(prediction, answers) for prediction, answers in zip(predictions, references)]
    return VqaResult(accuracy=100 * sum(scores) / len(scores), scores=scores)
