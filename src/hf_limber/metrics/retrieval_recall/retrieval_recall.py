"""Image-text retrieval recall@K as an `evaluate` metric:
`evaluate.load("path/to/hf_limber/metrics/retrieval_recall")`.

A thin wrapper; the metric lives in `hf_limber.evaluation.retrieval`.
"""

import datasets
import evaluate
import torch
import torch.nn.functional as F

from hf_limber.evaluation.retrieval import retrieval_recall
from hf_limber.metrics.info import metric_info

_DESCRIPTION = """\
Recall@K of image-to-text and text-to-image retrieval (as the CLIP paper reports on Flickr30k and
MSCOCO): a query is found at K when its match ranks among the K candidates most similar to it by
cosine similarity. Each example is one (image embedding, text embedding) pair; the other examples'
texts and images are the distractors.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of list of float): image embeddings, one per example.
    references (list of list of float): the embeddings of the texts paired with those images.
    ks (list of int, optional): the cut-offs, default [1, 5, 10].
Returns:
    image_to_text_R@K, text_to_image_R@K (float): fractions of queries found within the top K.
Examples:
    >>> metric = evaluate.load("src/hf_limber/metrics/retrieval_recall")
    >>> metric.compute(predictions=[[1, 0], [0, 1]], references=[[1, 0.1], [0.1, 1]])["image_to_text_R@1"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RetrievalRecall(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, ["clip"], ["https://arxiv.org/abs/2103.00020"],
                           features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("float32")),
                                                       "references": datasets.Sequence(datasets.Value("float32"))}))

    def _compute(self, predictions, references, ks=(1, 5, 10)):
        images = F.normalize(torch.tensor(predictions, dtype=torch.float32), dim=-1)
        texts = F.normalize(torch.tensor(references, dtype=torch.float32), dim=-1)
        return retrieval_recall(images, texts, ks=tuple(ks))
