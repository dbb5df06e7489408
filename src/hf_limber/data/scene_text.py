"""Captions and question-answer pairs that are true of a scene by construction.

Everything said is derived from the layout: names from the catalogue, sizes and patch
colours as drawn, relations from grid cells. Cells never overlap, so an emoji in a lower
column index is wholly left of one in a higher index, and likewise for rows; "next to"
is said only of neighbouring cells in one row.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .language import be, capitalise, is_plural, with_article

NUMBER_WORDS = {0: "zero", 1: "one", 2: "two", 3: "three"}


@dataclass(frozen=True)
class Placed:
    """One emoji as drawn on the canvas."""

    noun: str
    name: str
    codepoints: str
    category: str
    size: str  # "small" or "large"
    patch: str | None  # colour name of the square behind it, if any
    row: int
    col: int
    box: tuple[int, int, int, int]

    @property
    def plural(self) -> bool:
        return is_plural(self.noun)

    @property
    def a(self) -> str:
        """The noun with an indefinite article (none for plurals)."""
        return with_article(self.noun, self.plural)


def position(row: int, col: int, grid: int) -> str:
    """Short position words: "top left", "top", "left", "center"."""
    rows = ["top", "bottom"] if grid == 2 else ["top", "middle", "bottom"]
    cols = ["left", "right"] if grid == 2 else ["left", "center", "right"]
    vertical, horizontal = (
        rows[round(row * (len(rows) - 1) / (grid - 1))],
        cols[round(col * (len(cols) - 1) / (grid - 1))],
    )
    if vertical == "middle" and horizontal == "center":
        return "center"
    if vertical == "middle":
        return horizontal
    if horizontal == "center":
        return vertical
    return f"{vertical} {horizontal}"


def position_phrase(row: int, col: int, grid: int) -> str:
    where = position(row, col, grid)
    if where == "center":
        return "in the center"
    if where in ("left", "right"):
        return f"on the {where}"
    if where in ("top", "bottom"):
        return f"at the {where}"
    return f"in the {where} corner"


def relations(a: Placed, b: Placed) -> list[str]:
    """Every relation phrase that holds for "a <phrase> b"."""
    found = []
    if a.col < b.col:
        found.append("to the left of")
    if a.col > b.col:
        found.append("to the right of")
    if a.row < b.row:
        found.append("above")
    if a.row > b.row:
        found.append("below")
    if a.row == b.row and abs(a.col - b.col) == 1:
        found.append("next to")
    return found


def _full(obj: Placed) -> str:
    text = with_article(f"{obj.size} {obj.noun}", obj.plural)
    return text + (f" on {with_article(obj.patch)} square" if obj.patch else "")


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def captions(objects: list[Placed], grid: int, background: str, rng: random.Random, count: int) -> list[str]:
    """``count`` different reference captions, each true of the scene, in several phrasings.

    ``background`` is how captions name the canvas: "plain white", or just "plain".
    """
    unique: dict[str, None] = {}
    for _ in range(20):  # passes with fresh random choices until there are enough distinct sentences
        sentences = _single(objects, grid, background, rng) if len(objects) == 1 else _several(objects, grid, rng)
        unique.update(dict.fromkeys(capitalise(sentence) + "." for sentence in sentences))
        if len(unique) >= 2 * count:
            break
    chosen = list(unique)
    rng.shuffle(chosen)
    return chosen[:count]


def summary(objects: list[Placed]) -> str:
    """The scene's objects in reading order (row by row, left to right), e.g. "Two emoji: grapes and a candy.":
    the order LiMBeR's per-cell soft prompts come in, so a LiMBeR trained on it says cell i's object i-th
    (issue 16: with ideal cell features 90% of the objects of unseen scenes named, against 10% trained on the
    references)."""
    ordered = sorted(objects, key=lambda o: (o.row, o.col))
    return capitalise(f"{NUMBER_WORDS[len(objects)]} emoji: {_listing([o.a for o in ordered])}") + "."


def _single(objects: list[Placed], grid: int, background: str, rng: random.Random) -> list[str]:
    obj = objects[0]
    where = position_phrase(obj.row, obj.col, grid)
    sized = with_article(f"{obj.size} {obj.noun}", obj.plural)
    sentences = [
        f"{_full(obj)} {where}",
        f"there {be(obj.noun)} {_full(obj)} {where}",
        f"{where}, there {be(obj.noun)} {_full(obj)}",
        f"a single emoji showing {obj.a}",
        f"an image of {sized} {where}",
        f"{sized} on a {background} background"
        if not obj.patch
        else f"{sized} sitting on {with_article(obj.patch)} square",
        f"one {obj.size} emoji: {obj.a}",
    ]
    return rng.sample(sentences, len(sentences))


def _several(objects: list[Placed], grid: int, rng: random.Random) -> list[str]:
    pairs = [(a, b) for a in objects for b in objects if a is not b]
    a, b = rng.choice(pairs)
    relation = rng.choice(relations(a, b))
    others = [o for o in objects if o is not a and o is not b]
    nouns = [o.a for o in rng.sample(objects, len(objects))]
    sentences = [
        f"{_full(a)} {relation} {_full(b)}",
        f"the {a.noun} {be(a.noun)} {relation} the {b.noun}",
        f"{NUMBER_WORDS[len(objects)]} emoji: {_listing(nouns)}",
        f"a picture with {_listing([_full(o) for o in objects])}",
        _listing([f"{_full(o)} {position_phrase(o.row, o.col, grid)}" for o in objects]),
    ]
    if others:
        c = others[0]
        sentences.append(f"{_full(a)} {relation} {_full(b)}, and {c.a} {position_phrase(c.row, c.col, grid)}")
    return sentences


def _answers(canonical: str, variants: list[str], rng: random.Random, disagreeing: int) -> list[str]:
    """Ten answers as ten VQA annotators might give: mostly ``canonical``, some variants.

    At most three disagree, so the canonical answer keeps full VQA accuracy (min(n/3, 1)).
    """
    answers = [canonical] * 10
    for slot in rng.sample(range(10), disagreeing if variants else 0):
        answers[slot] = rng.choice(variants)
    return answers


def _qa(question: str, question_type: str, answer_type: str, answers: list[str]) -> dict:
    majority = max(dict.fromkeys(answers), key=answers.count)
    return {
        "question": question,
        "question_type": question_type,
        "answer_type": answer_type,
        "answers": answers,
        "multiple_choice_answer": majority,
    }


_WHERE_VARIANTS = {
    "top left": ["upper left", "top left corner"],
    "top right": ["upper right", "top right corner"],
    "bottom left": ["lower left", "bottom left corner"],
    "bottom right": ["lower right", "bottom right corner"],
    "top": ["at the top", "top middle"],
    "bottom": ["at the bottom", "bottom middle"],
    "left": ["on the left", "middle left"],
    "right": ["on the right", "middle right"],
    "center": ["middle", "in the center"],
}


def questions(objects: list[Placed], absent_noun: str, grid: int, rng: random.Random) -> list[dict]:
    """What / where / how many / yes-no questions with VQA-shaped answer lists."""
    n = len(objects)
    target = rng.choice(objects)
    where = position(target.row, target.col, grid)
    head = target.noun.split()[-1]
    qa = [
        _qa(
            "How many emoji are there?",
            "how many",
            "number",
            _answers(str(n), [NUMBER_WORDS[n]], rng, rng.randint(0, 1)),
        ),
        _qa(
            f"What is in the {where}?",
            "what",
            "other",
            _answers(target.noun, [head] if head != target.noun else [], rng, rng.randint(0, 2)),
        ),
        _qa(
            f"Where {be(target.noun)} the {target.noun}?",
            "where",
            "other",
            _answers(where, _WHERE_VARIANTS[where], rng, rng.randint(0, 3)),
        ),
        _qa(f"{capitalise(be(target.noun))} there {target.a}?", "yes/no", "yes/no", ["yes"] * 10),
        _qa(
            f"{capitalise(be(absent_noun))} there {with_article(absent_noun, is_plural(absent_noun))}?",
            "yes/no",
            "yes/no",
            ["no"] * 10,
        ),
    ]
    size = rng.choice(["small", "large"])
    count = sum(o.size == size for o in objects)
    qa.append(
        _qa(
            f"How many {size} emoji are there?",
            "how many",
            "number",
            _answers(str(count), [NUMBER_WORDS[count]], rng, rng.randint(0, 1)),
        )
    )
    qa.append(
        _qa(
            f"{capitalise(be(target.noun))} the {target.noun} {size}?",
            "yes/no",
            "yes/no",
            ["yes" if target.size == size else "no"] * 10,
        )
    )
    if n > 1:
        other = rng.choice([o for o in objects if o is not target])
        relation = rng.choice(["to the left of", "to the right of", "above", "below"])
        truth = "yes" if relation in relations(target, other) else "no"
        qa.append(
            _qa(
                f"{capitalise(be(target.noun))} the {target.noun} {relation} the {other.noun}?",
                "yes/no",
                "yes/no",
                [truth] * 10,
            )
        )
    patched = [o for o in objects if o.patch]
    if patched:
        obj = rng.choice(patched)
        qa.append(_qa(f"What color is the square behind the {obj.noun}?", "what", "other", [obj.patch] * 10))
        qa.append(_qa(f"What is on the {obj.patch} square?", "what", "other", [obj.noun] * 10))
    return qa
