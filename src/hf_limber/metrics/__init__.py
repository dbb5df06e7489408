"""`evaluate` modules, one folder each: `evaluate.load(metric_path("cider_d"))`.

`evaluate.load` takes a local folder (never a Hub name here); `metric_path` finds the folder in an
installed hf_limber. Each module is a thin wrapper over `hf_limber.evaluation`.
"""

from pathlib import Path

METRICS = (
    "cider_d", "clip_score", "ref_clip_score", "vqa_accuracy", "lexical_concepts", "zero_shot_accuracy",
    "retrieval_recall", "chair",
)


def metric_path(name: str) -> str:
    """The folder of a metric module, to pass to `evaluate.load`."""
    if name not in METRICS:
        raise ValueError(f"Unknown metric {name!r}; hf_limber ships {', '.join(METRICS)}.")
    return str(Path(__file__).parent / name)
