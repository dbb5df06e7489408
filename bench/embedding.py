"""Inference: image and text embedding throughput, and zero-shot classification end to end."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from transformers import pipeline

from hf_limber import ClipConfig, ClipProcessor
from hf_limber.clip.processing_clip import clip_image_processor
from hf_limber.clip.tokenization import clip_tokenizer_from_bpe, default_bpe_path
from hf_limber.evaluation.zero_shot import ZeroShotClassifier

from .clip_models import clip_inputs, open_clip_model, ours, text_ids_of_lengths, transformers_peer
from .report import comparison_table
from .timing import Case, compare, count_flops

TEMPLATE = "This is a photo of {}."  # the transformers pipeline's default hypothesis template
LABELS = ["cat", "dog", "car", "tree", "house", "bird", "boat", "flower", "face", "pizza"]


# Captions as users embed them (issue 20): hf_limber's processor and transformers' pad a batch to its
# longest caption, open_clip's tokenizer always to 77 tokens. Emoji captions are short; LAION's alt texts
# average ~12 tokens with a long tail (a log-normal of median 10 here, mean ~12, cut to 77).
EMOJI_CAPTIONS = ["an emoji of a red apple.", "grinning face with big eyes", "a bicycle.", "a drawing of a penguin.",
                  "two hearts", "an emoji of a fire engine.", "a slice of pizza", "face with tears of joy"]


def caption_lengths(profile: str, batch: int) -> list[int]:
    if profile == "emoji captions":
        tokenizer = clip_tokenizer_from_bpe(default_bpe_path())
        return [len(tokenizer(EMOJI_CAPTIONS[row % len(EMOJI_CAPTIONS)])["input_ids"]) for row in range(batch)]
    generator = np.random.default_rng(0)
    return [int(min(77, max(4, round(length)))) for length in generator.lognormal(np.log(10), 0.6, batch)]


def inference(run: Callable[[], object]) -> Callable[[], None]:
    def call() -> None:
        with torch.inference_mode():
            run()

    return call


def embedding_section(preset: str, batch: int, repeats: int, peak: float) -> str:
    config = ClipConfig.from_preset(preset)
    pixels, ids = clip_inputs(config, batch)
    mine = ours(preset).model.eval()
    theirs = transformers_peer(preset).model.eval()
    open_model = open_clip_model(preset, config).eval()
    sections = []
    for kind, calls in (
        ("images", {"ours": lambda: mine.get_image_features(pixels),
                    "transformers": lambda: theirs.get_image_features(pixel_values=pixels),
                    "open_clip": lambda: open_model.encode_image(pixels)}),
        ("texts", {"ours": lambda: mine.get_text_features(ids),
                   "transformers": lambda: theirs.get_text_features(input_ids=ids),
                   "open_clip": lambda: open_model.encode_text(ids)}),
    ):
        print(f"[embedding] {preset} {kind}", flush=True)
        cases = [Case(name, inference(call), items=batch) for name, call in calls.items()]
        # Ours' count is every row's model FLOPs (see clip_step.step_cases); counting is ours' warm-up.
        flops = count_flops(cases[0].run)
        for case in cases:
            if case is not cases[0]:
                case.run()  # the peers' warm-up
            case.flops = flops
        compare(cases, repeats, warmup=0)
        length = f" of {ids.shape[1]} tokens" if kind == "texts" else ""
        sections += [f"### {preset}, {batch} {kind}{length} per call, fp32, inference mode", "",
                     comparison_table(cases, "ours", peak, unit=f"{kind}/s"), ""]
    for profile in ("emoji captions", "LAION-like lengths"):
        lengths = caption_lengths(profile, batch)
        padded = text_ids_of_lengths(lengths, ids.shape[1], config.text_config.vocab_size)
        trimmed = padded[:, : max(lengths)]  # what a processor padding to the longest caption gives
        print(f"[embedding] {preset} texts, {profile}", flush=True)
        cases = [Case("ours", inference(lambda: mine.get_text_features(trimmed)), items=batch),
                 Case("transformers", inference(lambda: theirs.get_text_features(input_ids=trimmed)), items=batch),
                 Case("open_clip", inference(lambda: open_model.encode_text(padded)), items=batch)]
        for case in cases:
            case.run()
        compare(cases, repeats, warmup=0)
        sections += [f"### {preset}, {batch} texts per call, {profile} (mean {np.mean(lengths):.1f} tokens, longest "
                     f"{max(lengths)}; open_clip pads to {padded.shape[1]}), fp32, inference mode", "",
                     comparison_table(cases, "ours", None, unit="texts/s"), ""]
    return "\n".join(sections)


def zero_shot_section(preset: str, images: int, repeats: int) -> str:
    """transformers' zero-shot pipeline with its CLIP and with ours, and hf_limber's own classifier."""
    config = ClipConfig.from_preset(preset)
    size = config.vision_config.image_size
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 256, (size + 32, size + 32, 3), dtype=np.uint8)) for _ in range(images)]
    tokenizer = clip_tokenizer_from_bpe(default_bpe_path(), config.text_config.max_position_embeddings)
    image_processor = clip_image_processor(size)
    mine = ours(preset).model.eval()
    theirs = transformers_peer(preset).model.eval()
    ours_pipe = pipeline("zero-shot-image-classification", model=mine, tokenizer=tokenizer, image_processor=image_processor)
    their_pipe = pipeline("zero-shot-image-classification", model=theirs, tokenizer=tokenizer,
                          image_processor=image_processor)
    processor = ClipProcessor(image_processor, tokenizer)

    def classifier() -> None:
        # A fresh classifier each call, so the class prompts are embedded every time, as the pipeline does.
        ZeroShotClassifier(mine, processor, templates=[TEMPLATE])(pictures, LABELS)

    print(f"[zero-shot] {preset}", flush=True)
    cases = compare([
        Case("ours: hf_limber ZeroShotClassifier", inference(classifier), items=images),
        Case("ours in transformers' pipeline", inference(lambda: ours_pipe(pictures, candidate_labels=LABELS)), items=images),
        Case("transformers CLIPModel in its pipeline", inference(lambda: their_pipe(pictures, candidate_labels=LABELS)),
             items=images),
    ], repeats)
    return "\n".join([
        f"### Zero-shot classification, {preset}: {images} images x {len(LABELS)} labels per call, "
        f"template {TEMPLATE!r}", "",
        comparison_table(cases, "ours in transformers' pipeline", unit="images/s"), "",
        "The pipeline runs one image at a time and embeds every label again for each image; the classifier "
        "embeds the labels once and the images in one batch. Same processors (CLIP BPE, CLIP image processor) for all.",
    ])
