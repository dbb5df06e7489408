"""CHAIR (Rohrbach et al. 2018, "Object Hallucination in Image Captioning"): how many of the objects a
caption names are not in the image.

A caption's object mentions are found by longest-phrase match over lower-cased words against a
vocabulary of object nouns, their plurals and their synonyms; each object counts once per caption.
CHAIR-i is hallucinated mentions / all mentions, over every caption; CHAIR-s the share of captions
with at least one hallucinated object.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class ChairResult:
    chair_i: float
    chair_s: float
    mentioned: list[list[str]]      # per caption, the objects it names (canonical nouns, in order)
    hallucinated: list[list[str]]   # per caption, those not in its references


def plurals(noun: str) -> set[str]:
    """English plural spellings of a noun's last word (regular rules, -y -> -ies, -f -> -ves)."""
    *head, last = noun.split()
    forms = {last + "s", last + "es"}
    if last.endswith("y") and last[-2:-1] not in "aeiou":
        forms.add(last[:-1] + "ies")
    if last.endswith("f"):
        forms.add(last[:-1] + "ves")
    if last.endswith("fe"):
        forms.add(last[:-2] + "ves")
    if last.endswith("man"):
        forms.add(last[:-3] + "men")
    return {" ".join([*head, form]) for form in forms}


def vocabulary_lookup(synonyms: Mapping[str, Iterable[str]]) -> dict[tuple[str, ...], str]:
    table: dict[tuple[str, ...], str] = {}
    for noun, others in synonyms.items():
        for spelling in {noun, *others}:
            for form in {spelling, *plurals(spelling)}:
                table.setdefault(tuple(WORD.findall(form.lower())), noun)
    table.pop((), None)
    return table


def object_mentions(caption: str, lookup: Mapping[tuple[str, ...], str]) -> list[str]:
    """The canonical nouns a caption names, each once, in order of first mention; longest phrase wins
    ("hot dog" is not a dog)."""
    words = WORD.findall(caption.lower())
    longest = max((len(key) for key in lookup), default=0)
    found: list[str] = []
    position = 0
    while position < len(words):
        for size in range(min(longest, len(words) - position), 0, -1):
            noun = lookup.get(tuple(words[position : position + size]))
            if noun is not None:
                if noun not in found:
                    found.append(noun)
                position += size
                break
        else:
            position += 1
    return found


def chair(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    synonyms: Mapping[str, Iterable[str]] | None = None,
) -> ChairResult:
    """CHAIR-i and CHAIR-s of ``predictions`` against each image's object nouns.

    ``synonyms`` maps each object noun of the vocabulary to other words for it; without it the
    vocabulary is every noun in ``references``. Reference words are mapped to their noun the same
    way, so a reference may use a synonym or a plural.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists: give one list of "
                         "object nouns per caption.")
    if synonyms is None:
        synonyms = {noun.lower(): () for nouns in references for noun in nouns}
    lookup = vocabulary_lookup(synonyms)
    mentioned, hallucinated = [], []
    for caption, nouns in zip(predictions, references, strict=True):
        present = {noun for reference in nouns for noun in object_mentions(reference, lookup)}
        named = object_mentions(caption, lookup)
        mentioned.append(named)
        hallucinated.append([noun for noun in named if noun not in present])
    mentions = sum(len(named) for named in mentioned)
    return ChairResult(
        chair_i=sum(len(wrong) for wrong in hallucinated) / mentions if mentions else 0.0,
        chair_s=sum(bool(wrong) for wrong in hallucinated) / len(predictions) if predictions else 0.0,
        mentioned=mentioned,
        hallucinated=hallucinated,
    )


def scene_synonyms(scenes: Iterable[Mapping]) -> dict[str, list[str]]:
    """The CHAIR vocabulary of emoji scenes: every object noun the scenes use (their concept names as
    captions say them), each with the CLDR name as a synonym where the two differ."""
    vocabulary: dict[str, list[str]] = {}
    for scene in scenes:
        for obj in scene["objects"]:
            names = vocabulary.setdefault(obj["noun"], [])
            name = obj.get("name")
            if name and name != obj["noun"] and name not in names:
                names.append(name)
    return vocabulary
