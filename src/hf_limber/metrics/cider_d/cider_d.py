"""CIDEr-D as an `evaluate` metric: `evaluate.load("path/to/hf_limber/metrics/cider_d")`.

A thin wrapper; the metric lives in `hf_limber.evaluation.captions`.
"""

import evaluate

from hf_limber.evaluation.captions import cider_d
from hf_limber.metrics.info import metric_info

_DESCRIPTION = """\
CIDEr-D as the COCO caption evaluation (pycocoevalcap) computes it: tf-idf weighted n-grams of
1 to 4 words with document frequencies from the references of the evaluated set, clipped matches,
a Gaussian length penalty (sigma = 6) and a factor of 10. Captions are tokenised with a pure-Python
approximation of the PTB tokenizer the COCO code runs through Java, then stripped of punctuation.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of str): one generated caption per image.
    references (list of list of str): the reference captions of each image.
    tokenize (bool, default True): PTB-style tokenisation first; False takes captions as already
        tokenised (split on whitespace), e.g. the output of pycocoevalcap's PTBTokenizer.
    sigma (float, default 6.0): width of the length penalty.
Returns:
    cider_d (float): the corpus score, the mean of the per-image scores (COCO scale, about 0-10;
        papers print it x100).
    scores (list of float): each image's score, in input order.
Examples:
    >>> cider = evaluate.load("src/hf_limber/metrics/cider_d")
    >>> cider.compute(predictions=["a dog on a couch", "a red bus"],
    ...               references=[["a dog sits on a couch", "a brown dog"], ["a red bus on a street"]])["cider_d"]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CiderD(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, ["cider"],
                           ["https://arxiv.org/abs/1411.5726", "https://github.com/salaniz/pycocoevalcap"])

    def _compute(self, predictions, references, tokenize: bool = True, sigma: float = 6.0):
        result = cider_d(predictions, references, tokenize=tokenize, sigma=sigma)
        return {"cider_d": result.score, "scores": result.scores}
