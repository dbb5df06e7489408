"""Another input resolution: the ResNet attention pool's interpolate_pos_encoding against open_clip, and the
stored position embeddings resized once (ClipModel.resize_image_size, the CLIP recipe's image_size)."""

import types

import pytest
import torch
from clip_train_worker import shapes_dataset
from datasets import DatasetDict
from open_clip.model import CLIP as OpenClipCLIP
from open_clip.model import resize_pos_embed
from test_clip_parity import OPEN_CLIP_SMALL, randomise_

from hf_limber import ClipConfig, ClipModel, ClipProcessor
from hf_limber.clip import convert
from hf_limber.training import ContrastiveTrainingArguments
from hf_limber.training.clip_recipe import ClipRecipeArguments, train_clip


def open_clip_resized(reference: torch.nn.Module, image_size: int) -> torch.nn.Module:
    """open_clip's ResNet CLIP built at `image_size`, the attention pool's positions resized by open_clip's
    own resize_pos_embed (written for a ViT's table; the pool's has the same layout: one extra token first).
    antialias=False: the kernel transformers' interpolate_pos_encoding uses (a=-0.75); open_clip's default
    antialiased bicubic uses PIL's a=-0.5 and differs by design."""
    config = {**OPEN_CLIP_SMALL["resnet"], "vision_cfg": {**OPEN_CLIP_SMALL["resnet"]["vision_cfg"], "image_size": image_size}}
    resized = OpenClipCLIP(quick_gelu=True, **config).eval()
    state = reference.state_dict()
    table = {"visual.positional_embedding": state["visual.attnpool.positional_embedding"]}
    resize_pos_embed(table, types.SimpleNamespace(visual=types.SimpleNamespace(grid_size=image_size // 32)),
                     antialias=False)
    state["visual.attnpool.positional_embedding"] = table["visual.positional_embedding"]
    resized.load_state_dict(state)
    return resized


@pytest.mark.parametrize("image_size", [96, 128, 160])
def test_resnet_attention_pool_interpolation_equals_open_clip_resized(image_size):
    torch.manual_seed(0)
    reference = OpenClipCLIP(quick_gelu=True, **OPEN_CLIP_SMALL["resnet"]).eval()
    randomise_(reference)
    ours = convert.from_open_clip(reference).eval()
    resized = open_clip_resized(reference, image_size)
    pixels = torch.randn(2, 3, image_size, image_size)
    with torch.no_grad():
        theirs = resized.encode_image(pixels)
        mine = ours.get_image_features(pixels, interpolate_pos_encoding=True).pooler_output
        unresized = ours.get_image_features(torch.randn(2, 3, 64, 64), interpolate_pos_encoding=True).pooler_output
    assert ours.vision_model.attnpool.positional_embedding.shape[0] == 2 * 2 + 1  # the stored table is untouched
    assert unresized.shape == mine.shape
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("preset,image_size", [("tiny-resnet", 96), ("tiny-vit", 48), ("tiny-vit", 16)])
def test_resizing_once_equals_interpolating_on_every_call(preset, image_size, tmp_path):
    torch.manual_seed(0)
    model = ClipModel(ClipConfig.from_preset(preset)).eval()
    with torch.no_grad():  # position embeddings with structure, so that resizing them matters
        for name, parameter in model.named_parameters():
            if "position" in name:
                parameter.normal_()
    pixels = torch.randn(2, 3, image_size, image_size)
    with torch.no_grad():
        expected = model.get_image_features(pixels, interpolate_pos_encoding=True).pooler_output
    model.resize_image_size(image_size)
    assert model.config.vision_config.image_size == image_size
    with torch.no_grad():
        torch.testing.assert_close(model.get_image_features(pixels).pooler_output, expected, rtol=0, atol=0)
    model.save_pretrained(tmp_path)
    reloaded = ClipModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.vision_config.image_size == image_size
    with torch.no_grad():
        torch.testing.assert_close(reloaded.get_image_features(pixels).pooler_output, expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="image_size"):
        model.resize_image_size(image_size + 1)
    assert model.config.vision_config.image_size == image_size  # a refused size changes nothing


def test_the_clip_recipe_fine_tunes_a_saved_model_at_a_new_resolution(tmp_path, clip_tokenizer):
    torch.manual_seed(0)
    config = ClipConfig.from_preset("tiny-resnet")
    saved = tmp_path / "saved"
    ClipModel(config).save_pretrained(saved)
    processor = ClipProcessor.for_config(config, clip_tokenizer)
    processor.image_processor.image_mean = [0.5, 0.5, 0.5]  # a setting of the saved processor that must survive
    processor.save_pretrained(saved)
    DatasetDict({"train": shapes_dataset(16)}).save_to_disk(tmp_path / "data")
    args = ClipRecipeArguments(dataset=str(tmp_path / "data"), model=str(saved), eval_split=None,
                               text_column="caption", image_size=96)
    training = ContrastiveTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=8,
                                            use_cpu=True, save_strategy="no", logging_steps=1)
    trainer = train_clip(args, training)
    assert all(entry["loss"] > 0 for entry in trainer.state.log_history if "loss" in entry)
    reloaded = ClipModel.from_pretrained(tmp_path / "out")
    assert reloaded.config.vision_config.image_size == 96
    assert reloaded.vision_model.attnpool.positional_embedding.shape[0] == 3 * 3 + 1
    pictures = ClipProcessor.from_pretrained(tmp_path / "out").image_processor
    assert pictures.crop_size["height"] == 96 and list(pictures.image_mean) == [0.5, 0.5, 0.5]
    with torch.no_grad():
        reloaded(**ClipProcessor.from_pretrained(tmp_path / "out")(text=["a"], images=shapes_dataset(1)["image"]))
