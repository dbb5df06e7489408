"""ClipProcessor: transformers' CLIP image processor + a fast CLIP BPE tokenizer.

Images of any mode Pillow can open become RGB here, before the image processor sees them:
transparency is laid on white (emoji artwork is transparent; dropping alpha would turn it black)
and 16-bit or float images are scaled down to 8 bits instead of being clipped.
"""

from __future__ import annotations

import copy
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from transformers import BatchFeature, CLIPImageProcessor, CLIPTokenizer, ProcessorMixin

from .configuration_clip import ClipConfig

ImageInput = Image.Image | str | Path | bytes | np.ndarray | torch.Tensor


def open_image(source: str | Path | bytes) -> Image.Image:
    """Open and fully decode an image file or its bytes; errors name the input."""
    name = f"{len(source)} bytes of image data" if isinstance(source, bytes) else str(source)
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        image.load()  # decoding is lazy: a truncated file only fails here
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file not found: {name}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(
            f"Could not read an image from {name}: {error}. Pass a readable image file "
            "(PNG, JPEG, WebP, ...) or a PIL image."
        ) from None
    return image


def to_rgb(image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """RGB version of an image in any Pillow mode."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 255.0)
        image = Image.fromarray(np.clip(values / peak * 255.0, 0, 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, (*background, 255))
        return Image.alpha_composite(canvas, image).convert("RGB")
    return image.convert("RGB")


def prepare_image(image: ImageInput) -> Image.Image | np.ndarray | torch.Tensor:
    if isinstance(image, (str, Path, bytes)):
        image = open_image(image)
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, (np.ndarray, torch.Tensor)):
        return image
    raise TypeError(f"Cannot read an image from a {type(image).__name__}; pass a PIL image, a path, bytes or an array.")


def as_image_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """One image or any sequence of them (lists, tuples, a `datasets` column) as a list."""
    if isinstance(images, (Image.Image, str, Path, bytes, Mapping)):
        return [images]  # a mapping is one (unreadable) input, not a sequence of keys
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim < 4:
        return [images]
    return list(images)


def clean_text(text: str) -> str:
    """Undo HTML escaping (twice, for doubly-escaped web captions), as CLIP's own tokenizer does."""
    return html.unescape(html.unescape(text)).strip()


def clip_image_processor(image_size: int) -> CLIPImageProcessor:
    """The paper's preprocessing: bicubic resize of the short side, centre crop, CLIP mean/std."""
    return CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        do_convert_rgb=True,
    )


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
            text = clean_text(text) if isinstance(text, str) else [clean_text(t) for t in list(text)]
            data.update(self.tokenizer(
                text, padding=padding, padding_side="right", truncation=True, max_length=self.context_length,
                return_tensors=return_tensors, **kwargs,
            ))
        if images is not None:
            pixels = self.image_processor([prepare_image(image) for image in as_image_list(images)],
                                          return_tensors=return_tensors)
            data["pixel_values"] = pixels["pixel_values"]
        return BatchFeature(data=data, tensor_type=return_tensors)
