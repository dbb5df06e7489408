"""CHAIR object hallucination as an `evaluate` metric: `evaluate.load(metric_path("chair"))`.

A thin wrapper; the metric lives in `hf_limber.evaluation.chair`.
"""

import evaluate

from hf_limber.evaluation.chair import chair
from hf_limber.metrics.info import metric_info

_DESCRIPTION = """\
CHAIR measures object hallucination: of the objects a caption names (matched against a vocabulary of
object nouns, their plurals and synonyms; each object once per caption), how many are not in the
image. CHAIR-i is hallucinated object mentions / all object mentions; CHAIR-s is the share of
captions that name at least one object not in the image. Lower is better.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of str): one generated caption per image.
    references (list of list of str): the object nouns in each image.
    synonyms (dict of str to list of str, optional): the vocabulary of objects, each noun with other
        words for it; default: every noun in the references.
Returns:
    chair_i (float): hallucinated mentions / all mentions.
    chair_s (float): share of captions with a hallucinated object.
    hallucinated (list of list of str): per caption, the objects named but not present.
Examples:
    >>> chair = evaluate.load(metric_path("chair"))
    >>> chair.compute(predictions=["a cat on a table.", "a cat and a banana."],
    ...               references=[["cat", "table"], ["banana"]])["chair_i"]
    0.25
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Chair(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, ["chair"], ["https://arxiv.org/abs/1809.02156"])

    def _compute(self, predictions, references, synonyms=None):
        result = chair(predictions, references, synonyms)
        return {"chair_i": result.chair_i, "chair_s": result.chair_s, "hallucinated": result.hallucinated}
