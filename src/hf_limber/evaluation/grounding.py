"""Does a caption name what is in the picture? Per-scene object recall, hallucinations (CHAIR) and
repetition loops, each with a bootstrap interval over scenes.

Object recall is the share of a scene's objects its caption names (matched as CHAIR matches:
longest phrase, plurals, synonyms). A loop is a caption that repeats a word 3-gram, the "runoff" of
the LiMBeR paper taken to its degenerate end ("a cat with a hat with a hat").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .bootstrap import Interval, mean_interval, ratio_interval
from .chair import object_mentions, vocabulary_lookup


def repeats_a_trigram(caption: str) -> bool:
    words = re.findall(r"[a-z0-9']+", caption.lower())
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return len(trigrams) != len(set(trigrams))


@dataclass(frozen=True)
class GroundingScores:
    """Per caption: share of the scene's objects named, objects named, of those not in the scene, loop."""

    recall: list[float]
    mentioned: list[int]
    hallucinated: list[int]
    loops: list[bool]

    def intervals(self, seed: int = 0) -> dict[str, Interval]:
        return {
            "object_recall": mean_interval(self.recall, seed),
            "chair_i": ratio_interval(self.hallucinated, self.mentioned, seed),
            "chair_s": mean_interval([float(h > 0) for h in self.hallucinated], seed),
            "loops": mean_interval([float(loop) for loop in self.loops], seed),
        }


def grounding_scores(
    captions: Sequence[str], scene_objects: Sequence[Sequence[str]], synonyms: Mapping[str, Iterable[str]]
) -> GroundingScores:
    """Scores of each caption against its scene's object nouns; ``synonyms`` is the CHAIR vocabulary."""
    if len(captions) != len(scene_objects):
        raise ValueError(f"{len(captions)} captions but {len(scene_objects)} scenes: give one object list per caption.")
    lookup = vocabulary_lookup(synonyms)
    recall, mentioned, hallucinated = [], [], []
    for caption, objects in zip(captions, scene_objects, strict=True):
        present = {noun for obj in objects for noun in object_mentions(obj, lookup)}
        named = object_mentions(caption, lookup)
        recall.append(len(present & set(named)) / len(present) if present else 0.0)
        mentioned.append(len(named))
        hallucinated.append(sum(noun not in present for noun in named))
    return GroundingScores(recall, mentioned, hallucinated, [repeats_a_trigram(c) for c in captions])
