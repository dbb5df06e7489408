"""The hf_limber Space: zero-shot classification and image/text search with CLIP, captions and visual
questions with LiMBeR.

Models and the gallery come from local folders or Hub ids named by HF_LIMBER_CLIP, HF_LIMBER_LIMBER
and HF_LIMBER_GALLERY (default: the folders `hf-limber quickstart` writes). Run it with
`python spaces/demo/app.py` and open http://127.0.0.1:7860.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Before gradio is imported: it reads these at import time, and with them it makes no outside calls.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # serving.py, also when imported by tests
from serving import (  # noqa: E402
    CLIP_SOURCE,
    DECODING_MODES,
    GALLERY_SOURCE,
    LIMBER_SOURCE,
    BadInput,
    Lazy,
    Missing,
    Services,
    parse_labels,
    read_image,
    source,
)

DEFAULT_LABELS = "face smiling, animal mammal, food fruit, transport ground, plant flower, country flag, sport, music"
TEMPLATE_CHOICES = ("emoji", "imagenet")
MAX_TOP_K = 10
# Requests run in threads; torch releases the GIL in its kernels, so several requests make progress at once.
CONCURRENCY = 8
QUEUE_SIZE = 256

INTRO = """# hf_limber
**CLIP** (Radford et al. 2021) classifies pictures by labels you type and searches the gallery;
**LiMBeR** (Merullo et al. 2023) captions pictures and answers questions about them through one linear
map from the image encoder into a frozen language model."""


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Errors a user can act on (bad input, a missing model) become messages in the page; gradio would
    otherwise show only 'Error'. A generator stays one, so gradio streams what it yields."""

    def message(error: Exception) -> gr.Error:
        return gr.Error(str(error), title="Cannot do that", print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def streaming(*args: Any) -> Iterator[Any]:
            try:
                yield from fn(*args)
            except (BadInput, Missing) as error:
                raise message(error) from error

        return streaming

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except (BadInput, Missing) as error:
            raise message(error) from error

    return wrapper


def status_text(parts: list[Lazy]) -> str:
    """What a tab runs on, or why it cannot run (each problem once)."""
    problems = list(dict.fromkeys(message for part in parts if (message := part.status())))
    if problems:
        return "\n\n".join(f"⚠️ **{message}**" for message in problems)
    return "Ready: " + "; ".join(f"{part.what} from `{part.location}`" for part in parts) + "."


def image_upload(elem_id: str) -> gr.File:
    """An upload box and a preview of what was decoded from it. A file rather than gr.Image, whose
    own decoding fails before the app can say what was wrong with the upload."""
    upload = gr.File(label="Image (PNG, JPEG, WebP)", file_types=["image"], type="filepath", elem_id=elem_id)
    preview = gr.Image(label="Preview", interactive=False, height=180, elem_id=f"{elem_id}-preview")
    upload.upload(check_upload, upload, [preview, upload], api_visibility="private")
    upload.clear(lambda: None, None, preview, api_visibility="private")
    return upload


def check_upload(path: str | None) -> tuple[Image.Image | None, Any]:
    """The decoded picture for the preview. An unreadable file is explained and taken out of the box,
    which is then ready for another try."""
    try:
        return read_image(path), gr.update()
    except BadInput as error:
        gr.Warning(str(error), title="Not an image")
        return None, None


def show_decoding_options(mode: str) -> list[dict[str, Any]]:
    """The beam count for beam search, temperature and top-p for sampling, nothing for greedy."""
    return [gr.update(visible=mode == "beam search")] + [gr.update(visible=mode == "sampling")] * 2


def build_demo(clip_dir: str | os.PathLike | None = None, limber_dir: str | os.PathLike | None = None,
               gallery_dir: str | os.PathLike | None = None) -> gr.Blocks:
    """The app over the given model folders / Hub ids (None: the environment variable or the
    quickstart's folder). Whatever is there is loaded, and the gallery embedded, before this returns."""
    services = Services(
        str(clip_dir or source(CLIP_SOURCE)), str(limber_dir or source(LIMBER_SOURCE)),
        str(gallery_dir or source(GALLERY_SOURCE)),
    )
    services.warm_up()
    tab_parts = {
        "classify": [services.clip], "caption": [services.limber], "answer": [services.limber],
        "search": [services.clip, services.index],
    }

    def classify(path: str | None, labels: str, ensemble: bool, templates: str, top_k: float) -> dict[str, float]:
        return services.classify(read_image(path), parse_labels(labels), templates if ensemble else "simple",
                                 int(top_k))

    def caption(path: str | None, decoding: str, num_beams: float, temperature: float, top_p: float,
                max_new_tokens: float) -> Iterator[str]:
        # The caption grows in the page as the LM writes it; API clients get the last, whole caption.
        yield from services.stream_caption(read_image(path), decoding, int(num_beams), temperature, top_p,
                                           int(max_new_tokens))

    def answer(path: str | None, question: str) -> str:
        return services.answer(read_image(path), question) or "(the model gave no answer)"

    def search_text(query: str, k: float) -> list[tuple[Image.Image, str]]:
        return services.images_for_text(query, int(k))

    def search_image(path: str | None, k: float) -> list[list[Any]]:
        return [[caption, score] for caption, score in services.captions_for_image(read_image(path), int(k))]

    with gr.Blocks(title="hf_limber: CLIP and LiMBeR") as demo:
        gr.Markdown(INTRO)
        statuses = {}
        with gr.Tabs():
            with gr.Tab("Zero-shot classification", id="classify"):
                statuses["classify"] = gr.Markdown(status_text(tab_parts["classify"]), elem_id="status-classify")
                with gr.Row():
                    with gr.Column():
                        clf_image = image_upload("clf-image")
                    with gr.Column():
                        labels = gr.Textbox(DEFAULT_LABELS, lines=3, label="Labels (comma or newline separated)",
                                            elem_id="clf-labels-input")
                        ensemble = gr.Checkbox(False, label="Template ensembling (off: 'a photo of a {}.')")
                        templates = gr.Radio(list(TEMPLATE_CHOICES), value="emoji", label="Template set")
                        top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="Top k")
                        clf_button = gr.Button("Classify", variant="primary", elem_id="clf-run")
                    clf_output = gr.Label(num_top_classes=MAX_TOP_K, label="Labels", elem_id="clf-labels")
                clf_button.click(friendly(classify), [clf_image, labels, ensemble, templates, top_k], clf_output,
                                 api_name="classify")

            with gr.Tab("Captioning (LiMBeR)", id="caption"):
                statuses["caption"] = gr.Markdown(status_text(tab_parts["caption"]), elem_id="status-caption")
                with gr.Row():
                    with gr.Column():
                        cap_image = image_upload("cap-image")
                    with gr.Column():
                        decoding = gr.Radio(list(DECODING_MODES), value="greedy", label="Decoding")
                        num_beams = gr.Slider(2, 8, value=3, step=1, label="Beams", visible=False)
                        temperature = gr.Slider(0.1, 2.0, value=0.7, step=0.05, label="Temperature", visible=False)
                        top_p = gr.Slider(0.05, 1.0, value=0.9, step=0.05, label="Top p", visible=False)
                        max_new_tokens = gr.Slider(1, 64, value=20, step=1, label="Max new tokens")
                        cap_button = gr.Button("Caption", variant="primary", elem_id="cap-run")
                    cap_output = gr.Textbox(label="Caption", elem_id="cap-text", interactive=False)
                decoding.change(show_decoding_options, decoding, [num_beams, temperature, top_p],
                                api_visibility="private")
                cap_button.click(friendly(caption),
                                 [cap_image, decoding, num_beams, temperature, top_p, max_new_tokens],
                                 cap_output, api_name="caption")

            with gr.Tab("Visual questions (LiMBeR)", id="answer"):
                statuses["answer"] = gr.Markdown(status_text(tab_parts["answer"]), elem_id="status-answer")
                with gr.Row():
                    with gr.Column():
                        vqa_image = image_upload("vqa-image")
                    with gr.Column():
                        question = gr.Textbox("What is in the picture?", label="Question", elem_id="vqa-question")
                        vqa_button = gr.Button("Answer", variant="primary", elem_id="vqa-run")
                        vqa_output = gr.Textbox(label="Answer", elem_id="vqa-text", interactive=False)
                vqa_button.click(friendly(answer), [vqa_image, question], vqa_output, api_name="answer")

            with gr.Tab("Image ↔ text search", id="search"):
                statuses["search"] = gr.Markdown(status_text(tab_parts["search"]), elem_id="status-search")
                k = gr.Slider(1, 24, value=8, step=1, label="Results")
                with gr.Row():
                    with gr.Column():
                        query = gr.Textbox("a red apple", label="Text query: find images", elem_id="search-query")
                        text_button = gr.Button("Search images", variant="primary", elem_id="search-text-run")
                        found_images = gr.Gallery(label="Nearest images", columns=4, elem_id="search-images")
                    with gr.Column():
                        search_upload = image_upload("search-image")
                        image_button = gr.Button("Search captions", variant="primary", elem_id="search-image-run")
                        found_captions = gr.Dataframe(headers=["caption", "cosine similarity"],
                                                      label="Nearest captions", elem_id="search-captions")
                text_button.click(friendly(search_text), [query, k], found_images, api_name="search_text")
                image_button.click(friendly(search_image), [search_upload, k], found_captions, api_name="search_image")

        # A page opened after `hf-limber quickstart` finished finds the models without a restart.
        demo.load(lambda: [status_text(tab_parts[name]) for name in statuses], None, list(statuses.values()),
                  api_visibility="private")
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo


if __name__ == "__main__":
    # Only this machine can reach the app, unless GRADIO_SERVER_NAME says otherwise (Spaces set 0.0.0.0).
    build_demo().launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), max_file_size="20mb")
