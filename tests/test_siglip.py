"""SigLIP (Zhai et al. 2023) as a ClipModel objective: the bias parameter, its start values, saving and
loading, the forward loss, and training with ContrastiveTrainer."""

import math

import pytest
import torch
from clip_train_worker import shapes_dataset
from conftest import random_inputs
from transformers import AutoModel

from hf_limber import ClipConfig, ClipModel, ClipProcessor, ClipVisionModelWithProjection, ContrastiveLoss
from hf_limber.training import ContrastiveTrainer, ContrastiveTrainingArguments, ImageTextCollator


def siglip_config(preset: str = "tiny-vit", **overrides) -> ClipConfig:
    return ClipConfig.from_preset(preset, contrastive_objective="sigmoid", **overrides)


def test_the_sigmoid_objective_adds_a_bias_started_as_the_paper():
    model = ClipModel(siglip_config())
    assert model.logit_scale.item() == pytest.approx(math.log(10))  # t' = log 10
    assert model.logit_bias.item() == pytest.approx(-10.0)
    softmax = ClipModel(ClipConfig.from_preset("tiny-vit"))
    assert softmax.logit_bias is None and "logit_bias" not in dict(softmax.named_parameters())
    assert softmax.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert ClipModel(siglip_config(logit_scale_init_value=1.0, logit_bias_init_value=-3.0)).logit_bias.item() == -3.0
    with pytest.raises(ValueError, match="contrastive_objective"):
        ClipConfig.from_preset("tiny-vit", contrastive_objective="siglip")


@pytest.mark.parametrize("preset", ["tiny-vit", "tiny-resnet"])
def test_forward_adds_the_bias_and_returns_the_sigmoid_loss(preset):
    torch.manual_seed(0)
    config = siglip_config(preset)
    model = ClipModel(config).eval()
    with torch.no_grad():
        model.logit_bias.fill_(-2.5)
    out = model(**random_inputs(config), return_loss=True)
    plain = out.logit_scale_multiplier * out.text_embeds @ out.image_embeds.t()
    torch.testing.assert_close(out.logits_per_text, plain - 2.5)
    assert out.logit_bias is model.logit_bias
    expected = ContrastiveLoss("global", objective="sigmoid")(out.image_embeds, out.text_embeds,
                                                               out.logit_scale_multiplier, out.logit_bias)
    torch.testing.assert_close(out.loss, expected)


def test_the_bias_is_saved_and_loaded_and_towers_load_from_a_siglip_folder(tmp_path, recwarn):
    model = ClipModel(siglip_config())
    with torch.no_grad():
        model.logit_bias.fill_(-7.25)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert loaded.config.contrastive_objective == "sigmoid" and loaded.logit_bias.item() == -7.25
    # The tower alone ignores the dual encoder's scale and bias without a word.
    ClipVisionModelWithProjection.from_pretrained(tmp_path)
    assert not [w for w in recwarn if "logit_bias" in str(w.message)]


def test_fine_tuning_a_softmax_model_with_the_sigmoid_objective_starts_the_bias_fresh(tmp_path):
    ClipModel(ClipConfig.from_preset("tiny-vit", logit_scale_init_value=2.0)).save_pretrained(tmp_path)
    switched = ClipModel.from_pretrained(tmp_path, contrastive_objective="sigmoid")
    assert switched.logit_scale.item() == pytest.approx(2.0)  # trained weights are kept
    assert switched.logit_bias.item() == pytest.approx(-10.0)


def test_the_trainer_trains_with_the_sigmoid_objective(tmp_path, clip_tokenizer):
    torch.manual_seed(0)
    config = siglip_config()
    processor = ClipProcessor.for_config(config, clip_tokenizer)
    data = shapes_dataset(32)
    args = ContrastiveTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=16, max_steps=30, learning_rate=2e-3, warmup_steps=2,
        logging_steps=5, use_cpu=True, save_strategy="no", train_sampling_strategy="sequential", seed=0,
    )
    trainer = ContrastiveTrainer(model=ClipModel(config), args=args, train_dataset=data,
                                 data_collator=ImageTextCollator(processor))
    assert trainer.contrastive_loss.objective == "sigmoid"
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert {"logit_bias", "logit_scale_multiplier"} <= set(logged[0])
    assert logged[-1]["loss"] < 0.7 * logged[0]["loss"], [entry["loss"] for entry in logged]
    assert logged[-1]["logit_bias"] != pytest.approx(-10.0)  # the bias is learnt
    names = {n for group in trainer.optimizer.param_groups for n, p in trainer.model.named_parameters()
             if any(p is q for q in group["params"]) and group["weight_decay"] == 0.0}
    assert "logit_bias" in names


def test_the_siglip_emoji_recipe_is_the_softmax_one_with_the_sigmoid_objective(tmp_path):
    from pathlib import Path

    from hf_limber.recipes import parse_recipe
    from hf_limber.training.clip_recipe import ClipRecipeArguments

    recipes = Path(__file__).resolve().parents[1] / "recipes" / "clip"
    kinds = (ClipRecipeArguments, ContrastiveTrainingArguments)
    overrides = ["--output_dir", str(tmp_path)]
    softmax_recipe, softmax_training = parse_recipe(recipes / "emoji-small.yaml", kinds, overrides)
    sigmoid_recipe, sigmoid_training = parse_recipe(recipes / "emoji-small-siglip.yaml", kinds, overrides)
    assert softmax_recipe.objective is None and sigmoid_recipe.objective == "sigmoid"
    sigmoid_recipe.objective = None
    assert sigmoid_recipe == softmax_recipe and sigmoid_training.to_dict() == softmax_training.to_dict()
