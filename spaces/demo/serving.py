"""What the Space serves, without any UI: the CLIP, the LiMBeR model and the embedded gallery, each
loaded from a local folder or a Hub id, and the four tasks on top of them.

A missing model or gallery is not fatal: it becomes a `Missing` error naming what is missing and how
to get it, the tabs that need it show that message, and every other tab keeps working. Loading is
retried on the next request, so a Space started before `hf-limber quickstart` finished picks the
models up without a restart.
"""

from __future__ import annotations

import math
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from PIL import Image
from transformers import TextIteratorStreamer

import hf_limber  # noqa: F401  (registers the Auto classes the CLIP folders name)
from hf_limber import LimberForCausalLM, LimberProcessor
from hf_limber.images import open_image, to_rgb
from hf_limber.evaluation import EmbeddingGallery, ZeroShotClassifier, embed_images, embed_texts
from hf_limber.evaluation.limber_report import LimberEvalSettings, sentence_end_ids
from hf_limber.evaluation.questions import answer_questions
from hf_limber.limber.processing_limber import ImageSlotMismatch, lm_context_length

# Where each part comes from: (environment variable, default). The defaults are the folders
# `hf-limber quickstart` writes.
CLIP_SOURCE = ("HF_LIMBER_CLIP", "runs/quickstart/clip")
LIMBER_SOURCE = ("HF_LIMBER_LIMBER", "runs/quickstart/limber")
GALLERY_SOURCE = ("HF_LIMBER_GALLERY", "runs/quickstart/data/emoji")
# The held-out style makes the most honest gallery; about 500 images embed in seconds on a CPU.
GALLERY_SPLIT = "test_openmoji"
GALLERY_SIZE = 500
# This file sits in <repo>/spaces/demo/; relative defaults are tried there as well as in the current directory.
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
# "user/name" (one slash) is a Hub id; anything else that is not on disk is a missing folder.
HUB_ID = re.compile(r"[\w][\w.-]*/[\w][\w.-]*")

DECODING_MODES = ("greedy", "beam search", "sampling")
# Code shipped inside a model folder or Hub repo runs only when whoever starts the Space opts in.
TRUST_REMOTE_CODE_ENV = "HF_LIMBER_TRUST_REMOTE_CODE"

T = TypeVar("T")


class Missing(RuntimeError):
    """A model or the gallery could not be loaded; the message says which, from where, and what to do."""


class BadInput(ValueError):
    """The user's input cannot be used; the message says what was wrong and what to do instead."""


def source(env_and_default: tuple[str, str]) -> str:
    """The location configured for one part: its environment variable, else what `hf-limber space build`
    wrote into space_models.json, else the quickstart's folder."""
    env, default = env_and_default
    built = Path(__file__).resolve().parent / "space_models.json"
    return os.environ.get(env) or (json.loads(built.read_text()).get(env) if built.exists() else None) or default


def resolve(location: str) -> Path | str | None:
    """A local folder (relative ones looked up in the current directory, then the repository root),
    a Hub id, or None when it is neither."""
    path = Path(location).expanduser()
    for candidate in [path] if path.is_absolute() else [Path.cwd() / path, REPO_ROOT / path]:
        if candidate.exists():
            return candidate
    return location if HUB_ID.fullmatch(location) else None


@contextmanager
def image_slots_checked() -> Iterator[None]:
    """A text that places a different number of images than were given is the user's to fix, not a crash."""
    try:
        yield
    except ImageSlotMismatch as error:
        raise BadInput(str(error)) from None


class Lazy(Generic[T]):
    """One part of the app, loaded on first use and then kept. A failed load is retried on the next
    use. The lock makes concurrent first requests wait for one load instead of running several."""

    def __init__(self, what: str, env: str, location: str, load: Callable[[Path | str], T]) -> None:
        self.what, self.env, self.location, self._load = what, env, location, load
        self._value: T | None = None
        self._lock = threading.Lock()

    def missing(self, reason: str) -> Missing:
        return Missing(
            f"{self.what} not available from '{self.location}' ({reason}). Run `hf-limber quickstart` to build it, "
            f"or set {self.env}=<folder or Hub id> before starting the app."
        )

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                target = resolve(self.location)
                if target is None:
                    raise self.missing("no such folder")
                try:
                    self._value = self._load(target)
                except Missing:
                    raise
                except Exception as error:  # whatever breaks a load, the other tabs must keep serving
                    first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                    raise self.missing(first_line[:300]) from error
            return self._value

    def status(self) -> str | None:
        """None when the part is (or now becomes) available, else the message saying why not."""
        try:
            self.get()
        except Missing as error:
            return str(error)
        return None


@dataclass(frozen=True)
class Clip:
    model: torch.nn.Module
    processor: Any
    classifier: ZeroShotClassifier


@dataclass(frozen=True)
class Limber:
    model: LimberForCausalLM
    processor: LimberProcessor


@dataclass(frozen=True)
class Gallery:
    images: list[Image.Image]
    captions: list[str]


@dataclass(frozen=True)
class GalleryIndex:
    """The gallery with its CLIP embeddings, computed once and searchable (faiss for large galleries)."""

    gallery: Gallery
    images: EmbeddingGallery
    captions: EmbeddingGallery


def trust_remote_code() -> bool:
    """Whether the Space may run Python shipped with the models it loads: only when
    HF_LIMBER_TRUST_REMOTE_CODE=1 is set, never for whatever Hub id the Space is pointed at."""
    return os.environ.get(TRUST_REMOTE_CODE_ENV, "") == "1"


def load_clip(location: Path | str) -> Clip:
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(location, trust_remote_code=trust_remote_code()).eval()
    processor = AutoProcessor.from_pretrained(location, trust_remote_code=trust_remote_code())
    return Clip(model, processor, ZeroShotClassifier(model, processor, templates="simple"))


def load_limber(location: Path | str) -> Limber:
    model = LimberForCausalLM.from_pretrained(location, trust_remote_code=trust_remote_code()).eval()
    return Limber(model, LimberProcessor.from_pretrained(location))


def load_gallery(location: Path | str, size: int = GALLERY_SIZE) -> Gallery:
    """At most `size` evenly spaced rows of the held-out style's split (else of the first split) of a
    dataset saved with `save_to_disk`, or of a Hub dataset. Evenly spaced, not the first rows: the emoji
    datasets are in emoji order, whose first 500 are nearly all faces and people."""
    import datasets

    if isinstance(location, Path):
        data = datasets.load_from_disk(str(location))
    else:
        data = datasets.load_dataset(location)
    if isinstance(data, datasets.DatasetDict):
        data = data[GALLERY_SPLIT] if GALLERY_SPLIT in data else data[next(iter(data))]
    absent = {"image", "caption"} - set(data.column_names)
    if absent:
        raise Missing(
            f"The gallery dataset at '{location}' has no {' or '.join(sorted(absent))} column (it has "
            f"{', '.join(data.column_names)}). Point HF_LIMBER_GALLERY at a dataset built by `hf-limber data emoji`."
        )
    if len(data) == 0:
        raise Missing(f"The gallery dataset at '{location}' has no rows. Point HF_LIMBER_GALLERY at a dataset "
                      "built by `hf-limber data emoji`.")
    rows = data.select(range(0, len(data), math.ceil(len(data) / size)))
    return Gallery([to_rgb(image) for image in rows["image"]], list(rows["caption"]))


class Services:
    """The four tasks of the Space over lazily loaded parts."""

    def __init__(self, clip_location: str, limber_location: str, gallery_location: str) -> None:
        self.clip = Lazy("CLIP model", CLIP_SOURCE[0], clip_location, load_clip)
        self.limber = Lazy("LiMBeR model", LIMBER_SOURCE[0], limber_location, load_limber)
        self.index = Lazy("Gallery dataset", GALLERY_SOURCE[0], gallery_location, self._index_gallery)

    def warm_up(self) -> None:
        """Load what is there now and embed the gallery once, so the first requests are quick."""
        for part in (self.clip, self.limber, self.index):
            part.status()

    def _index_gallery(self, location: Path | str) -> GalleryIndex:
        clip, gallery = self.clip.get(), load_gallery(location)
        return GalleryIndex(
            gallery,
            EmbeddingGallery(embed_images(clip.model, clip.processor, gallery.images, progress="gallery images")),
            EmbeddingGallery(embed_texts(clip.model, clip.processor, gallery.captions, progress="gallery captions")),
        )

    def classify(self, image: Image.Image, labels: Sequence[str], templates: str = "simple",
                 top_k: int = 5) -> dict[str, float]:
        """Zero-shot probabilities of the `top_k` most likely labels."""
        if not labels:
            raise BadInput("No labels given: type a few class names, separated by commas or new lines.")
        clip = self.clip.get()
        return dict(clip.classifier([image], list(labels), top_k=top_k, templates=templates)[0])

    def caption(self, image: Image.Image, decoding: str = "greedy", num_beams: int = 3, temperature: float = 0.7,
                top_p: float = 0.9, max_new_tokens: int = 20) -> str:
        limber, batch, options = self._caption_request(image, decoding, num_beams, temperature, top_p, max_new_tokens)
        return limber.processor.decode_captions(limber.model.generate(**batch, **options))[0]

    def stream_caption(self, image: Image.Image, decoding: str = "greedy", num_beams: int = 3,
                       temperature: float = 0.7, top_p: float = 0.9, max_new_tokens: int = 20) -> Iterator[str]:
        """The caption so far, each time the LM adds to it (transformers' TextIteratorStreamer, generate in a
        thread); the last one is exactly `caption`'s. Beam search knows its caption only at the end: one piece."""
        limber, batch, options = self._caption_request(image, decoding, num_beams, temperature, top_p, max_new_tokens)
        if options.get("num_beams", 1) > 1:
            yield limber.processor.decode_captions(limber.model.generate(**batch, **options))[0]
            return
        streamer = TextIteratorStreamer(limber.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        outcome: dict[str, Any] = {}

        def generate() -> None:
            try:
                outcome["tokens"] = limber.model.generate(**batch, **options, streamer=streamer)
            except Exception as error:  # handed to the request's thread, which raises it
                outcome["error"] = error
                streamer.end()

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        text, shown = "", ""
        for piece in streamer:
            text += piece
            partial = text.split("\n", 1)[0].strip()  # a caption is one line, as decode_captions cuts it
            if partial != shown:
                shown = partial
                yield shown
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        final = limber.processor.decode_captions(outcome["tokens"])[0]
        if final != shown:
            yield final

    def _caption_request(self, image: Image.Image, decoding: str, num_beams: int, temperature: float, top_p: float,
                         max_new_tokens: int) -> tuple[Any, dict[str, torch.Tensor], dict[str, Any]]:
        """The LiMBeR model, its inputs for one picture, and the `generate` options of a caption request."""
        limber = self.limber.get()
        options = decoding_options(decoding, num_beams, temperature, top_p)
        with image_slots_checked():
            batch = limber.processor(images=[image], max_new_tokens=int(max_new_tokens),
                                     context_length=lm_context_length(limber.model.config))
        # The evaluation's generation defaults (issue 16): without the repetition penalty the quickstart's model
        # loops ("a pair of a pair of ..."), and a caption is one sentence.
        tokenizer = limber.processor.tokenizer
        return limber, batch, {**options, "max_new_tokens": int(max_new_tokens),
                               "repetition_penalty": LimberEvalSettings.repetition_penalty,
                               "eos_token_id": [*sentence_end_ids(tokenizer), tokenizer.eos_token_id]}

    def answer(self, image: Image.Image, question: str) -> str:
        if not question.strip():
            raise BadInput("No question given: ask something about the picture, such as 'What color is it?'.")
        limber = self.limber.get()
        with image_slots_checked():
            return answer_questions(limber.model, limber.processor, [image], [question.strip()])[0]

    def images_for_text(self, query: str, k: int = 8) -> list[tuple[Image.Image, str]]:
        """The gallery's `k` images nearest to a text, each with its caption."""
        if not query.strip():
            raise BadInput("No search text given: describe what to look for, such as 'a red apple'.")
        clip, index = self.clip.get(), self.index.get()
        query_embeds = embed_texts(clip.model, clip.processor, [query.strip()])
        _, indices = index.images.search(query_embeds, k)
        return [(index.gallery.images[i], index.gallery.captions[i]) for i in indices[0].tolist()]

    def captions_for_image(self, image: Image.Image, k: int = 8) -> list[tuple[str, float]]:
        """The gallery's `k` captions nearest to an image, with their cosine similarities."""
        clip, index = self.clip.get(), self.index.get()
        scores, indices = index.captions.search(embed_images(clip.model, clip.processor, [image]), k)
        return [(index.gallery.captions[i], round(s, 4)) for i, s in zip(indices[0].tolist(), scores[0].tolist())]


def decoding_options(decoding: str, num_beams: int, temperature: float, top_p: float) -> dict[str, Any]:
    """`generate` arguments for one decoding mode; the other modes' settings are left out so that
    transformers does not warn about options it ignores."""
    if decoding == "greedy":
        return {"do_sample": False, "num_beams": 1}
    if decoding == "beam search":
        return {"do_sample": False, "num_beams": max(1, int(num_beams))}
    if decoding == "sampling":
        if temperature <= 0 or not 0 < top_p <= 1:
            raise BadInput(f"Sampling needs temperature > 0 and 0 < top_p <= 1 (got {temperature}, {top_p}).")
        return {"do_sample": True, "num_beams": 1, "temperature": float(temperature), "top_p": float(top_p)}
    raise BadInput(f"Unknown decoding {decoding!r}: choose one of {', '.join(DECODING_MODES)}.")


def parse_labels(text: str) -> list[str]:
    """Labels separated by commas or new lines, stripped, empty ones and repeats dropped."""
    return list(dict.fromkeys(label.strip() for label in re.split(r"[,\n]", text or "") if label.strip()))


def read_image(path: str | os.PathLike | None) -> Image.Image:
    """An uploaded file as an RGB image, or a `BadInput` saying why it is not one."""
    if path is None:
        raise BadInput("No image uploaded: drop a PNG, JPEG or WebP picture on the upload box first.")
    name = Path(path).name
    try:
        return to_rgb(open_image(path))
    except Image.DecompressionBombError as error:
        raise BadInput(f"'{name}' is too large to decode safely ({error}). Upload a smaller picture.") from None
    except ValueError as error:  # open_image's message says what failed and what to pass instead
        raise BadInput(str(error).replace(str(path), name)) from None
