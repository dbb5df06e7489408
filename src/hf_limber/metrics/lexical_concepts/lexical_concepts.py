"""Lexical-concept analysis as an `evaluate` metric: `evaluate.load("path/to/hf_limber/metrics/lexical_concepts")`.

A thin wrapper; the analysis lives in `hf_limber.evaluation.lexical`.
"""

import evaluate

from hf_limber.evaluation.lexical import lexical_concepts
from hf_limber.metrics.info import metric_info

_DESCRIPTION = """\
Which concepts of the reference captions the generated captions get right (Merullo et al. 2023):
the top-N nouns, modifiers (adjectives) and relations (verbs, prepositions, phrases such as
"next to", "left of") of the references, their precision and recall in the generated captions, and
the Wu-Palmer similarity in WordNet between generated and reference nouns. Runs offline:
textblob's PatternTagger for parts of speech, WordNet from Debian's wordnet-base and
wordnet-sense-index packages.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of str): one generated caption per image.
    references (list of list of str): the reference captions of each image.
    top_n (int, default 50): how many of the most frequent reference concepts per category count.
    nltk_data (str, optional): where to lay out WordNet for nltk (default ~/.cache/hf_limber/nltk_data).
Returns:
    nouns_precision, nouns_recall, modifiers_precision, modifiers_recall, relations_precision,
    relations_recall (float); top_nouns, top_modifiers, top_relations (list of str);
    noun_wup_precision, noun_wup_recall (float, or None when no noun is in WordNet).
Examples:
    >>> metric = evaluate.load("src/hf_limber/metrics/lexical_concepts")
    >>> metric.compute(predictions=["a dog on a couch"], references=[["a dog sitting on a sofa"]], top_n=10)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LexicalConcepts(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, ["limber", "wu-palmer"],
                           ["https://arxiv.org/abs/2209.15162"])

    def _compute(self, predictions, references, top_n: int = 50, nltk_data=None):
        return lexical_concepts(predictions, references, top_n=top_n, nltk_data=nltk_data).flat()
