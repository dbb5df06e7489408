"""LoRA on CLIP's towers (issue 18): trained by the CLIP recipe with every other weight frozen, saved in peft's
own files and as a plain ClipModel with the LoRA merged, reloaded exactly."""

import json

import pytest
import torch
from clip_train_worker import shapes_dataset
from conftest import random_inputs
from datasets import DatasetDict
from safetensors import safe_open
from transformers import AutoModel

from hf_limber import ClipConfig, ClipModel, ClipProcessor
from hf_limber.limber.adapter import without_peft_layers
from hf_limber.recipes import parse_recipe
from hf_limber.training import ContrastiveTrainer, ContrastiveTrainingArguments, ImageTextCollator
from hf_limber.training.clip_lora import CLIP_ADAPTER_FOLDER, add_clip_lora, load_clip_lora, lora_layers
from hf_limber.training.clip_recipe import ClipRecipeArguments, train_clip

peft = pytest.importorskip("peft")


def lora_parameters(model):
    return {name for name, _ in model.named_parameters() if ".lora_" in name}


@pytest.mark.parametrize("preset, towers, leaves", [
    ("tiny-vit", ["image", "text"], {"qkv", "out_proj", "fc1", "fc2"}),
    ("tiny-resnet", ["image"], {"q_proj", "k_proj", "v_proj", "c_proj"}),  # the attention pool
    ("tiny-resnet", ["text"], {"qkv", "out_proj", "fc1", "fc2"}),
])
def test_the_default_targets_are_each_towers_attention_and_mlp(preset, towers, leaves):
    model = add_clip_lora(ClipModel(ClipConfig.from_preset(preset)), rank=2, towers=towers)
    layers = lora_layers(model)
    assert {name.rsplit(".", 1)[-1] for name in layers} == leaves
    roots = {"image": "vision_model.", "text": "text_model."}
    assert {tower for tower, root in roots.items() if any(name.startswith(root) for name in layers)} == set(towers)
    if preset == "tiny-resnet" and towers == ["image"]:
        assert all(name.startswith("vision_model.attnpool.") for name in layers)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == lora_parameters(model) and "logit_scale" not in trainable


def test_named_targets_convolutions_projections_and_all_linear():
    resnet = ClipModel(ClipConfig.from_preset("tiny-resnet"))
    add_clip_lora(resnet, rank=2, target_modules=["conv2"], towers=["image"])  # peft wraps nn.Conv2d too
    assert len(lora_layers(resnet)) == 5 and all(name.endswith("conv2") for name in lora_layers(resnet))
    vit = add_clip_lora(ClipModel(ClipConfig.from_preset("tiny-vit")), rank=2, target_modules=["all-linear"])
    assert {"visual_projection", "text_projection", "vision_model.encoder.layers.0.attn.qkv"} <= set(lora_layers(vit))
    with pytest.raises(ValueError, match="no layer of the image tower.*'qkv'"):
        add_clip_lora(ClipModel(ClipConfig.from_preset("tiny-vit")), rank=2, target_modules=["q_proj"],
                      towers=["image"])


@pytest.mark.parametrize("preset", ["tiny-vit", "tiny-resnet"])
def test_only_the_lora_changes_in_training(tmp_path, clip_tokenizer, preset):
    torch.manual_seed(0)
    model = add_clip_lora(ClipModel(ClipConfig.from_preset(preset)), rank=2)
    before = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}  # BatchNorm stats too
    args = ContrastiveTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=3,
                                        learning_rate=1e-2, use_cpu=True, save_strategy="no", logging_steps=1)
    ContrastiveTrainer(model=model, args=args, train_dataset=shapes_dataset(24),
                       data_collator=ImageTextCollator(ClipProcessor.for_config(model.config, clip_tokenizer))).train()
    changed = {name for name, tensor in model.state_dict().items() if not torch.equal(tensor, before[name])}
    assert changed == lora_parameters(model)


def saved_model_and_data(tmp_path, clip_tokenizer, preset):
    torch.manual_seed(0)
    config = ClipConfig.from_preset(preset)
    ClipModel(config).save_pretrained(tmp_path / "saved")
    ClipProcessor.for_config(config, clip_tokenizer).save_pretrained(tmp_path / "saved")
    DatasetDict({"train": shapes_dataset(16)}).save_to_disk(tmp_path / "data")


def run_recipe(tmp_path, out, **options):
    args = ClipRecipeArguments(dataset=str(tmp_path / "data"), model=str(tmp_path / "saved"), eval_split=None,
                               text_column="caption", **options)
    training = ContrastiveTrainingArguments(output_dir=str(tmp_path / out), max_steps=3, per_device_train_batch_size=8,
                                            learning_rate=1e-2, use_cpu=True, save_strategy="no", logging_steps=1,
                                            seed=3)
    return train_clip(args, training).model.eval()


@pytest.mark.parametrize("preset", ["tiny-vit", "tiny-resnet"])
def test_the_recipe_saves_the_lora_in_peft_files_and_merged_and_both_reload(tmp_path, clip_tokenizer, preset):
    saved_model_and_data(tmp_path, clip_tokenizer, preset)
    trained = run_recipe(tmp_path, "out", lora_rank=2, lora_alpha=4)
    base = ClipModel.from_pretrained(tmp_path / "saved").eval()
    # Every base weight and buffer (the logit scale, BatchNorm statistics) is as saved: only the LoRA trained.
    plain = without_peft_layers(trained.state_dict(), trained)
    assert plain.keys() == base.state_dict().keys()
    assert all(torch.equal(plain[name], tensor) for name, tensor in base.state_dict().items())
    assert all(p.abs().sum() > 0 for name, p in trained.named_parameters() if ".lora_B." in name)

    adapter = tmp_path / "out" / CLIP_ADAPTER_FOLDER
    assert {p.name for p in adapter.iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
    saved = json.loads((adapter / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA" and saved["r"] == 2 and saved["lora_alpha"] == 4
    assert saved["base_model_name_or_path"] == str(tmp_path / "saved")

    inputs = random_inputs(trained.config)
    with torch.no_grad():
        expected = trained(**inputs)
        assert not torch.allclose(base(**inputs).image_embeds, expected.image_embeds, atol=1e-3)  # the LoRA matters
        reloaded = load_clip_lora(base, adapter)(**inputs)
        for key in ("image_embeds", "text_embeds", "logits_per_image"):
            torch.testing.assert_close(reloaded[key], expected[key], rtol=0, atol=1e-6)
        # peft's own loader reads the same files.
        wrapped = peft.PeftModel.from_pretrained(ClipModel.from_pretrained(tmp_path / "saved"), str(adapter)).eval()
        torch.testing.assert_close(wrapped(**inputs).image_embeds, expected.image_embeds, rtol=0, atol=1e-6)

        # The output folder itself is a plain ClipModel with the LoRA merged: no peft to load it.
        merged = AutoModel.from_pretrained(tmp_path / "out").eval()
        assert type(merged) is ClipModel and not lora_layers(merged)
        keys = {}
        for run in ("saved", "out"):
            with safe_open(tmp_path / run / "model.safetensors", "pt") as f:
                keys[run] = set(f.keys())
        assert keys["out"] == keys["saved"]
        result = merged(**inputs)
        for key in ("image_embeds", "text_embeds", "logits_per_image"):
            torch.testing.assert_close(result[key], expected[key], rtol=0, atol=1e-5)


def test_lora_rank_0_leaves_the_recipe_as_it_was(tmp_path, clip_tokenizer):
    saved_model_and_data(tmp_path, clip_tokenizer, "tiny-vit")
    plain = run_recipe(tmp_path, "plain")
    off = run_recipe(tmp_path, "off", lora_rank=0, lora_towers=["image"], lora_target_modules=["fc1"])
    assert not lora_layers(off) and all(p.requires_grad for p in off.parameters())
    assert not (tmp_path / "off" / CLIP_ADAPTER_FOLDER).exists()
    reloaded = {run: ClipModel.from_pretrained(tmp_path / run).state_dict() for run in ("plain", "off")}
    assert all(torch.equal(tensor, reloaded["off"][name]) for name, tensor in reloaded["plain"].items())
    assert all(torch.equal(tensor, off.state_dict()[name]) for name, tensor in plain.state_dict().items())


def test_lora_options_parse_and_are_checked(tmp_path, clip_tokenizer):
    (tmp_path / "recipe.yaml").write_text("dataset: data\nlora_rank: 4\nlora_towers: [image]\n")
    args, _ = parse_recipe(tmp_path / "recipe.yaml", (ClipRecipeArguments, ContrastiveTrainingArguments),
                           ["--output_dir", str(tmp_path / "run"), "--lora_target_modules", "fc1", "fc2"])
    assert (args.lora_rank, args.lora_towers, args.lora_target_modules) == (4, ["image"], ["fc1", "fc2"])
    assert ClipRecipeArguments(dataset="x").lora_rank == 0  # off unless asked
    with pytest.raises(ValueError, match="lora_towers"):
        ClipRecipeArguments(dataset="x", lora_rank=2, lora_towers=["vision"])
    with pytest.raises(ValueError, match="lock_"):
        ClipRecipeArguments(dataset="x", lora_rank=2, lock_image_tower=True)
    with pytest.raises(ValueError, match="lora_rank"):
        ClipRecipeArguments(dataset="x", lora_rank=-1)
    saved_model_and_data(tmp_path, clip_tokenizer, "tiny-vit")
    with pytest.raises(ValueError, match="image_size"):  # the LoRA would not fit the saved base any more
        run_recipe(tmp_path, "resized", lora_rank=2, image_size=48)
    with pytest.raises(ValueError, match="objective"):
        run_recipe(tmp_path, "siglip", lora_rank=2, objective="sigmoid")
