"""VQA accuracy as an `evaluate` metric: `evaluate.load("path/to/hf_limber/metrics/vqa_accuracy")`.

A thin wrapper; the metric lives in `hf_limber.evaluation.vqa`.
"""

import evaluate

from hf_limber.evaluation.vqa import vqa_accuracy
from hf_limber.metrics.info import metric_info

_DESCRIPTION = """\
The official VQA accuracy: the predicted answer is normalised (punctuation, periods, case, number
words, articles, contractions), then scored against every leave-one-out subset of the human answers
as min(matches / 3, 1), and the scores are averaged; a question's accuracy is 1 when at least four
of ten annotators gave the answer.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of str): one predicted answer per question.
    references (list of list of str): the human answers of each question (ten in VQAv2), as the
        dataset ships them.
Returns:
    accuracy (float): mean accuracy in percent, as the official code reports it (unrounded).
    scores (list of float): each question's accuracy in [0, 1], in input order.
Examples:
    >>> vqa = evaluate.load("src/hf_limber/metrics/vqa_accuracy")
    >>> vqa.compute(predictions=["Two."], references=[["2"] * 10])["accuracy"]
    100.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VqaAccuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, ["vqa", "vqa-v2"],
                           ["https://visualqa.org/evaluation.html", "https://github.com/GT-Vision-Lab/VQA"])

    def _compute(self, predictions, references):
        result = vqa_accuracy(predictions, references)
        return {"accuracy": result.accuracy, "scores": result.scores}
