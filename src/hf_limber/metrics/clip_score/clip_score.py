"""CLIPScore as an `evaluate` metric: `evaluate.load("path/to/hf_limber/metrics/clip_score")`.

A thin wrapper; the metric lives in `hf_limber.evaluation.clip_score`.
"""

import datasets
import evaluate

from hf_limber.evaluation.clip_score import DEFAULT_PREFIX, DEFAULT_W, clip_score
from hf_limber.metrics.info import metric_info

_DESCRIPTION = """\
CLIP-S (Hessel et al. 2021): w * max(cos(image, "A photo depicts " + caption), 0) with w = 2.5,
from any CLIP model: an hf_limber ClipModel with its ClipProcessor, or a transformers CLIPModel with
its CLIPProcessor. No reference captions needed.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of str): one caption per image.
    images (list of PIL images, paths or arrays): the images.
    model: the CLIP that scores (required).
    processor: its processor (required).
    w (float, default 2.5), prefix (str, default "A photo depicts"), batch_size (int, default 64).
Returns:
    clip_score (float): the mean CLIP-S (0-1 scale as the released code reports; papers often x100).
    scores (list of float): each caption's CLIP-S, in input order.
Examples:
    >>> metric = evaluate.load("src/hf_limber/metrics/clip_score")
    >>> metric.compute(predictions=["a red apple"], images=[image], model=model, processor=processor)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ClipScore(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, ["clipscore"],
                           ["https://arxiv.org/abs/2104.08718", "https://github.com/jmhessel/clipscore"],
                           features=datasets.Features({"predictions": datasets.Value("string"),
                                                       "images": datasets.Image()}))

    def _compute(self, predictions, images, model=None, processor=None, w: float = DEFAULT_W,
                 prefix: str = DEFAULT_PREFIX, batch_size: int = 64):
        if model is None or processor is None:
            raise ValueError("Pass the scoring CLIP: compute(..., model=clip_model, processor=clip_processor).")
        result = clip_score(images, predictions, model, processor, w=w, prefix=prefix, batch_size=batch_size)
        return {"clip_score": result.clip_score, "scores": result.scores}
