"""Model cards for CLIP and LiMBeR folders: Hub metadata (with `model-index`) and a README people can use.

`write_model_card(folder, ...)` reads what it can from the folder (config, weights) and takes the rest
as arguments; everything optional is left out of the card when not given. The usage snippets are
code that runs as written once the folder is on the Hub under `repo_id`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import HFValidationError, validate_repo_id
from safetensors import safe_open
from transformers import AutoConfig

from ..citations import CITATIONS
from ..data.sources import candidate_sources
from ..training.precision import logged_precision

KINDS = {"limber_clip": "clip", "limber": "limber"}  # config.json model_type -> kind
# The pipelines that load each kind: LiMBeR registers under AutoModelForImageTextToText, as Llava does.
PIPELINE_TAGS = {"clip": "zero-shot-image-classification", "limber": "image-text-to-text"}
# The Hub widget's example picture (transformers' documentation image) and what it asks of a LiMBeR model.
WIDGET_IMAGE = "https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/pipeline-cat-chonk.jpeg"
RESULT_KEYS = ("task", "dataset", "metric", "value")


def model_kind(folder: str | os.PathLike) -> str | None:
    """The kind of hf_limber model saved in `folder` ("clip" or "limber", from its config.json), None
    for anything else."""
    config_file = Path(folder) / "config.json"
    return KINDS.get(json.loads(config_file.read_text()).get("model_type")) if config_file.is_file() else None


def _hub_id(source: str | None) -> str | None:
    """`source` when it names a Hub repo (not a local folder), for `base_model`."""
    if not source or Path(source).exists():
        return None
    try:
        validate_repo_id(source)
    except HFValidationError:
        return None
    return source if "/" in source else None


def _parameter_counts(folder: Path) -> tuple[int, int]:
    """(all parameters, those of the LiMBeR projection) in the folder's safetensors files."""
    total = projection = 0
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as weights:
            for name in weights.keys():
                count = math.prod(weights.get_slice(name).get_shape())
                total += count
                projection += count if name.startswith("projection.") else 0
    return total, projection


def _eval_results(results: Sequence[Mapping[str, Any]]) -> list[EvalResult]:
    evals = []
    for index, result in enumerate(results):
        missing = [key for key in RESULT_KEYS if key not in result]
        if missing:
            raise ValueError(f"results[{index}] lacks {missing}: each result needs {RESULT_KEYS} "
                             "(and may give dataset_name, split, metric_name).")
        evals.append(EvalResult(
            task_type=result["task"], dataset_type=result["dataset"],
            dataset_name=result.get("dataset_name") or result["dataset"], dataset_split=result.get("split"),
            metric_type=result["metric"], metric_name=result.get("metric_name") or result["metric"],
            metric_value=result["value"],
        ))
    return evals


def _what_clip(config: Any, total: int) -> str:
    vision, text = config.vision_config, config.text_config
    if vision.tower == "vit":
        tower = (f"a ViT image tower ({vision.num_hidden_layers} layers, width {vision.hidden_size}, "
                 f"{vision.patch_size}-px patches)")
    else:
        tower = f"a modified ResNet image tower (stages {vision.num_hidden_layers}, stem width {vision.hidden_size})"
    return (f"A CLIP dual encoder (Radford et al., 2021) built with hf_limber: {tower} on {vision.image_size}-px "
            f"images and a causal Transformer text tower ({text.num_hidden_layers} layers, width {text.hidden_size}, "
            f"{text.max_position_embeddings}-token context, {text.vocab_size}-token BPE vocabulary), each projected "
            f"to {config.projection_dim}-d embeddings compared by cosine similarity at a learned temperature. "
            f"{total:,} parameters. It classifies images zero-shot by embedding one text prompt per class.")


def _what_limber(config: Any, total: int, projection: int) -> str:
    encoder = config.vision_source or config.timm_model or config.vision_config.model_type
    lm = config.text_source or config.text_config.model_type
    features = {"tokens": "each of its grid/patch tokens",
                "tiles": f"its pooled vector of each of {config.num_image_tokens} tiles of the picture",
                }.get(config.features, f"its pooled vector, split into {config.num_image_tokens} tokens")
    form = ("This repository holds only the projection (the adapter form); loading it fetches the image encoder "
            "and the LM from the sources above." if config.saved_parts == "adapter"
            else f"This repository holds every weight ({total:,} parameters).")
    return (f"A LiMBeR model (Merullo et al., 2023): one linear layer ({projection:,} parameters) maps a frozen "
            f"image encoder's features ({features}, {config.image_feature_size}-d) to {config.num_image_tokens} "
            f"soft-prompt vectors in the input space of a frozen causal language model, which then writes the "
            f"caption after the prompt \"{config.prompt}\". Only the projection was trained.\n\n"
            f"- Image encoder: `{encoder}`\n- Language model: `{lm}`\n\n{form}")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return " ".join(f"{value} {unit}" for value, unit in ((hours, "h"), (minutes, "min"), (secs, "s")) if value) or "0 s"


def _emoji_styles(training: Mapping[str, Any]) -> list[str]:
    """The emoji styles the model saw: given, or read off the dataset's build report."""
    if training.get("styles"):
        return list(training["styles"])
    report = Path(str(training.get("data", ""))) / "build_report.json"
    return list(json.loads(report.read_text()).get("styles", {})) if report.is_file() else []


def _training_section(training: Mapping[str, Any]) -> str:
    lines = []
    if training.get("recipe"):
        recipe = Path(training["recipe"])
        lines.append(f"Recipe `{recipe.as_posix()}`" + (
            f":\n\n```yaml\n{recipe.read_text().strip()}\n```" if recipe.is_file() else "."))
    if training.get("data"):
        lines.append(f"- Data: {training['data']}")
    if training.get("train_time") is not None:
        time = training["train_time"]
        lines.append(f"- Training time: {_duration(time) if isinstance(time, (int, float)) else time}")
    lines += [f"- {key.replace('_', ' ').capitalize()}: {value}" for key, value in training.items()
              if key not in ("recipe", "data", "train_time", "styles")]
    return "## Training\n\n" + "\n".join(lines)


def _results_table(results: Sequence[Mapping[str, Any]]) -> str:
    rows = ["| task | dataset | split | metric | value |", "|---|---|---|---|---|"]
    for result in results:
        value = f"{result['value']:.4g}" if isinstance(result["value"], float) else result["value"]
        rows.append(f"| {result['task']} | {result.get('dataset_name') or result['dataset']} | "
                    f"{result.get('split') or ''} | {result.get('metric_name') or result['metric']} | {value} |")
    return "## Results\n\n" + "\n".join(rows)


def _plots_section(folder: Path, plots: Sequence[str | os.PathLike]) -> str:
    """Links relative to the card; a plot kept outside the folder is copied into `plots/` first."""
    links = []
    for plot in plots:
        path = folder / plot if (folder / plot).is_file() else Path(plot)
        if not path.is_file():
            raise FileNotFoundError(f"Plot {plot} not found (looked in {folder} and the working directory).")
        if not path.resolve().is_relative_to(folder.resolve()):
            (folder / "plots").mkdir(exist_ok=True)
            path = Path(shutil.copy(path, folder / "plots" / path.name))
        relative = path.resolve().relative_to(folder.resolve()).as_posix()
        links.append(f"![{path.stem.replace('_', ' ')}]({relative})")
    return "## Plots\n\n" + "\n\n".join(links)


def _usage_section(kind: str, repo_id: str) -> str:
    """How to use the model once it is on the Hub as `repo_id`: with transformers alone (remote code)
    and, for LiMBeR, with hf_limber's classes."""
    if kind == "clip":
        return textwrap.dedent(f"""\
            ## Usage

            With transformers alone (the repository carries the model's code):

            ```python
            import torch
            from PIL import Image
            from transformers import AutoModel, AutoProcessor

            model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True).eval()
            processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)

            labels = ["cat", "dog", "car"]
            inputs = processor(text=[f"a picture of a {{label}}" for label in labels], images=Image.open("image.png"))
            with torch.no_grad():
                probabilities = model(**inputs).logits_per_image.softmax(dim=-1)[0]
            print(dict(zip(labels, probabilities.tolist())))
            ```

            With hf_limber installed the same code runs on its own classes.""")
    return textwrap.dedent(f"""\
        ## Usage

        With transformers alone (the repository carries the model's code), as an image-text-to-text pipeline:
        a caption after the model's prompt, and questions as a chat (each user turn becomes its images, then
        "Q: ... A:").

        ```python
        from transformers import pipeline

        pipe = pipeline("image-text-to-text", model="{repo_id}", trust_remote_code=True)
        print(pipe(images="image.png", text=pipe.processor.prompt, max_new_tokens=20)[0]["generated_text"])
        chat = [{{"role": "user", "content": [{{"type": "image", "path": "image.png"}},
                                             {{"type": "text", "text": "What is in the picture?"}}]}}]
        print(pipe(text=chat, max_new_tokens=10, return_full_text=False)[0]["generated_text"])
        ```

        With hf_limber:

        ```python
        from PIL import Image
        from hf_limber import LimberForCausalLM, LimberProcessor

        model = LimberForCausalLM.from_pretrained("{repo_id}")
        processor = LimberProcessor.from_pretrained("{repo_id}")

        inputs = processor(images=[Image.open("image.png")], text="Q: What is in the picture? A:")
        print(processor.batch_decode(model.generate(**inputs, max_new_tokens=10, do_sample=False))[0])
        ```

        Token by token, with any of transformers' streamers (`TextStreamer` prints as it goes; with
        `TextIteratorStreamer`, run `generate` in a thread and iterate):

        ```python
        from transformers import TextStreamer

        model.generate(**processor(images=[Image.open("image.png")]), max_new_tokens=20,
                       streamer=TextStreamer(processor.tokenizer, skip_special_tokens=True))
        ```""")


def _widget(config: Any) -> list[dict[str, str]]:
    """The Hub's inference widget for an image-text-to-text model: a caption and a question on one picture."""
    return [{"src": WIDGET_IMAGE, "text": config.prompt, "example_title": "Caption"},
            {"src": WIDGET_IMAGE, "text": "Q: What is in the picture? A:", "example_title": "Question"}]


def _licences_section(styles: Sequence[str]) -> str:
    sources = candidate_sources("/nonexistent")  # only the licence of each style is read here
    credits: dict[str, list[str]] = {}
    for style in styles:
        if style in sources:
            licence = sources[style][0].licence
            credits.setdefault(f"{licence.attribution} ({licence.url})", []).append(style)
    lines = [f"- **{', '.join(group)}**: {text}" for text, group in credits.items()]
    return ("## Data licences\n\nThe training images are derived from emoji artwork under these licences:\n\n"
            + "\n".join(lines))


def write_model_card(
    folder: str | os.PathLike,
    *,
    kind: str | None = None,
    repo_id: str | None = None,
    results: Sequence[Mapping[str, Any]] | None = None,
    training: Mapping[str, Any] | None = None,
    plots: Sequence[str | os.PathLike] | None = None,
    datasets: Sequence[str] | None = None,
    license: str = "apache-2.0",
) -> Path:
    """Write `folder/README.md`: the model card of a CLIP or LiMBeR model saved in `folder`.

    Args:
        kind: "clip" or "limber"; read from config.json's model_type when None.
        repo_id: the Hub id the usage snippets load (default: `your-name/<folder name>`).
        results: evaluation results, one dict each: `task` (a Hub task id such as
            "zero-shot-image-classification"), `dataset` (Hub dataset id or name), `metric` (metric
            type, e.g. "accuracy"), `value`; optional `dataset_name`, `split`, `metric_name`. They
            fill the results table and the `model-index` metadata.
        training: what the training section shows, all optional: `recipe` (path of the recipe; its
            YAML is quoted), `data` (a description, Hub id or folder; an emoji dataset folder's
            build_report.json gives the styles), `train_time` (seconds or text), `styles` (emoji
            styles trained on, for the data licences), and any other key as "key: value".
        plots: PNG files, relative to `folder` or anywhere (copied into `folder/plots/`).
        datasets: Hub ids of the training datasets, for the metadata.
        license: the licence of the weights, for the metadata (the code's, Apache-2.0, by default).

    Returns the path of the card.
    """
    folder = Path(folder)
    kind = kind or model_kind(folder)
    if kind not in PIPELINE_TAGS:
        raise ValueError(f"{folder}: model cards are written for hf_limber's CLIP and LiMBeR models (kind "
                         f"{' or '.join(PIPELINE_TAGS)}), found {kind!r}. Save the model there with save_pretrained.")
    config = AutoConfig.from_pretrained(folder)
    name = repo_id or f"your-name/{folder.resolve().name}"
    total, projection = _parameter_counts(folder)
    training = dict(training or {})
    base_models = ([source for source in map(_hub_id, (config.text_source, config.vision_source)) if source]
                   if kind == "limber" else [])
    card_data = ModelCardData(
        license=license, library_name="transformers", pipeline_tag=PIPELINE_TAGS[kind],
        tags=["hf_limber", kind, "custom_code"], datasets=list(datasets) if datasets else None,
        base_model=base_models or None,
        # model-index names the model; without results the name would be a stray metadata key.
        model_name=name.split("/")[-1] if results else None, eval_results=_eval_results(results) if results else None,
        widget=_widget(config) if kind == "limber" else None,
    )
    what = _what_clip(config, total) if kind == "clip" else _what_limber(config, total, projection)
    sections = [f"---\n{card_data.to_yaml()}\n---", f"# {name.split('/')[-1]}", what]
    if training:
        sections.append(_training_section(training))
    if results:
        sections.append(_results_table(results))
    if plots:
        sections.append(_plots_section(folder, plots))
    sections.append(_usage_section(kind, name))
    sections.append(f"## Citation\n\n```bibtex\n{CITATIONS[kind]}\n```")
    styles = _emoji_styles(training)
    if styles:
        sections.append(_licences_section(styles))
    card = ModelCard("\n\n".join(sections) + "\n")
    card.save(folder / "README.md")
    return folder / "README.md"


def write_card_from_report(args: Any, kind: str, results: Sequence[Mapping[str, Any]], report_dir: Path) -> Path:
    """The card an `eval-clip --card` / `eval-limber --card` run writes: its results, its plots (the
    report folder's PNGs) and what the command line says about training."""
    folder = Path(args.model)
    plots = sorted(str(plot) for plot in Path(report_dir).glob("*.png"))
    training = {"data": str(args.dataset)}
    if args.recipe:
        training["recipe"] = str(args.recipe)
    if args.train_minutes is not None:
        training["train_time"] = 60 * args.train_minutes
    state = folder / "trainer_state.json"
    precision = logged_precision(json.loads(state.read_text())) if state.is_file() else None
    if precision:
        training["precision"] = precision
    return write_model_card(folder, kind=kind, results=results, plots=plots, training=training)
