"""LimberProcessor: the encoder's image processor + the LM's tokenizer + k image placeholders + the prompt.

A sequence is `[image tokens] prompt caption <eos>`; with several images (n-shot questions) each
`<image>` marker in the text becomes k placeholders. Training batches are padded on the right with
labels only on the caption and its end token; generation batches are padded on the left.

Image slots come only from the images passed: the markers of a prompt template must match them in
number (else `ImageSlotMismatch` before anything runs), and text a user typed goes through
`inert_text` first, so a typed `<image>` stays plain text. Text longer than the LM's context (less the
image tokens and the room to generate) is cut with a warning.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoImageProcessor, BatchFeature, CLIPImageProcessor, PreTrainedTokenizerBase, ProcessorMixin

try:
    from hf_limber.images import ImageInput, as_image_list, prepare_image
except ImportError:  # remote code without hf_limber: save_pretrained put images.py beside this file
    from .images import ImageInput, as_image_list, prepare_image
from .configuration_limber import LimberConfig
from .modeling_limber import IGNORE_INDEX
from .remote_code import copy_code


# LiMBeR's (and MAGMA's) prompt format as a chat: the text the caption prompt puts before its image (e.g. the
# LM's "<|endoftext|>") opens the conversation; each user turn is its images, then "Q: <text> A:" (or the caption
# prompt's text after its image when it has no text); each assistant turn " <answer>" and a line break, as in
# n-shot questions (evaluation/questions.py). Text entries cannot add images: a typed marker becomes a plain word.
CHAT_TEMPLATE = (
    "{{- prompt_start -}}"
    "{%- for message in messages -%}"
    "{%- set items = [{'type': 'text', 'text': message['content']}] if message['content'] is string "
    "else message['content'] -%}"
    "{%- set ns = namespace(text='') -%}"
    "{%- for item in items if item['type'] == 'text' -%}"
    "{%- set ns.text = (ns.text ~ ' ' ~ item['text'] | replace(image_token, typed_image_token)) | trim -%}"
    "{%- endfor -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- for item in items if item['type'] == 'image' -%}{{ image_token }}{%- endfor -%}"
    "{{- 'Q: ' ~ ns.text ~ ' A:' if ns.text else prompt_end -}}"
    "{%- elif message['role'] == 'assistant' -%}{{- ' ' ~ ns.text ~ '\n' -}}"
    "{%- else -%}{{- ns.text ~ '\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
)


class ImageSlotMismatch(ValueError):
    """The text places a different number of images than were passed."""


def inert_text(text: str, image_token: str = "<image>") -> str:
    """User-typed text with every image marker turned into a plain word, so that only the prompt
    template (or the chat template) decides where images go."""
    return text.replace(image_token, image_token.strip("<>[]{}() ") or "image")


def image_processor_for(model: torch.nn.Module, config: LimberConfig) -> CLIPImageProcessor:
    """Resize, centre-crop and normalise as the encoder expects: the image processor saved with the
    encoder when there is one, timm's statistics for timm encoders, CLIP's otherwise."""
    size = config.image_size
    options: dict[str, Any] = {}
    if config.vision_source:
        try:
            saved = AutoImageProcessor.from_pretrained(config.vision_source)
        except (OSError, ValueError):
            saved = None  # an encoder folder without a preprocessor config
        if saved is not None and getattr(saved, "crop_size", {}).get("height", size) == size:
            return saved
        if saved is not None:  # the encoder's statistics at the size this model feeds it
            options = {"image_mean": list(saved.image_mean), "image_std": list(saved.image_std)}
    cfg = getattr(getattr(model, "image_encoder", model), "pretrained_cfg", None)
    if cfg is not None and not options:
        options = {"image_mean": list(cfg["mean"]), "image_std": list(cfg["std"])}
    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}, **options)


def lm_context_length(config: LimberConfig) -> int | None:
    """How many positions the LM has (max_position_embeddings; GPT-2's n_positions), if its config says."""
    if config.text_config is None:
        return None
    return getattr(config.text_config.get_text_config(), "max_position_embeddings", None)


class LimberProcessor(ProcessorMixin):
    def __init__(
        self,
        image_processor: CLIPImageProcessor | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        num_image_tokens: int = 1,
        image_token_id: int = 0,
        image_token: str = "<image>",
        prompt: str = "A picture of",
        context_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.num_image_tokens = num_image_tokens
        self.image_token_id = image_token_id
        self.image_token = image_token
        self.prompt = prompt
        # The LM's positions (max_position_embeddings): longer text is cut to fit. None: not known.
        self.context_length = context_length
        kwargs["chat_template"] = kwargs.get("chat_template") or CHAT_TEMPLATE
        super().__init__(image_processor, tokenizer, **kwargs)
        if self.tokenizer is not None:
            # This processor pads by itself; pipelines that batch pad by the tokenizer's side, and generation needs left.
            self.tokenizer.padding_side = "left"

    @property
    def prompt_around_image(self) -> tuple[str, str]:
        """The caption prompt's text before and after its image marker (without one, the image comes first)."""
        prompt = self.prompt or ""
        before, marker, after = prompt.partition(self.image_token)
        return (before, after) if marker else ("", prompt)

    @classmethod
    def for_model(cls, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                  image_processor: CLIPImageProcessor | None = None) -> "LimberProcessor":
        config = model.config
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls(image_processor or image_processor_for(model, config), tokenizer, config.num_image_tokens,
                   config.image_token_id, config.image_token, config.prompt, lm_context_length(config))

    # -- text ------------------------------------------------------------------------------------

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def _segments(self, text: str) -> list[list[int]]:
        """Token ids of the text between image slots: each `<image>` marker is a slot; one image first
        if the text names none."""
        if self.image_token not in text:
            text = self.image_token + text
        return [self._encode(segment) for segment in text.split(self.image_token)]

    def _fit(self, segments: list[list[int]], budget: int) -> bool:
        """Cut text tokens until the segments fit in `budget`, from the start of the longest segment
        (its end leads into what the LM writes next). Whether anything was cut."""
        overflow = sum(map(len, segments)) - budget
        if overflow > 0 and overflow > sum(map(len, segments)):
            raise ValueError(
                f"The images alone ({len(segments) - 1} x {self.num_image_tokens} tokens) leave no room for text in "
                f"the LM's context of {self.context_length} positions: pass fewer images or fewer new tokens."
            )
        cut_any = overflow > 0
        while overflow > 0:
            longest = max(range(len(segments)), key=lambda index: len(segments[index]))
            cut = min(overflow, len(segments[longest]))
            segments[longest] = segments[longest][cut:]
            overflow -= cut
        return cut_any

    def _join(self, segments: list[list[int]]) -> list[int]:
        ids = list(segments[0])
        for segment in segments[1:]:
            ids += [self.image_token_id] * self.num_image_tokens + segment
        return ids

    def _pad(self, rows: list[list[int]], side: str, value: int) -> torch.Tensor:
        width = max(len(row) for row in rows)
        padded = [([value] * (width - len(r)) + r) if side == "left" else (r + [value] * (width - len(r))) for r in rows]
        return torch.tensor(padded, dtype=torch.long)

    def __call__(
        self,
        images: ImageInput | Sequence[ImageInput] | None = None,
        text: str | Sequence[str] | None = None,
        captions: str | Sequence[str] | None = None,
        image_features: torch.Tensor | None = None,
        padding_side: str | None = None,
        return_tensors: str = "pt",
        max_new_tokens: int = 0,
        context_length: int | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Model inputs. `text` defaults to the prompt; it is a template: each image marker in it is
        where the next image goes, and the markers must match the images passed (pass user-typed text
        through `inert_text`). With `captions` (training), each sequence ends in the caption and the end
        token, and `labels` mark exactly those tokens. Text is cut (with a warning) to leave
        `max_new_tokens` positions free in the LM's context (`context_length`, default the processor's)."""
        if images is None and image_features is None:
            raise ValueError("LimberProcessor needs images (or cached image_features).")
        if images is not None:  # chat templates pass one list of images per conversation
            images = [image for item in as_image_list(images)
                      for image in (as_image_list(item) if isinstance(item, (list, tuple)) else [item])]
        count = len(image_features) if image_features is not None else len(images)
        if captions is not None:
            captions = [captions] if isinstance(captions, str) else list(captions)
        if text is not None and not isinstance(text, str):
            text = list(text)
        batch = len(captions) if captions is not None else (len(text) if isinstance(text, list) else count)
        texts = [text] * batch if text is None or isinstance(text, str) else list(text)
        texts = [self.prompt if t is None else t for t in texts]
        rows, label_rows = [], []
        all_segments = [self._segments(prompt) for prompt in texts]
        slots = sum(len(segments) - 1 for segments in all_segments)
        if slots != count:
            raise ImageSlotMismatch(
                f"The text places {slots} image(s) ({self.image_token!r} markers, or one at the start of a text without "
                f"any) but {count} image(s) were passed. Put one {self.image_token} where each image goes, and pass "
                "user-typed text through inert_text() so that it cannot add images."
            )
        context_length = context_length or self.context_length
        truncated = 0
        for index, segments in enumerate(all_segments):
            target = []
            if captions is not None:
                target = self._encode(" " + captions[index].strip()) + [self.tokenizer.eos_token_id]
            if context_length is not None:
                images_length = (len(segments) - 1) * self.num_image_tokens
                truncated += self._fit(segments, context_length - images_length - len(target) - max_new_tokens)
            ids = self._join(segments)
            rows.append(ids + target)
            label_rows.append([IGNORE_INDEX] * len(ids) + target)
        if truncated:
            warnings.warn(
                f"{truncated} text(s) cut to fit the LM's context of {context_length} positions (with the image tokens "
                f"and {max_new_tokens} new tokens); their earliest words were dropped.", stacklevel=2)
        side = padding_side or ("right" if captions is not None else "left")
        data: dict[str, Any] = {
            "input_ids": self._pad(rows, side, self.tokenizer.pad_token_id),
            "attention_mask": self._pad([[1] * len(r) for r in rows], side, 0),
        }
        if captions is not None:
            data["labels"] = self._pad(label_rows, side, IGNORE_INDEX)
        if image_features is not None:
            data["image_features"] = image_features
        else:
            data["pixel_values"] = self.image_processor(
                [prepare_image(image) for image in images], return_tensors="pt")["pixel_values"]
        return BatchFeature(data=data)

    def apply_chat_template(self, conversation: list[dict] | list[list[dict]], chat_template: str | None = None,
                            **kwargs: Any) -> Any:
        """transformers' chat templating (image entries become this processor's image slots), with the
        template given this processor's `image_token`, its plain-word form and its caption prompt's text
        before and after the image."""
        kwargs.setdefault("image_token", self.image_token)
        kwargs.setdefault("typed_image_token", inert_text(self.image_token, self.image_token))
        start, end = self.prompt_around_image
        kwargs.setdefault("prompt_start", start)
        kwargs.setdefault("prompt_end", end)
        kwargs.setdefault("caption_prompt", self.prompt)  # what chat templates saved before prompt_start read
        if kwargs.get("tokenize") and conversation and isinstance(conversation[0], dict):
            # As a batch of one: this processor repeats a lone text string for each image passed with it.
            conversation = [conversation]
        return super().apply_chat_template(conversation, chat_template, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> list[str]:
        """Also writes this class's code and names it in processor_config.json, so that
        `AutoProcessor.from_pretrained(folder, trust_remote_code=True)` works with transformers alone.
        (`register_for_auto_class` cannot do it: transformers copies only imports from this file's
        own folder, and the image helpers live in hf_limber.images.)"""
        os.makedirs(save_directory, exist_ok=True)
        copy_code(save_directory, __file__, sys.modules[prepare_image.__module__].__file__)
        self.auto_map = {"AutoProcessor": f"{Path(__file__).stem}.{type(self).__name__}"}
        files = super().save_pretrained(save_directory, **kwargs)
        if push_to_hub:
            # transformers would upload only files written after its own start; push everything instead.
            self.push_to_hub(kwargs.pop("repo_id", Path(save_directory).name), **kwargs)
        return files

    def batch_decode(self, token_ids: torch.Tensor, **kwargs: Any) -> list[str]:
        return [t.strip() for t in self.tokenizer.batch_decode(token_ids, skip_special_tokens=True, **kwargs)]

    def decode_captions(self, token_ids: torch.Tensor) -> list[str]:
        """Generated captions, each cut at its first line break: a caption is one line, and a frozen
        LM goes on with whatever it likes after it."""
        return [text.split("\n", 1)[0].strip() for text in self.batch_decode(token_ids)]

