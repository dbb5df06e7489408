"""Lexical-concept analysis of generated captions (Merullo et al. 2023, "Linearly Mapping from Image
to Text Space", section on lexical categories).

The paper counts the most frequent nouns, modifiers (adjectives) and relations (verbs and
prepositions) in the reference captions and measures how often generated captions contain them,
and compares generated with reference nouns by Wu-Palmer similarity in WordNet. Its exact tagger
and precision/recall definitions are not published; ours, stated here so numbers can be read:

- Part of speech: textblob's PatternTagger (its lexicon ships with textblob, so it runs offline),
  on lower-cased captions. Words are reduced to their WordNet base form ("dogs" -> "dog",
  "riding" -> "ride"). Relations also include fixed multiword phrases ("next to", "in front of";
  "to the left of" counts as "left of"). Forms of "be" and "do" are not relations.
- Top-N concepts of a category: ranked by the number of reference captions mentioning them.
- Per item, R = top concepts in any of its references, G = top concepts in its generated caption.
  precision = sum |G & R| / sum |G|, recall = sum |G & R| / sum |R| (summed over items).
- Wu-Palmer: each noun's most frequent WordNet sense (its first synset), nltk's `wup_similarity`
  (1 for the same sense, where nltk can give less). noun_wup_precision is the mean over generated
  nouns of the best similarity to a reference noun of the same item; noun_wup_recall the mean over
  reference nouns of the best similarity to a generated noun.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from .captions import check_references
from .wordnet import load_wordnet

Category = Literal["nouns", "modifiers", "relations"]
CATEGORIES: tuple[Category, ...] = ("nouns", "modifiers", "relations")

NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})
MODIFIER_TAGS = frozenset({"JJ", "JJR", "JJS"})
PREPOSITION_TAGS = frozenset({"IN", "TO"})
VERB_TAGS = frozenset({"VB", "VBD", "VBG", "VBN", "VBP", "VBZ"})
NOT_RELATIONS = frozenset({"be", "do", "that", "if", "whether", "because", "than", "while", "although", "though"})

# Multiword relations, longest first so "to the left of" wins over "left of".
MULTIWORD_RELATIONS: tuple[tuple[tuple[str, ...], str], ...] = tuple(
    (tuple(phrase.split()), canonical)
    for phrase, canonical in sorted(
        {
            "to the left of": "left of", "on the left of": "left of", "left of": "left of",
            "to the right of": "right of", "on the right of": "right of", "right of": "right of",
            "in front of": "in front of", "on top of": "on top of", "in the middle of": "in the middle of",
            "next to": "next to", "close to": "close to", "out of": "out of", "across from": "across from",
            "away from": "away from", "inside of": "inside of", "outside of": "outside of",
            "in between": "between",
        }.items(),
        key=lambda item: -len(item[0].split()),
    )
)

@lru_cache(maxsize=1)
def _tagger():
    try:
        from textblob.en.taggers import PatternTagger
    except ImportError as error:
        raise ImportError("The lexical analysis tags with textblob: pip install 'hf_limber[eval]'.") from error

    return PatternTagger()


def _base_form(word: str, pos: str, nltk_data: str | Path | None) -> str:
    # WordNet's morphology lists the surface form first when it is itself an entry ("men", "bigger");
    # the first other analysis is the base form ("man", "big"). nltk's own lemmatiser uses the same call.
    analyses = [form for form in load_wordnet(nltk_data)._morphy(word, pos) if form != word]
    return analyses[0] if analyses else word


@lru_cache(maxsize=65536)
def _concepts_cached(caption: str, nltk_data: str | Path | None) -> dict[Category, frozenset[str]]:
    words = [(word.lower(), tag) for word, tag in _tagger().tag(caption.lower())]
    found: dict[Category, set[str]] = {category: set() for category in CATEGORIES}
    index = 0
    while index < len(words):
        for phrase, canonical in MULTIWORD_RELATIONS:
            if tuple(word for word, _ in words[index : index + len(phrase)]) == phrase:
                found["relations"].add(canonical)
                index += len(phrase)
                break
        else:
            word, tag = words[index]
            index += 1
            if not word.replace("-", "").isalpha():
                continue
            if tag in NOUN_TAGS:
                found["nouns"].add(_base_form(word, "n", nltk_data))
            elif tag in MODIFIER_TAGS:
                found["modifiers"].add(_base_form(word, "a", nltk_data))
            elif tag in PREPOSITION_TAGS and word not in NOT_RELATIONS:
                found["relations"].add(word)
            elif tag in VERB_TAGS and (lemma := _base_form(word, "v", nltk_data)) not in NOT_RELATIONS:
                found["relations"].add(lemma)
    return {category: frozenset(values) for category, values in found.items()}


def caption_concepts(caption: str, nltk_data: str | Path | None = None) -> dict[Category, frozenset[str]]:
    """The nouns, modifiers and relations of one caption, as WordNet base forms."""
    return _concepts_cached(caption, nltk_data)


@dataclass(frozen=True)
class ConceptCounts:
    """How one top concept fares: items whose references mention it, items whose generated caption
    mentions it, and items where both do."""

    in_references: int
    in_predictions: int
    in_both: int


@dataclass(frozen=True)
class CategoryResult:
    """One category's micro-averaged precision and recall (0 where nothing was counted), its top
    concepts, most frequent first, and their counts."""

    precision: float
    recall: float
    top: list[str]
    per_concept: dict[str, ConceptCounts] = field(repr=False)


@dataclass(frozen=True)
class LexicalResult:
    """Per category results, and the Wu-Palmer means (None when WordNet knows none of the nouns)."""

    nouns: CategoryResult
    modifiers: CategoryResult
    relations: CategoryResult
    noun_wup_precision: float | None
    noun_wup_recall: float | None

    def flat(self) -> dict[str, float | None | list[str]]:
        """Scalars and top lists under names like "nouns_precision" (what the evaluate module returns)."""
        out: dict[str, float | None | list[str]] = {}
        for category in CATEGORIES:
            result: CategoryResult = getattr(self, category)
            out |= {f"{category}_precision": result.precision, f"{category}_recall": result.recall,
                    f"top_{category}": result.top}
        return out | {"noun_wup_precision": self.noun_wup_precision, "noun_wup_recall": self.noun_wup_recall}


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _category_result(
    category: Category, predicted: list[dict], referenced: list[list[dict]], top_n: int
) -> CategoryResult:
    frequency = Counter(concept for refs in referenced for ref in refs for concept in ref[category])
    top = [concept for concept, _ in sorted(frequency.items(), key=lambda item: (-item[1], item[0]))[:top_n]]
    chosen = set(top)
    counts = {concept: [0, 0, 0] for concept in top}
    hits = generated = relevant = 0
    for prediction, refs in zip(predicted, referenced):
        in_prediction = prediction[category] & chosen
        in_references = set().union(*(ref[category] for ref in refs)) & chosen
        hits += len(in_prediction & in_references)
        generated += len(in_prediction)
        relevant += len(in_references)
        for concept in in_references:
            counts[concept][0] += 1
        for concept in in_prediction:
            counts[concept][1] += 1
        for concept in in_prediction & in_references:
            counts[concept][2] += 1
    return CategoryResult(
        precision=_ratio(hits, generated), recall=_ratio(hits, relevant), top=top,
        per_concept={concept: ConceptCounts(*values) for concept, values in counts.items()},
    )


@lru_cache(maxsize=65536)
def _wup(first: str, second: str, nltk_data: str | Path | None) -> float | None:
    wordnet = load_wordnet(nltk_data)
    first_senses, second_senses = wordnet.synsets(first, "n"), wordnet.synsets(second, "n")
    if not first_senses or not second_senses:
        return None
    if first_senses[0] == second_senses[0]:
        # nltk gives a sense with hypernym paths of different lengths less than 1 with itself
        # (dog.n.01: 0.93); Wu-Palmer of a concept with itself is 1.
        return 1.0
    return first_senses[0].wup_similarity(second_senses[0])


def _best_matches(sources: Iterable[str], targets: set[str], nltk_data: str | Path | None) -> list[float]:
    """For each source noun WordNet knows, its best similarity to any target noun WordNet knows."""
    best = []
    for source in sources:
        similarities = [s for target in targets if (s := _wup(source, target, nltk_data)) is not None]
        if similarities:
            best.append(max(similarities))
    return best


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def lexical_concepts(
    predictions: Sequence[str],
    references: Sequence[Sequence[str] | str],
    top_n: int = 50,
    nltk_data: str | Path | None = None,
) -> LexicalResult:
    """Precision and recall of the top-N reference nouns, modifiers and relations in generated captions,
    and Wu-Palmer similarity of generated to reference nouns (see the module docstring).

    Needs WordNet (Debian `wordnet-base` and `wordnet-sense-index`; see `prepare_wordnet`).
    """
    check_references(predictions, references, "The lexical analysis")
    if top_n < 1:
        raise ValueError(f"top_n must be at least 1, got {top_n}.")
    nltk_data = str(nltk_data) if nltk_data is not None else None
    predicted = [caption_concepts(text, nltk_data) for text in predictions]
    referenced = [
        [caption_concepts(text, nltk_data) for text in ([refs] if isinstance(refs, str) else refs)]
        for refs in references
    ]
    wup_precision, wup_recall = [], []
    for prediction, refs in zip(predicted, referenced):
        reference_nouns = set().union(*(ref["nouns"] for ref in refs))
        wup_precision += _best_matches(sorted(prediction["nouns"]), reference_nouns, nltk_data)
        wup_recall += _best_matches(sorted(reference_nouns), set(prediction["nouns"]), nltk_data)
    return LexicalResult(
        **{category: _category_result(category, predicted, referenced, top_n) for category in CATEGORIES},
        noun_wup_precision=_mean(wup_precision),
        noun_wup_recall=_mean(wup_recall),
    )
