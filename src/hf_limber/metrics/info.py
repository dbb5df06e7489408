"""What each hf_limber `evaluate` module says about itself, built one way: its citation comes from
`hf_limber.citations` (which the model cards read too), its inputs are typed with `datasets` features."""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import evaluate

from hf_limber.citations import CITATIONS

# Generated captions (or answers), each against a list of reference strings.
TEXT_AGAINST_REFERENCES = datasets.Features({
    "predictions": datasets.Value("string"),
    "references": datasets.Sequence(datasets.Value("string")),
})


def metric_info(description: str, inputs_description: str, cites: Sequence[str], reference_urls: Sequence[str],
                features: datasets.Features = TEXT_AGAINST_REFERENCES) -> evaluate.MetricInfo:
    """The `MetricInfo` an `evaluate.Metric._info` returns; `cites` are keys of `hf_limber.citations.CITATIONS`."""
    return evaluate.MetricInfo(description=description, citation="\n".join(CITATIONS[key] for key in cites),
                               inputs_description=inputs_description, features=features,
                               reference_urls=list(reference_urls))
