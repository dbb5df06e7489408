"""ClipProcessor: transformers' CLIP image processor + a fast CLIP BPE tokenizer.

Images of any mode Pillow can open become RGB first (`hf_limber.images`), before the image
processor sees them.
"""

from __future__ import annotations

import copy
import html
import os
import shutil
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from transformers import BatchFeature, CLIPImageProcessor, CLIPTokenizer, ProcessorMixin

try:
    from hf_limber.images import ImageInput, as_image_list, prepare_image
except ImportError:  # remote code without hf_limber: save_pretrained put images.py beside this file
    from .images import ImageInput, as_image_list, prepare_image
from .configuration_clip import ClipConfig

# Image helpers that lived here until hf_limber.images took them (deprecated names).
_MOVED_TO_IMAGES = ("open_image", "to_rgb")


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_IMAGES:
        warnings.warn(f"hf_limber.clip.processing_clip.{name} moved: import it from hf_limber.images.",
                      FutureWarning, stacklevel=2)
        return getattr(sys.modules[prepare_image.__module__], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def clean_text(text: str) -> str:
    """Undo HTML escaping (twice, for doubly-escaped web captions), as CLIP's own tokenizer does."""
    return html.unescape(html.unescape(text)).strip()


def clean_texts(text: str | Sequence[str]) -> str | list[str]:
    """`clean_text` of one text or each of a sequence, after checking that each is text the tokenizer can
    encode; anything else is a ValueError naming the item and its index (the tokenizer's own errors
    name neither)."""
    if isinstance(text, str):
        return clean_text(_checked_text(text, "text"))
    if isinstance(text, (bytes, bytearray)) or not isinstance(text, Iterable):
        _checked_text(text, "text")  # raises, naming what was passed
    texts = list(text)
    if not texts:
        raise ValueError("text=[] holds no text: pass at least one string, or leave text unset for images only.")
    return [clean_text(_checked_text(item, f"text[{index}]")) for index, item in enumerate(texts)]


def _checked_text(item: Any, name: str) -> str:
    if isinstance(item, (bytes, bytearray)):
        raise ValueError(f"{name} is {type(item).__name__}, not str: decode it first, e.g. "
                         "value.decode('utf-8', errors='replace').")
    if not isinstance(item, str):
        raise ValueError(f"{name} is {'None' if item is None else type(item).__name__}, not str: pass text "
                         "(an empty string for no caption).")
    try:
        item.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{name} holds a lone surrogate at character {error.start}, which is not valid "
                         "Unicode: decode the source with errors='replace' (or re-encode with "
                         "'surrogatepass' and decode properly).") from None
    return item


def clip_image_processor(image_size: int) -> CLIPImageProcessor:
    """The paper's preprocessing: bicubic resize of the short side, centre crop, CLIP mean/std."""
    return CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        do_convert_rgb=True,
    )


def with_image_size(image_processor: CLIPImageProcessor, image_size: int) -> CLIPImageProcessor:
    """The same preprocessing (normalisation, resampling, ...) for pictures of another size."""
    sizes = {"size": {"shortest_edge": image_size}, "crop_size": {"height": image_size, "width": image_size}}
    return type(image_processor).from_dict({**image_processor.to_dict(), **sizes})


class ClipProcessor(ProcessorMixin):
    """Prepares `pixel_values` and `input_ids`/`attention_mask` for a ClipModel.

    Text longer than the context is truncated and keeps its end-of-text token, where the text
    tower pools.
    """

    def __init__(self, image_processor: CLIPImageProcessor | None = None, tokenizer: CLIPTokenizer | None = None,
                 **kwargs: Any) -> None:
        super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def for_config(cls, config: ClipConfig, tokenizer: CLIPTokenizer) -> "ClipProcessor":
        """A processor matching a model's image size and context length (the tokenizer is copied)."""
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.model_max_length = config.text_config.max_position_embeddings
        return cls(clip_image_processor(config.vision_config.image_size), tokenizer)

    @property
    def context_length(self) -> int:
        return self.tokenizer.model_max_length

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        images: ImageInput | Sequence[ImageInput] | None = None,
        return_tensors: str | None = "pt",
        padding: bool | str = True,
        **kwargs: Any,
    ) -> BatchFeature:
        if text is None and images is None:
            raise ValueError("ClipProcessor needs text, images or both.")
        data: dict[str, Any] = {}
        if text is not None:
            text = clean_texts(text)
            data.update(self.tokenizer(
                text, padding=padding, padding_side="right", truncation=True, max_length=self.context_length,
                return_tensors=return_tensors, **kwargs,
            ))
        if images is not None:
            images = as_image_list(images)
            if not images:
                raise ValueError("images=[] holds no image: pass at least one, or leave images unset for text only.")
            pixels = self.image_processor([prepare_image(image) for image in images], return_tensors=return_tensors)
            data["pixel_values"] = pixels["pixel_values"]
        return BatchFeature(data=data, tensor_type=return_tensors)

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> list[str]:
        """Also writes this class's code, with the image helpers it imports, and names it in
        processor_config.json, so that `AutoProcessor.from_pretrained(folder, trust_remote_code=True)` works
        with transformers alone. (`register_for_auto_class` cannot do it: transformers copies only imports
        from this file's own folder, and the image helpers live in hf_limber.images.)"""
        os.makedirs(save_directory, exist_ok=True)
        for module in (__name__, ClipConfig.__module__, prepare_image.__module__):
            source = Path(sys.modules[module].__file__)
            shutil.copyfile(source, Path(save_directory) / source.name)
        self.auto_map = {"AutoProcessor": f"{Path(__file__).stem}.{type(self).__name__}"}
        files = super().save_pretrained(save_directory, **kwargs)
        if push_to_hub:
            # transformers would upload only files written after its own start; push everything instead.
            self.push_to_hub(kwargs.pop("repo_id", Path(save_directory).name), **kwargs)
        return files
