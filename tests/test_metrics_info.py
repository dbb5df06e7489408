"""Every `evaluate` module describes itself one way: its BibTeX from `hf_limber.citations` (the model cards'
table too), never a copy of its own."""

import evaluate
import pytest

from hf_limber.citations import CITATIONS
from hf_limber.metrics import METRICS, metric_path


@pytest.mark.parametrize("name", METRICS)
def test_metric_cites_entries_of_the_one_citation_table(name):
    module = evaluate.load(metric_path(name))
    cited = [key for key, entry in CITATIONS.items() if entry in module.citation]
    assert cited and module.citation == "\n".join(CITATIONS[key] for key in cited)
    assert module.reference_urls and module.inputs_description.lstrip().startswith("Args:")


def test_the_caption_metrics_cite_their_papers():
    assert "vedantam2015cider" in evaluate.load(metric_path("cider_d")).citation
    vqa = evaluate.load(metric_path("vqa_accuracy")).citation
    assert "antol2015vqa" in vqa and "goyal2017making" in vqa
    assert "rohrbach2018object" in evaluate.load(metric_path("chair")).citation
