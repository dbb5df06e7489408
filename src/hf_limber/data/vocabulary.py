"""Which concepts a build draws, and the noun a caption names each one by.

`all` keeps every concept whose name reads as one thing. `common-nouns` keeps plain, one-word common
nouns of concrete things (animals, plants, food, vehicles, instruments, tools, household objects...)
that every found artwork style draws: the vocabulary a small CLIP trained on a CPU can learn to tell
apart and a small LM already knows the words for. Measured (issue 16): with oracle features a
LiMBeR map started by least squares names a third of the objects of unseen scenes of these 254
nouns within 1,600 captions; a CPU-trained ResNet CLIP names 17.7% of them zero-shot in a
held-out artwork style (45x chance).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .catalog import Concept
from .language import noun_phrase

VOCABULARIES = ("all", "common-nouns")

# Subcategories whose emoji are concrete objects (no faces, people, gestures, symbols or flags).
OBJECT_SUBCATEGORIES = frozenset({
    "animal-mammal", "animal-bird", "animal-marine", "animal-bug", "animal-reptile", "animal-amphibian",
    "plant-flower", "plant-other", "food-fruit", "food-vegetable", "food-prepared", "food-sweet", "food-asian",
    "drink", "dishware", "transport-ground", "transport-water", "transport-air", "musical-instrument", "tool",
    "household", "clothing", "sport", "office", "writing", "science", "medical", "light & video", "computer",
    "phone", "book-paper", "game",
})
# One-word names that are rare words, name a part or a place rather than a thing, or are drawn so
# differently across styles that the word does not pick out one picture.
UNCOMMON = frozenset({
    "alembic", "amphora", "badger", "badminton", "beaver", "bison", "blossom", "boar", "boomerang", "bowling",
    "briefs", "bubbles", "bug", "chestnut", "chipmunk", "clamp", "construction", "cooking", "coral", "cricket",
    "crutch", "custard", "dango", "dna", "dodo", "elevator", "ewe", "falafel", "flatbread", "fly", "gloves",
    "goggles", "hamster", "herb", "hibiscus", "hyacinth", "ice", "joker", "kimono", "label", "lacrosse", "ledger",
    "link", "lotus", "mammoth", "mate", "memo", "metro", "microbe", "minibus", "monorail", "moose", "motorway",
    "oden", "orangutan", "ox", "oyster", "pager", "pick", "plunger", "poodle", "pushpin", "ram", "rat", "ring",
    "rosette", "sake", "sari", "sauropod", "scroll", "seat", "seedling", "skunk", "softball", "station", "tamale",
    "tennis", "trackball", "tram", "trolleybus", "videocassette", "wing",
})
NOT_ONE_WORD = re.compile(r"[^a-z]")


def scene_noun(concept: Concept) -> str | None:
    """The noun a caption uses for a concept, or None when it does not read as one thing."""
    if concept.category == "Component" or concept.base_key is not None:
        return None
    noun = noun_phrase(concept.name)
    return None if any(mark in noun for mark in "(,:") else noun


def is_common_noun(concept: Concept) -> bool:
    noun = scene_noun(concept)
    return (noun is not None and concept.subcategory in OBJECT_SUBCATEGORIES
            and not NOT_ONE_WORD.search(noun) and noun not in UNCOMMON)


def select_concepts(
    concepts: Iterable[Concept], vocabulary: str, drawn_by: Mapping[str, Mapping[str, str]]
) -> list[Concept]:
    """The concepts of ``vocabulary``; ``drawn_by`` is each found style's index (concept key -> file).
    Of several concepts with the same noun the first is kept, so a noun names one picture."""
    if vocabulary not in VOCABULARIES:
        raise ValueError(f"Unknown vocabulary {vocabulary!r}; use one of {', '.join(VOCABULARIES)}.")
    if vocabulary == "all":
        return list(concepts)
    chosen, nouns = [], set()
    for concept in concepts:
        if is_common_noun(concept) and all(concept.key in index for index in drawn_by.values()):
            noun = scene_noun(concept)
            if noun not in nouns:
                nouns.add(noun)
                chosen.append(concept)
    return chosen
