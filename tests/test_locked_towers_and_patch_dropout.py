"""Locked towers (LiT, Zhai et al. 2022) and patch dropout (FLIP, Li et al. 2023) as recipe options."""

import pytest
import torch
from clip_train_worker import shapes_dataset
from conftest import random_inputs
from datasets import DatasetDict

from hf_limber import ClipConfig, ClipModel, ClipProcessor
from hf_limber.training import ContrastiveTrainer, ContrastiveTrainingArguments, ImageTextCollator
from hf_limber.training.clip_recipe import ClipRecipeArguments, lock_tower, train_clip


def _train(model, tmp_path, clip_tokenizer, steps=3):
    processor = ClipProcessor.for_config(model.config, clip_tokenizer)
    args = ContrastiveTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=steps,
                                        learning_rate=1e-2, use_cpu=True, save_strategy="no", logging_steps=1)
    trainer = ContrastiveTrainer(model=model, args=args, train_dataset=shapes_dataset(24),
                                 data_collator=ImageTextCollator(processor))
    trainer.train()
    return trainer


def _snapshot(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _moved(model, before):
    return {name for name, tensor in model.state_dict().items() if not torch.equal(tensor, before[name])}


@pytest.mark.parametrize("preset", ["tiny-vit", "tiny-resnet"])
def test_a_locked_image_tower_is_unchanged_by_training(tmp_path, clip_tokenizer, preset):
    torch.manual_seed(0)
    model = ClipModel(ClipConfig.from_preset(preset))
    lock_tower(model, "image")
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith(("vision_model", "visual_proj")))
    before = _snapshot(model)
    trainer = _train(model, tmp_path, clip_tokenizer)
    moved = _moved(model, before)
    # Parameters and (ResNet) BatchNorm statistics of the image tower stay; the text tower learns.
    assert not [name for name in moved if name.startswith(("vision_model", "visual_projection"))]
    assert "text_projection.weight" in moved and "text_model.token_embedding.weight" in moved
    assert all(p.requires_grad for group in trainer.optimizer.param_groups for p in group["params"])


def test_unlocked_last_blocks_and_norms_train_while_the_rest_stays(tmp_path, clip_tokenizer):
    torch.manual_seed(0)
    model = ClipModel(ClipConfig.from_preset("tiny-vit"))
    layers = model.config.vision_config.num_hidden_layers
    lock_tower(model, "image", unlocked_blocks=1, unlock_norms=True)
    before = _snapshot(model)
    _train(model, tmp_path, clip_tokenizer)
    moved = {name for name in _moved(model, before) if name.startswith(("vision_model", "visual_projection"))}
    last = f"vision_model.encoder.layers.{layers - 1}."
    assert {f"{last}mlp.fc1.weight", "vision_model.post_layernorm.weight", "visual_projection.weight",
            "vision_model.pre_layernorm.weight"} <= moved  # the last block, what follows it, every norm
    locked = {name for name in before if name.startswith("vision_model.")
              and not name.startswith(last) and "layernorm" not in name and "layer_norm" not in name}
    assert locked and not locked & moved


def test_a_locked_text_tower_is_unchanged_by_training(tmp_path, clip_tokenizer):
    torch.manual_seed(0)
    model = ClipModel(ClipConfig.from_preset("tiny-vit"))
    lock_tower(model, "text")
    before = _snapshot(model)
    _train(model, tmp_path, clip_tokenizer)
    moved = _moved(model, before)
    assert not [name for name in moved if name.startswith(("text_model", "text_projection"))]
    assert "visual_projection.weight" in moved


def test_lock_options_are_checked():
    with pytest.raises(ValueError, match="only the temperature"):
        ClipRecipeArguments(dataset="x", lock_image_tower=True, lock_text_tower=True)
    with pytest.raises(ValueError, match="set lock_image_tower"):
        ClipRecipeArguments(dataset="x", lock_image_unlocked_blocks=2)
    with pytest.raises(ValueError, match="residual blocks"):
        lock_tower(ClipModel(ClipConfig.from_preset("tiny-vit")), "image", unlocked_blocks=99)


def test_patch_dropout_is_off_in_eval_and_changes_the_training_forward(tmp_path):
    torch.manual_seed(0)
    plain_config = ClipConfig.from_preset("tiny-vit")
    dropping_config = ClipConfig.from_preset("tiny-vit", vision_config={**plain_config.vision_config.to_dict(),
                                                                          "patch_dropout": 0.5})
    plain, dropping = ClipModel(plain_config), ClipModel(dropping_config)
    dropping.load_state_dict(plain.state_dict())  # no parameters of its own
    inputs = random_inputs(plain_config)
    plain.eval(), dropping.eval()
    torch.testing.assert_close(dropping(**inputs).image_embeds, plain(**inputs).image_embeds, rtol=0, atol=0)
    plain.train(), dropping.train()
    grid = plain_config.vision_config.grid_size ** 2
    out = dropping(**inputs)
    assert out.vision_model_output.last_hidden_state.shape[1] == 1 + grid // 2  # class token + half the patches
    assert not torch.allclose(out.image_embeds, plain(**inputs).image_embeds)
    torch.manual_seed(1)
    first = dropping(**inputs).image_embeds
    torch.manual_seed(1)
    torch.testing.assert_close(dropping(**inputs).image_embeds, first)  # the generator decides, so replays match
    dropping.save_pretrained(tmp_path)
    assert ClipModel.from_pretrained(tmp_path).config.vision_config.patch_dropout == 0.5


def test_the_recipe_fine_tunes_a_saved_model_with_lit_patch_dropout_and_siglip(tmp_path, clip_tokenizer):
    torch.manual_seed(0)
    config = ClipConfig.from_preset("tiny-vit")
    saved = tmp_path / "saved"
    ClipModel(config).save_pretrained(saved)
    ClipProcessor.for_config(config, clip_tokenizer).save_pretrained(saved)
    DatasetDict({"train": shapes_dataset(16)}).save_to_disk(tmp_path / "data")
    args = ClipRecipeArguments(dataset=str(tmp_path / "data"), model=str(saved), eval_split=None,
                               text_column="caption", objective="sigmoid", patch_dropout=0.25,
                               lock_image_tower=True, lock_image_unlocked_blocks=1)
    training = ContrastiveTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=8,
                                            use_cpu=True, save_strategy="no", logging_steps=1)
    trainer = train_clip(args, training)
    model = trainer.model
    assert model.config.contrastive_objective == "sigmoid" and model.config.vision_config.patch_dropout == 0.25
    assert not model.vision_model.encoder.layers[0].mlp.fc1.weight.requires_grad
    assert model.vision_model.encoder.layers[-1].mlp.fc1.weight.requires_grad
    reloaded = ClipModel.from_pretrained(tmp_path / "out")
    assert reloaded.logit_bias is not None and reloaded.config.vision_config.patch_dropout == 0.25
    original = ClipModel.from_pretrained(saved).state_dict()
    for name, tensor in reloaded.state_dict().items():
        if name.startswith("vision_model.encoder.layers.0."):
            assert torch.equal(tensor, original[name]), name
