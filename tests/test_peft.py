"""PEFT on LiMBeR's frozen LM: LoRA trained with the projection, saved in peft's own files, reloaded exactly."""

import json

import pytest
import torch
from limber_parts import image_encoder, language_model, word_tokenizer
from PIL import Image

from hf_limber.limber import LimberForCausalLM, LimberProcessor
from hf_limber.limber.adapter import LM_ADAPTER_FOLDER

peft = pytest.importorskip("peft")


def images(n: int) -> list[Image.Image]:
    return [Image.new("RGB", (40, 40), colour) for colour in [(200, 30, 30), (30, 30, 200)][:n]]


def lora_model(tmp_path, lm_kind: str = "llama") -> tuple[LimberForCausalLM, dict]:
    image_encoder("clip-resnet").save_pretrained(tmp_path / "encoder")
    language_model(lm_kind).save_pretrained(tmp_path / "lm")
    model = LimberForCausalLM.from_parts(tmp_path / "encoder", tmp_path / "lm", projection_dropout=0.0)
    model.add_language_model_adapter(peft.LoraConfig(r=4, lora_alpha=8, init_lora_weights=False))
    processor = LimberProcessor.for_model(model, word_tokenizer())
    batch = processor(images=images(2), captions=["a red cat", "two blue dogs"])
    return model, batch


@pytest.mark.parametrize("lm_kind", ["llama", "gpt2"])
def test_lora_and_the_projection_are_all_that_trains(tmp_path, lm_kind):
    model, batch = lora_model(tmp_path, lm_kind)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("projection.") or ".lora_" in name for name in trainable)
    assert any(".lora_A." in name for name in trainable) and "projection.weight" in trainable
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model(**batch).loss.backward()
    optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert changed == trainable


def test_lora_adapter_saves_in_peft_files_and_reloads_exactly(tmp_path):
    model, batch = lora_model(tmp_path)
    model.eval()
    with torch.no_grad():
        model.projection.weight.normal_()
        expected = model(**batch).logits
        without_lora = LimberForCausalLM.from_parts(tmp_path / "encoder", tmp_path / "lm", projection_dropout=0.0)
        without_lora.projection.load_state_dict(model.projection.state_dict())
        assert not torch.allclose(without_lora(**batch).logits, expected, atol=1e-3)  # the LoRA matters

    model.save_pretrained(tmp_path / "adapter")
    files = {p.name for p in (tmp_path / "adapter" / LM_ADAPTER_FOLDER).iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= files
    saved = json.loads((tmp_path / "adapter" / LM_ADAPTER_FOLDER / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA" and saved["r"] == 4 and saved["base_model_name_or_path"] == str(tmp_path / "lm")
    assert (tmp_path / "adapter" / "model.safetensors").stat().st_size < 200_000  # still the projection only
    assert not (tmp_path / "adapter" / "adapter_config.json").exists()  # transformers would take the folder for a bare adapter
    reloaded = LimberForCausalLM.from_pretrained(tmp_path / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, expected, rtol=0, atol=0)
    # A bare peft loader reads the LM's adapter too.
    lm = peft.PeftModel.from_pretrained(language_model("llama"), tmp_path / "adapter" / LM_ADAPTER_FOLDER)
    ours = {name.removeprefix("language_model."): p for name, p in model.named_parameters() if ".lora_" in name}
    theirs = {name.removeprefix("base_model.model."): p for name, p in lm.named_parameters() if ".lora_" in name}
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[name], theirs[name]) for name in ours)

    model.save_pretrained(tmp_path / "full", full=True)
    full = LimberForCausalLM.from_pretrained(tmp_path / "full")
    with torch.no_grad():
        torch.testing.assert_close(full(**batch).logits, expected, rtol=0, atol=0)


def test_the_limber_recipe_trains_a_lora_and_saves_it_beside_the_projection(tmp_path):
    from datasets import Dataset, DatasetDict

    from hf_limber.recipes import parse_recipe
    from hf_limber.training.limber_recipe import LimberArguments, LimberTrainingArguments, train_limber

    image_encoder("clip-resnet").save_pretrained(tmp_path / "encoder")
    language_model("llama").save_pretrained(tmp_path / "lm")
    word_tokenizer().save_pretrained(tmp_path / "lm")
    rows = [{"image": picture, "captions": [caption]}
            for picture, caption in zip(images(2) * 4, ["a red apple", "a blue car"] * 4)]
    DatasetDict(train=Dataset.from_list(rows)).save_to_disk(tmp_path / "data")
    (tmp_path / "recipe.yaml").write_text(
        f"image_encoder: {tmp_path / 'encoder'}\nlanguage_model: {tmp_path / 'lm'}\ndataset: {tmp_path / 'data'}\n"
        "eval_split: null\nper_device_train_batch_size: 4\nmax_steps: 3\nwarmup_steps: 0\nlearning_rate: 0.01\n"
        "use_cpu: true\nseed: 3\n")
    args, training_args = parse_recipe(tmp_path / "recipe.yaml", (LimberArguments, LimberTrainingArguments), [
        "--output_dir", str(tmp_path / "run"), "--lora_rank", "2", "--lora_target_modules", "q_proj", "v_proj"])
    assert args.lora_target_modules == ["q_proj", "v_proj"]
    model = train_limber(args, training_args).eval()
    lora = {name: p for name, p in model.named_parameters() if ".lora_" in name}
    assert len(lora) == 2 * 2 * 2  # A and B on q_proj and v_proj of 2 layers
    assert all(p.abs().sum() > 0 for name, p in lora.items() if ".lora_B." in name)  # trained away from zero

    reloaded = LimberForCausalLM.from_pretrained(tmp_path / "run")
    assert reloaded.config.language_model_adapter == LM_ADAPTER_FOLDER
    assert not any(p.requires_grad for p in reloaded.language_model.parameters())  # loaded for use, frozen
    batch = LimberProcessor.from_pretrained(tmp_path / "run")(images=images(2), captions=["a red apple", "a blue car"])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)
