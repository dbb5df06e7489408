"""RefCLIPScore as an `evaluate` metric: `evaluate.load("path/to/hf_limber/metrics/ref_clip_score")`.

A thin wrapper; the metric lives in `hf_limber.evaluation.clip_score`.
"""

import datasets
import evaluate

from hf_limber.evaluation.clip_score import DEFAULT_PREFIX, DEFAULT_W, ref_clip_score
from hf_limber.metrics.info import TEXT_AGAINST_REFERENCES, metric_info

_DESCRIPTION = """\
RefCLIP-S (Hessel et al. 2021): the harmonic mean of CLIP-S (w = 2.5, "A photo depicts" prefix) and
the largest cosine between the caption and any of its reference captions (also prefixed), from any
CLIP model: an hf_limber ClipModel with its ClipProcessor, or a transformers CLIPModel with its
CLIPProcessor. CLIP-S comes along.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of str): one caption per image.
    references (list of list of str): the reference captions of each image.
    images (list of PIL images, paths or arrays): the images.
    model: the CLIP that scores (required).
    processor: its processor (required).
    w (float, default 2.5), prefix (str, default "A photo depicts"), batch_size (int, default 64).
Returns:
    ref_clip_score (float), clip_score (float): means (0-1 scale as the released code reports).
    ref_scores, scores (list of float): per caption, in input order.
Examples:
    >>> metric = evaluate.load("src/hf_limber/metrics/ref_clip_score")
    >>> metric.compute(predictions=["a red apple"], references=[["an apple", "a red fruit"]],
    ...                images=[image], model=model, processor=processor)
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RefClipScore(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION, ["clipscore"],
                           ["https://arxiv.org/abs/2104.08718", "https://github.com/jmhessel/clipscore"],
                           features=datasets.Features({**TEXT_AGAINST_REFERENCES, "images": datasets.Image()}))

    def _compute(self, predictions, references, images, model=None, processor=None, w: float = DEFAULT_W,
                 prefix: str = DEFAULT_PREFIX, batch_size: int = 64):
        if model is None or processor is None:
            raise ValueError("Pass the scoring CLIP: compute(..., model=clip_model, processor=clip_processor).")
        result = ref_clip_score(images, predictions, references, model, processor, w=w, prefix=prefix,
                                batch_size=batch_size)
        return {"ref_clip_score": result.ref_clip_score, "clip_score": result.clip_score,
                "ref_scores": result.ref_scores, "scores": result.scores}
