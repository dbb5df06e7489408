"""Zero-shot classification accuracy as an `evaluate` metric:
`evaluate.load("path/to/hf_limber/metrics/zero_shot_accuracy")`.

A thin wrapper; the metric lives in `hf_limber.evaluation.zero_shot`.
"""

import datasets
import evaluate
import torch

from hf_limber.evaluation.zero_shot import accuracy_from_logits
from hf_limber.metrics.info import metric_info

_DESCRIPTION = """\
Top-1 and top-5 accuracy of zero-shot classification from per-class scores (e.g. a CLIP's cosine
similarities between an image and each class's prompt-ensemble embedding), with the top-1 accuracy
of every class and the chance level 1 / number of classes.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of list of float): for each example, a score per class (all the same length).
    references (list of int): each example's true class index.
    classnames (list of str, optional): names for the per-class results (default: the indices).
Returns:
    top1 (float), top5 (float): fractions of examples whose class ranks first / in the first five.
    chance (float): 1 / number of classes.
    per_class_top1 (dict): top-1 accuracy of each class that occurs in the references.
Examples:
    >>> metric = evaluate.load("src/hf_limber/metrics/zero_shot_accuracy")
    >>> metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[0, 0])["top1"]
    0.5
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ZeroShotAccuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, ["clip"], ["https://arxiv.org/abs/2103.00020"],
                           features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("float32")),
                                                       "references": datasets.Value("int64")}))

    def _compute(self, predictions, references, classnames=None):
        scores = torch.tensor(predictions, dtype=torch.float32)
        names = list(classnames) if classnames is not None else [str(i) for i in range(scores.shape[1])]
        if len(names) != scores.shape[1]:
            raise ValueError(f"{len(names)} class names for {scores.shape[1]} scores per example.")
        result = accuracy_from_logits(scores, references, names)
        return {key: value for key, value in result.as_dict().items() if key != "num_examples"}
