import io

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from transformers import AutoProcessor

from hf_limber import ClipConfig, ClipModel, ClipProcessor
from hf_limber.clip.tokenization import train_clip_tokenizer

VARIED_TEXTS = [
    "a photo of a cat.", "", "   ", "Hello, World!!  multiple   spaces", "café naïve résumé Ærø",
    "日本語のテキストと中文", "emoji 😀👍🏽 🇫🇷 ❤️", "it's don't we'll I'm they've", "numbers 12345 3.14 1,000",
    "tab\tand\nnewline", "UPPER lower MiXeD", "<|endoftext|> is just text", "fish &amp; chips &lt;3",
    "punctuation: ;:!?.,-_()[]{}'\"/\\@#$%^&*~`", "a " * 100, "supercalifragilisticexpialidocious " * 20,
]


def test_token_ids_identical_to_open_clip(clip_tokenizer):
    reference = open_clip.get_tokenizer("ViT-B-32")
    processor = ClipProcessor.for_config(ClipConfig.from_preset("ViT-B/32"), clip_tokenizer)
    batch = processor(text=VARIED_TEXTS)
    expected = reference(VARIED_TEXTS)  # zero-padded to 77
    assert batch["input_ids"].shape[1] <= 77
    for row, text in enumerate(VARIED_TEXTS):
        length = int(batch["attention_mask"][row].sum())
        assert batch["input_ids"][row, :length].tolist() == expected[row, :length].tolist(), text
        assert expected[row, length:].eq(0).all(), text  # open_clip ends the same tokens there


def test_overlong_text_is_truncated_keeping_end_of_text(clip_tokenizer):
    processor = ClipProcessor.for_config(ClipConfig.from_preset("tiny-vit"), clip_tokenizer)
    batch = processor(text=["word " * 500, "short"])
    assert batch["input_ids"].shape == (2, 32)
    assert batch["input_ids"][0, -1].item() == 49407
    assert batch["input_ids"][1].tolist()[:3] == [49406, 3005, 49407]
    assert batch["attention_mask"][1].sum().item() == 3


def test_empty_text_is_start_and_end_tokens(clip_tokenizer):
    processor = ClipProcessor.for_config(ClipConfig.from_preset("tiny-vit"), clip_tokenizer)
    assert processor(text="")["input_ids"].tolist() == [[49406, 49407]]


def _image(mode: str, size=(40, 30)) -> Image.Image:
    rng = np.random.default_rng(0)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65535, size[::-1], dtype=np.uint16))
    base = Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8), mode="RGB")
    return base.convert(mode)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"])
def test_every_pillow_mode_becomes_pixels(mode, clip_tokenizer):
    processor = ClipProcessor.for_config(ClipConfig.from_preset("tiny-vit"), clip_tokenizer)
    pixels = processor(images=_image(mode))["pixel_values"]
    assert pixels.shape == (1, 3, 32, 32)
    assert torch.isfinite(pixels).all()


def test_transparency_is_laid_on_white_and_sixteen_bits_are_scaled(clip_tokenizer):
    processor = ClipProcessor.for_config(ClipConfig.from_preset("tiny-vit"), clip_tokenizer)
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    white = Image.new("RGB", (8, 8), (255, 255, 255))
    torch.testing.assert_close(processor(images=clear)["pixel_values"], processor(images=white)["pixel_values"])
    bright = Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16))
    assert bright.mode == "I;16"
    torch.testing.assert_close(processor(images=bright)["pixel_values"], processor(images=white)["pixel_values"])


def test_tiny_large_paths_and_bytes(tmp_path, clip_tokenizer):
    processor = ClipProcessor.for_config(ClipConfig.from_preset("tiny-vit"), clip_tokenizer)
    path = tmp_path / "pic.png"
    _image("RGB", (3000, 2000)).save(path)
    batch = processor(images=[Image.new("RGB", (1, 1), (10, 20, 30)), str(path), path.read_bytes()])
    assert batch["pixel_values"].shape == (3, 3, 32, 32)


def test_unreadable_images_fail_naming_the_input(tmp_path, clip_tokenizer):
    processor = ClipProcessor.for_config(ClipConfig.from_preset("tiny-vit"), clip_tokenizer)
    good = io.BytesIO()
    _image("RGB", (64, 64)).save(good, format="PNG")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.getvalue()[:200])
    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    with pytest.raises(ValueError, match="truncated.png"):
        processor(images=str(truncated))
    with pytest.raises(ValueError, match="notes.txt"):
        processor(images=not_image)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        processor(images=str(tmp_path / "missing.png"))
    with pytest.raises(TypeError, match="dict"):
        processor(images={"not": "an image"})


def test_processor_round_trip_and_model_inputs(tmp_path, clip_tokenizer):
    config = ClipConfig.from_preset("tiny-resnet")
    processor = ClipProcessor.for_config(config, clip_tokenizer)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, ClipProcessor)
    image = _image("RGB", (80, 90))
    a = processor(text=["a red apple", "two cats"], images=[image, image])
    b = loaded(text=["a red apple", "two cats"], images=[image, image])
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["pixel_values"], b["pixel_values"])
    assert loaded.context_length == 32
    out = ClipModel(config)(**a)
    assert out.logits_per_image.shape == (2, 2)


def test_trained_tokenizer_ships_with_the_processor(tmp_path):
    corpus = [f"a {c} {n} on the {p}" for c in ("red", "blue", "green") for n in ("apple", "cat", "car")
              for p in ("left", "right")] * 5
    tokenizer = train_clip_tokenizer(corpus, vocab_size=300, context_length=16)
    assert tokenizer.eos_token_id == len(tokenizer) - 1 and tokenizer.bos_token_id == len(tokenizer) - 2
    ids = tokenizer("a red apple")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a red apple"
    config = ClipConfig.from_preset("tiny-vit", text_config={
        "vocab_size": len(tokenizer), "hidden_size": 64, "num_hidden_layers": 2, "max_position_embeddings": 16,
        "eos_token_id": tokenizer.eos_token_id, "bos_token_id": tokenizer.bos_token_id,
        "pad_token_id": tokenizer.pad_token_id})
    processor = ClipProcessor.for_config(config, tokenizer)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert loaded(text="a blue car")["input_ids"].tolist() == processor(text="a blue car")["input_ids"].tolist()
    ClipModel(config)(**loaded(text=["a blue car"], images=[_image("RGB")]))


def test_training_a_tokenizer_twice_gives_the_same_one():
    # tokenizers numbers word-final symbols in hash-map order (huggingface/tokenizers#1794): without
    # naming them up front, ten trainings on this corpus gave ten different vocabularies.
    corpus = ["a photo of a cat", "a photo of a dog", "the dog is red", "smiling face with hearts", "red heart"] * 3
    trained = [train_clip_tokenizer(corpus, vocab_size=300) for _ in range(5)]
    assert all(t.get_vocab() == trained[0].get_vocab() for t in trained)
    assert all(t("a red cat face")["input_ids"] == trained[0]("a red cat face")["input_ids"] for t in trained)
    assert trained[0].convert_ids_to_tokens(256) == "a</w>"  # byte symbols first, then the word ends, as CLIP


def test_a_datasets_column_is_a_batch(clip_tokenizer):
    from datasets import Dataset

    processor = ClipProcessor.for_config(ClipConfig.from_preset("tiny-vit"), clip_tokenizer)
    rows = Dataset.from_dict({"image": [_image("RGB"), _image("L")], "caption": ["a cat", "a dog"]})
    batch = processor(text=rows["caption"], images=rows["image"])
    assert batch["pixel_values"].shape == (2, 3, 32, 32) and batch["input_ids"].shape[0] == 2


@pytest.mark.parametrize("bad, named", [
    (None, r"text\[1\] is None"),
    (b"a dog", r"text\[1\] is bytes"),
    ("a \ud800 dog", r"text\[1\] holds a lone surrogate"),
    (3, r"text\[1\] is int"),
])
def test_non_string_text_fails_naming_the_item(clip_tokenizer, bad, named):
    processor = ClipProcessor.for_config(ClipConfig.from_preset("tiny-vit"), clip_tokenizer)
    with pytest.raises(ValueError, match=named):
        processor(text=["a cat", bad, "a bird"])


def test_one_bad_text_and_empty_inputs_fail_clearly(clip_tokenizer):
    processor = ClipProcessor.for_config(ClipConfig.from_preset("tiny-vit"), clip_tokenizer)
    with pytest.raises(ValueError, match="text is bytes"):
        processor(text=b"a cat")
    with pytest.raises(ValueError, match=r"images=\[\] holds no image"):
        processor(images=[])
    with pytest.raises(ValueError, match=r"text=\[\] holds no text"):
        processor(text=[])
