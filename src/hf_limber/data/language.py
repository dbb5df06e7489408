"""Turning CLDR emoji names into English noun phrases for captions and questions."""

from __future__ import annotations

import re

from .catalog import Concept

# Words that start with a vowel letter but a consonant sound ("a unicorn", "a one-piece").
_CONSONANT_SOUND = re.compile(r"^(uni|use|usa|one|euro|ufo|u\b)", re.IGNORECASE)
_VOWEL_SOUND = re.compile(r"^(hour|honest|honou?r|[aeiou])", re.IGNORECASE)


# Names ending in -s that name one thing.
_SINGULAR_S = {"aries", "pisces", "rhinoceros", "hundred points", "globe showing americas"}
# Words after which a name's head noun is already over ("face with tears of joy" -> "face").
_HEAD_END = re.compile(r" (?:with|of|in|on|at|for|from|behind|holding|showing|lifting|over|under|and)\b")


def is_plural(noun: str) -> bool:
    """Whether a noun phrase takes "are": "admission tickets" yes, "octopus" and "face with tears" no."""
    if noun.lower() in _SINGULAR_S:
        return False
    head = _HEAD_END.split(noun)[0].split()[-1].lower()
    return head not in _SINGULAR_S and head.endswith("s") and not head.endswith(("ss", "us", "is"))


def be(noun: str) -> str:
    return "are" if is_plural(noun) else "is"


def noun_phrase(name: str) -> str:
    """``"flag: Japan"`` -> ``"flag of Japan"``; CLDR's ``base: qualifier`` names read as English."""
    if name.startswith("no ") and ": " not in name:
        return f"{name} sign"  # "no bicycles" is a prohibition sign, one thing
    if ": " not in name:
        return name
    head, qualifier = name.split(": ", 1)
    if head == "flag":
        return f"flag of {qualifier}"
    if head == "keycap":
        return f"keycap {qualifier}"
    if qualifier.endswith("skin tone") and "," not in qualifier:
        return f"{head} with {qualifier}"
    return f"{head} ({qualifier})"


def with_article(phrase: str, plural: bool = False) -> str:
    if plural:
        return phrase
    if _VOWEL_SOUND.match(phrase) and not _CONSONANT_SOUND.match(phrase):
        return f"an {phrase}"
    return f"a {phrase}"


def capitalise(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]


def concept_caption(concept: Concept, max_keywords: int = 4) -> str:
    """One caption from a concept's name, category, subcategory and keywords.

    The style is left out on purpose: a held-out style's captions then read exactly like
    the training captions, so only the pictures differ.
    """
    name_words = set(re.findall(r"[a-z0-9]+", concept.name.lower()))
    keywords = [k for k in concept.keywords if k.lower() not in name_words][:max_keywords]
    subcategory = concept.subcategory.replace("-", " ")
    noun = noun_phrase(concept.name)
    caption = f"{with_article(noun, is_plural(noun))} emoji ({concept.category.lower()}, {subcategory})"
    if keywords:
        caption += ": " + ", ".join(keywords)
    return capitalise(caption) + "."
