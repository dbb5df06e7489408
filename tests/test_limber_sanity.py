"""A LiMBeR that cannot learn is caught here: a projection trained on 16 scenes must reproduce their
training captions (exact match >= 80%), through the same recipe and the same caption decoding the
quickstart uses.

The frozen LM must be able to say the captions at all: in the default suite it is a tiny Llama first
trained on text in which two words before "a picture of" say which caption follows (so it has learnt
to read what comes before the prompt); in the slow suite it is SmolLM2-135M. Each scene's image
features are a fixed random vector (cached features), so this checks the map and its training, not
an encoder.
"""

from __future__ import annotations

import pytest
import torch
from datasets import Array2D, Dataset, DatasetDict, Features, Sequence, Value
from limber_parts import image_encoder, text_trained_lm, word_tokenizer

from hf_limber.evaluation.limber_report import sentence_end_ids
from hf_limber.limber import LimberForCausalLM, LimberProcessor
from hf_limber.training.limber_recipe import LimberArguments, LimberTrainingArguments, train_limber

COLOURS = ("red", "green", "blue")
OBJECTS = ("cat", "dog", "apple", "car", "tree", "house")
SCENES = [(colour, thing) for colour in COLOURS for thing in OBJECTS][:16]
K = 2  # soft prompts per image: pooled features split in two


def caption(colour: str, thing: str) -> str:
    return f"a {colour} {thing} ."


def pretrained_tiny_lm(steps: int = 300) -> torch.nn.Module:
    return text_trained_lm([f"{colour} {thing} a picture of {caption(colour, thing)}" for colour, thing in SCENES],
                           steps)


def cached_scenes(feature_size: int, captions: list[str]) -> DatasetDict:
    generator = torch.Generator().manual_seed(0)
    features = Features({"image_features": Array2D((1, feature_size), "float32"), "captions": Sequence(Value("string"))})
    rows = [{"image_features": torch.randn(1, feature_size, generator=generator).numpy(), "captions": [text]}
            for text in captions]
    return DatasetDict(train=Dataset.from_list(rows, features=features))


def captions_from_features(model: LimberForCausalLM, processor: LimberProcessor, features: torch.Tensor) -> list[str]:
    prompt = processor.tokenizer(model.config.prompt, add_special_tokens=False, return_tensors="pt").input_ids
    slots = torch.full((len(features), model.config.num_image_tokens), model.config.image_token_id)
    input_ids = torch.cat([slots, prompt.expand(len(features), -1)], dim=1)
    tokens = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), image_features=features,
                            max_new_tokens=12, do_sample=False, pad_token_id=processor.tokenizer.eos_token_id,
                            eos_token_id=[*sentence_end_ids(processor.tokenizer), processor.tokenizer.eos_token_id])
    return processor.decode_captions(tokens)


def train_and_caption(tmp_path, lm, tokenizer, captions: list[str], prompt: str, steps: int, learning_rate: float,
                      projection_init: str = "random"):
    lm.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    image_encoder("clip-vit").save_pretrained(tmp_path / "encoder")
    options = dict(features="pooled", num_pooled_tokens=K, prompt=prompt, normalize_features=True,
                   soft_prompt_norm="auto", projection_dropout=0.0)
    feature_size = LimberForCausalLM.from_parts(tmp_path / "encoder", tmp_path / "lm", **options).config.image_feature_size
    scenes = cached_scenes(feature_size, captions)
    scenes.save_to_disk(tmp_path / "cache")
    arguments = LimberArguments(image_encoder=str(tmp_path / "encoder"), language_model=str(tmp_path / "lm"),
                                dataset=str(tmp_path / "cache"), cached_features=str(tmp_path / "cache"),
                                eval_split=None, projection_init=projection_init, **options)
    training = LimberTrainingArguments(output_dir=str(tmp_path / "limber"), per_device_train_batch_size=8,
                                       max_steps=steps, learning_rate=learning_rate, warmup_steps=10, use_cpu=True,
                                       logging_steps=steps, seed=0, disable_tqdm=True)
    model = train_limber(arguments, training).eval()
    processor = LimberProcessor.from_pretrained(tmp_path / "limber")
    features = torch.tensor(scenes["train"]["image_features"])
    return captions_from_features(model, processor, features)


def exact_matches(generated: list[str], captions: list[str]) -> float:
    return sum(g.strip() == c.strip() for g, c in zip(generated, captions, strict=True)) / len(captions)


def test_a_projection_learns_to_say_its_training_captions(tmp_path):
    captions = [caption(*scene) for scene in SCENES]
    generated = train_and_caption(tmp_path, pretrained_tiny_lm(), word_tokenizer(), captions, "a picture of",
                                  steps=300, learning_rate=1e-2)
    assert exact_matches(generated, captions) >= 0.8, list(zip(generated, captions))


def test_the_ridge_start_learns_the_same_captions_in_a_fifth_of_the_steps(tmp_path):
    captions = [caption(*scene) for scene in SCENES]
    generated = train_and_caption(tmp_path, pretrained_tiny_lm(), word_tokenizer(), captions, "a picture of",
                                  steps=60, learning_rate=1e-2, projection_init="ridge")
    assert exact_matches(generated, captions) >= 0.8, list(zip(generated, captions))


@pytest.mark.slow
def test_a_projection_into_smollm2_learns_to_say_its_training_captions(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hf_limber.limber.assets import prepare_smollm2

    folder = prepare_smollm2(tmp_path / "smollm2")
    captions = [f"a {colour} {thing}." for colour, thing in SCENES]
    generated = train_and_caption(tmp_path, AutoModelForCausalLM.from_pretrained(folder),
                                  AutoTokenizer.from_pretrained(folder), captions, "A picture of", steps=150,
                                  learning_rate=1e-2)
    assert exact_matches(generated, captions) >= 0.8, list(zip(generated, captions))
