"""VQA accuracy as an `evaluate` metric: `evaluate.load("path/to/hf_limber/metrics/vqa_accuracy")`.

A thin wrapper; the metric lives in `hf_limber.evaluation.vqa`.
"""

import datasets
import evaluate

from hf_limber.evaluation.vqa import vqa_accuracy

_CITATION = """\
@inproceedings{antol2015vqa,
  title={VQA: Visual Question Answering},
  author={Antol, Stanislaw and Agrawal, Aishwarya and Lu, Jiasen and Mitchell, Margaret and Batra, Dhruv
          and Zitnick, C. Lawrence and Parikh, Devi},
  booktitle={ICCV},
  year={2015}
}
@inproceedings{goyal2017making,
  title={Making the V in VQA Matter: Elevating the Role of Image Understanding in Visual Question Answering},
  author={Goyal, Yash and Khot, Tejas and Summers-Stay, Douglas and Batra, Dhruv and Parikh, Devi},
  booktitle={CVPR},
  year={2017}
}
"""

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
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Value("string"),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
            reference_urls=["https://visualqa.org/evaluation.html", "https://github.com/GT-Vision-Lab/VQA"],
        )

    def _compute(self, predictions, references):
        result = vqa_accuracy(predictions, references)
        return {"accuracy": result.accuracy, "scores": result.scores}
