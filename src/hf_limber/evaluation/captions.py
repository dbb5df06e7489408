"""Caption tokenisation as the COCO evaluation does it, and CIDEr-D.

CIDEr-D (Vedantam, Zitnick and Parikh 2015, "CIDEr: Consensus-based Image Description
Evaluation") is the captioning number LiMBeR (Merullo et al. 2023) reports, computed as the
COCO caption evaluation code computes it (pycocoevalcap): n-grams of 1 to 4 words, tf-idf
weights whose document frequencies come from the references of the evaluated set, clipped
n-gram matches, a Gaussian length penalty with sigma = 6, and a factor of 10.

The COCO code first runs Stanford's PTB tokenizer (Java) and drops punctuation tokens.
`tokenize_caption` is a pure-Python approximation of that step, so no Java is needed; the
tests list where the two still differ.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

# Tokens pycocoevalcap drops after PTB tokenisation. Its list also names -LRB- and friends in
# upper case, but PTB runs with -lowerCase, so brackets survive as "-lrb-"...; we keep that.
REMOVED_PUNCTUATION = frozenset(["''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";"])

BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}

# PTB rewrites these characters before tokenising (quotes, dashes, currency, fractions).
CHARACTER_MAP = str.maketrans({
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
    "\u2018": "'", "\u201a": "'", "\u2032": "'", "\ufffd": " ",
    "\u2013": " -- ", "\u2014": " -- ", "\u2026": " ... ",
    "\u20ac": "$", "\u00a3": "#", "\u00bd": "1/2", "\u00bc": "1/4", "\u00be": "3/4",
})

# PTB splits these colloquial words in two.
SPLIT_WORDS = {
    "cannot": ("can", "not"), "gonna": ("gon", "na"), "gotta": ("got", "ta"),
    "wanna": ("wan", "na"), "lemme": ("lem", "me"), "gimme": ("gim", "me"),
}
CLITIC = re.compile(r"^(.+?)(n['’]t|['’](?:s|re|ve|ll|d|m))$")
TIME_OF_DAY = re.compile(r"^(\d[\d:.]*)(am|pm)$")  # 5:00pm -> 5:00 pm

# Words PTB keeps with their period (abbreviations), found by running it; the second group only
# when capitalised ("Pa." but "pa ."). A single letter with a period is an initial ("v.").
ABBREVIATIONS = (
    "mr mrs ms dr st jr sr vs etc cf ph lt col gen gov capt sgt cmdr adm ave blvd rd ft mt univ assn bros "
    "corp inc ltd co dept est prof rev sen rep sq jan feb mar apr jun jul aug sep sept oct nov dec mon tue "
    "tues wed thu thurs fri al ct ga ky md mo vt va ala ariz calif colo conn fla ind kan kans mich minn mont "
    "neb nev okla penn tenn wis wyo"
).split()
CAPITALISED_ABBREVIATIONS = "az la pa ark del ill mass miss ore tex wash".split()

_LETTER = r"[^\W\d_]"
INITIAL = re.compile(rf"{_LETTER}\.")
_WORD = rf"""
    (?:[#@](?={_LETTER}))?\w+                   # word, number, #tag or @name
    (?:(?:[-/.]|(?<=\d)[,:](?=\d)|['’](?={_LETTER}))\w+)*   # x-ray, and/or, 3.5, 1,000, 7:30, o'clock
"""
_CAPITALISED = "|".join(word[0].upper() + f"(?i:{word[1:]})" for word in CAPITALISED_ABBREVIATIONS)
TOKEN = re.compile(rf"""
      (?:https?://|www\.)\S*[^\s.,;:!?'")\]}}]     # web address
    | [\w.+-]+@\w[\w-]*(?:\.[\w-]+)+              # e-mail address
    | </?[a-z][a-z0-9]*>                          # markup tag, kept whole
    | [:;]-?[()]                                  # emoticon
    | \.\.+                                       # ellipsis
    | --+                                         # dash
    | [?!]+                                       # ?, !, and runs like ?! that PTB keeps whole
    | (?:{_LETTER}{{1,2}}\.){{2,}}                # acronyms keep their period: u.s., a.m., ph.d.
    | (?:{"|".join(ABBREVIATIONS)}|{_LETTER})\.(?!\w)
    | (?-i:(?:{_CAPITALISED})\.(?!\w))
    | no\.(?=\s*\d)                               # "no. 5"
    | ['’](?:em|cause|til|tis|twas|\d\ds)\b       # words that start with an apostrophe
    | \.\d+                                       # .5
    | (?<!\w)[+-]\d+(?:[.,]\d+)*                  # signed number: +1, -1
    | {_WORD}
    | \S                                          # any other character on its own
""", re.VERBOSE | re.IGNORECASE)


def check_references(predictions: Sequence[str], references: Sequence[Sequence[str]], metric: str,
                     prediction: str = "generated caption", reference: str = "reference captions") -> None:
    """A metric over predictions with references needs one list of references per prediction, and one
    prediction at least: a ValueError saying which was wrong otherwise."""
    if len(predictions) != len(references):
        raise ValueError(f"Got {len(predictions)} predictions but {len(references)} lists of {reference}; "
                         f"pass one list of {reference} per {prediction}.")
    if not predictions:
        raise ValueError(f"{metric} needs at least one {prediction} with its {reference}.")


def ptb_tokens(text: str) -> list[str]:
    """PTB-style tokens of one caption, lower-cased, punctuation still in."""
    text = html.unescape(text).translate(CHARACTER_MAP)  # PTB decodes entities such as &amp;
    # PTB 3.4.1 cannot tokenise characters outside the basic plane (emoji) and deletes them.
    text = "".join(ch for ch in text if ord(ch) <= 0xFFFF)
    tokens: list[str] = []
    for match in TOKEN.finditer(text):
        token = match.group().lower()
        if token in BRACKETS:
            tokens.append(BRACKETS[token])
        elif token[0] in ":;" and token[-1] in "()":
            tokens.append(token[:-1] + BRACKETS[token[-1]])
        elif token.startswith(".."):
            tokens.append("...")
        elif token.startswith("--"):
            tokens.append("--")
        elif token in ('"', "’"):
            tokens.append("''")
        elif token in SPLIT_WORDS:
            tokens.extend(SPLIT_WORDS[token])
        elif (time := TIME_OF_DAY.match(token)) is not None:
            tokens.extend(time.groups())
        else:
            tokens.extend(_split_clitics(token))
    # PTB reads all captions as one stream and splits the period off a caption-final initial
    # ("..., x.") when the next caption starts with a word like "A" or "The", as reference captions
    # do; it keeps "x." before a lower-case start. We assume the former.
    if tokens and INITIAL.fullmatch(tokens[-1]):
        tokens[-1:] = [tokens[-1][0], "."]
    return tokens


def _split_clitics(word: str) -> list[str]:
    """dog's -> dog 's, wouldn't've -> would n't 've (PTB separates these endings)."""
    endings: list[str] = []
    while (match := CLITIC.match(word)) is not None:
        word, ending = match.groups()
        endings.insert(0, ending.replace("’", "'"))  # PTB writes split-off endings with a plain apostrophe
    return [word, *endings]


def tokenize_caption(text: str) -> str:
    """A caption as the COCO evaluation sees it: PTB tokens, lower case, no punctuation, one space apart.

    A pure-Python stand-in for pycocoevalcap's `PTBTokenizer` (Stanford CoreNLP 3.4.1, which needs
    Java) followed by its punctuation removal.
    """
    return " ".join(token for token in ptb_tokens(text.replace("\n", " ")) if token not in REMOVED_PUNCTUATION)


@dataclass(frozen=True)
class CiderResult:
    """Corpus CIDEr-D (the mean over items) and each item's score, in input order."""

    score: float
    scores: list[float]


@dataclass(frozen=True)
class _Vector:
    weights: list[dict[tuple[str, ...], float]]  # per n-gram order: n-gram -> tf-idf
    norms: list[float]
    length: int


@dataclass(frozen=True)
class _Counts:
    orders: list[Counter]  # per n-gram order: n-gram -> count
    length: int


def _count(text: str, max_n: int) -> _Counts:
    words = text.split()
    orders = [Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1)) for n in range(1, max_n + 1)]
    # The COCO code measures length as the number of bigrams (words - 1); only differences matter.
    return _Counts(orders, max(len(words) - 1, 0))


def _vector(counts: _Counts, document_frequency: Counter, log_items: float) -> _Vector:
    weights = [
        {gram: tf * (log_items - math.log(max(1.0, document_frequency[gram]))) for gram, tf in order.items()}
        for order in counts.orders
    ]
    norms = [math.sqrt(sum(w * w for w in order.values())) for order in weights]
    return _Vector(weights, norms, counts.length)


def _similarity(hypothesis: _Vector, reference: _Vector, sigma: float) -> list[float]:
    delta = hypothesis.length - reference.length
    penalty = math.exp(-(delta**2) / (2 * sigma**2))
    values = []
    for hyp, ref, hyp_norm, ref_norm in zip(hypothesis.weights, reference.weights, hypothesis.norms, reference.norms):
        # "-D": a hypothesis n-gram earns at most the weight it has in the reference (no gaming by repetition).
        value = sum(min(weight, ref[gram]) * ref[gram] for gram, weight in hyp.items() if gram in ref)
        if hyp_norm != 0 and ref_norm != 0:
            value /= hyp_norm * ref_norm
        values.append(value * penalty)
    return values


def cider_d(
    predictions: Sequence[str],
    references: Sequence[Sequence[str] | str],
    tokenize: bool = True,
    max_n: int = 4,
    sigma: float = 6.0,
) -> CiderResult:
    """CIDEr-D of generated captions against their references, as the COCO caption evaluation computes it.

    Document frequencies come from the references of exactly these items, so the score depends on
    the evaluated set: compare models on the same set only. A set of one item scores 0 (every idf
    is log 1 = 0). With `tokenize=False` the captions are taken as already tokenised (split on
    whitespace), e.g. the output of pycocoevalcap's PTBTokenizer.
    """
    check_references(predictions, references, "CIDEr-D")
    prepare = tokenize_caption if tokenize else (lambda text: text)
    hypotheses = [_count(prepare(text), max_n) for text in predictions]
    reference_counts = []
    for index, refs in enumerate(references):
        refs = [refs] if isinstance(refs, str) else list(refs)
        if not refs:
            raise ValueError(f"Item {index} has no reference captions; CIDEr-D needs at least one per item.")
        reference_counts.append([_count(prepare(text), max_n) for text in refs])

    # Each item counts once per n-gram, however many of its references contain it.
    document_frequency: Counter = Counter()
    for refs in reference_counts:
        document_frequency.update({gram for ref in refs for order in ref.orders for gram in order})
    log_items = math.log(float(len(predictions)))

    scores = []
    for hypothesis, refs in zip(hypotheses, reference_counts):
        hyp_vector = _vector(hypothesis, document_frequency, log_items)
        per_order = [0.0] * max_n
        for ref in refs:
            sims = _similarity(hyp_vector, _vector(ref, document_frequency, log_items), sigma)
            per_order = [total + sim for total, sim in zip(per_order, sims)]
        scores.append(sum(per_order) / max_n / len(refs) * 10.0)
    return CiderResult(score=sum(scores) / len(scores), scores=scores)
