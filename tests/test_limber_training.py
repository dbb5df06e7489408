import json

import pytest
import torch
from datasets import Dataset, DatasetDict, load_from_disk
from limber_parts import image_encoder, language_model, word_tokenizer
from PIL import Image

from hf_limber.cli import main
from hf_limber.limber import LimberForCausalLM, LimberProcessor

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


def scenes(n: int) -> Dataset:
    rows = []
    for i in range(n):
        colour = list(COLOURS)[i % 3]
        rows.append({"image": Image.new("RGB", (40, 40), COLOURS[colour]),
                     "captions": [f"a {colour} apple", f"the {colour} apple", f"a {colour} car"]})
    return Dataset.from_list(rows)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("limber")
    image_encoder("clip-resnet").save_pretrained(root / "encoder")
    lm = language_model("llama")
    lm.save_pretrained(root / "lm")
    word_tokenizer().save_pretrained(root / "lm")
    DatasetDict(train=scenes(24), validation=scenes(6)).save_to_disk(root / "data")
    recipe = {
        "image_encoder": str(root / "encoder"), "language_model": str(root / "lm"), "dataset": str(root / "data"),
        "per_device_train_batch_size": 4, "max_steps": 6, "warmup_steps": 1, "logging_steps": 1,
        "bf16": False, "seed": 7, "dataloader_num_workers": 0,
    }
    (root / "recipe.yaml").write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in recipe.items()))
    return root


def run_and_read_losses(args: list[str]) -> list[float]:
    from hf_limber.training import limber_recipe as training

    captured = {}
    original = training.Trainer.train

    def train(self, *a, **k):
        before = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        result = original(self, *a, **k)
        captured["losses"] = [entry["loss"] for entry in self.state.log_history if "loss" in entry]
        changed = {n for n, p in self.model.named_parameters() if not torch.equal(p, before[n])}
        assert changed == {"projection.weight", "projection.bias"}, changed
        return result

    training.Trainer.train = train
    try:
        assert main(args) == 0
    finally:
        training.Trainer.train = original
    return captured["losses"]


def test_trainer_recipe_trains_only_the_projection_and_cache_gives_the_same_losses(workspace, tmp_path):
    from_pixels = run_and_read_losses(["train-limber", str(workspace / "recipe.yaml"),
                                       "--output_dir", str(tmp_path / "pixels")])
    assert len(from_pixels) == 6 and all(loss > 0 for loss in from_pixels)

    assert LimberForCausalLM.from_pretrained(tmp_path / "pixels").config.saved_parts == "adapter"
    assert (tmp_path / "pixels" / "model.safetensors").stat().st_size < 200_000  # the adapter form

    assert main(["cache-features", str(workspace / "recipe.yaml"), str(tmp_path / "cache")]) == 0
    cached = load_from_disk(tmp_path / "cache")
    assert "image" not in cached["train"].column_names
    assert torch.tensor(cached["train"][0]["image_features"]).shape == (4, 512)
    from_cache = run_and_read_losses(["train-limber", str(workspace / "recipe.yaml"),
                                      "--output_dir", str(tmp_path / "cached"),
                                      "--cached_features", str(tmp_path / "cache")])
    assert from_cache == pytest.approx(from_pixels, rel=1e-5)


def test_recipe_overrides_and_unknown_fields(workspace, tmp_path):
    from hf_limber.training.limber_recipe import LimberArguments, LimberTrainingArguments
    from hf_limber.recipes import parse_recipe

    args, training_args = parse_recipe(workspace / "recipe.yaml", (LimberArguments, LimberTrainingArguments),
                                       ["--output_dir", str(tmp_path), "--max_steps", "3"])
    assert training_args.max_steps == 3 and training_args.learning_rate == 8e-4
    assert (training_args.adam_beta1, training_args.adam_beta2, training_args.weight_decay) == (0.9, 0.95, 0.0)
    assert training_args.max_grad_norm == 1.0 and args.prompt == "A picture of"
    bad = tmp_path / "bad.yaml"
    bad.write_text("image_encoder: x\nlanguage_model: y\ndataset: z\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        parse_recipe(bad, (LimberArguments, LimberTrainingArguments), ["--output_dir", str(tmp_path)])


def test_caption_command(workspace, tmp_path, capsys):
    model = LimberForCausalLM.from_parts(workspace / "encoder", workspace / "lm")
    model.save_pretrained(tmp_path / "model")
    LimberProcessor.for_model(model, word_tokenizer()).save_pretrained(tmp_path / "model")
    Image.new("RGB", (30, 30), (200, 0, 0)).save(tmp_path / "red.png")
    assert main(["caption", str(tmp_path / "model"), str(tmp_path / "red.png"), "--max-new-tokens", "3"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"{tmp_path / 'red.png'}\tA picture of")


def test_caption_logits_only_give_the_full_sequences_loss_and_gradient():
    """The collator's logits_to_keep computes logits only where captions are predicted: same loss and
    same projection gradient as logits at every position."""
    from hf_limber.training.caption_collator import CaptionCollator

    torch.manual_seed(0)
    model = LimberForCausalLM.from_parts(image_encoder("clip-vit"), language_model("llama"), projection_dropout=0.0)
    processor = LimberProcessor.for_model(model, word_tokenizer())
    width = model.config.image_feature_size
    rows = [{"image_features": torch.randn(model.config.num_image_tokens, width),
             "caption": text} for text in ("a red cat .", "two dogs and a small blue car on the left .")]
    batch = CaptionCollator(processor)(rows)
    assert 0 < batch["logits_to_keep"] < batch["input_ids"].shape[1]
    losses, gradients = [], []
    for keep in (batch["logits_to_keep"], 0):
        model.zero_grad()
        output = model(**{**batch, "logits_to_keep": keep})
        output.loss.backward()
        losses.append(output.loss.detach())
        gradients.append(model.projection.weight.grad.clone())
        assert output.logits.shape[1] == (keep or batch["input_ids"].shape[1])
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gradients[0], gradients[1], rtol=1e-5, atol=1e-7)
