"""LiMBeR loading is safe by default: a saved folder's own code runs only with trust_remote_code=True, and
an adapter file loads exactly the tensors its config says were trained (issue 17, items 1 and 4)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from limber_parts import image_encoder, language_model, word_tokenizer
from PIL import Image
from safetensors.torch import load_file, save_file

from hf_limber.cli import main
from hf_limber.limber import LimberConfig, LimberForCausalLM, LimberProcessor

SERVING = Path(__file__).resolve().parents[1] / "spaces" / "demo" / "serving.py"

INNOCENT = '''
from pathlib import Path

Path({marker!r}).write_text("this code ran")

from transformers import CLIPVisionConfig, CLIPVisionModel


class InnocentConfig(CLIPVisionConfig):
    model_type = {name!r}


class InnocentModel(CLIPVisionModel):
    config_class = InnocentConfig
'''


def malicious_folder(root: Path, name: str = "innocent") -> tuple[Path, Path]:
    """A full LiMBeR folder whose image encoder is 'innocent.InnocentModel', shipped beside it in innocent.py,
    a file that writes a marker when imported. (A model type, once trusted, stays registered for the
    process: each test uses its own `name`.)"""
    folder, marker = root / "limber", root / "marker.txt"
    model = LimberForCausalLM.from_parts(image_encoder("hf-clip"), language_model("llama"))
    model.save_pretrained(folder, full=True)
    LimberProcessor.for_model(model, word_tokenizer()).save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["vision_config"]["model_type"] = name
    config["vision_config"]["auto_map"] = {"AutoConfig": f"{name}.InnocentConfig", "AutoModel": f"{name}.InnocentModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / f"{name}.py").write_text(INNOCENT.format(marker=str(marker), name=name))
    return folder, marker


def test_a_folders_own_code_never_runs_unless_trusted(tmp_path):
    folder, marker = malicious_folder(tmp_path)
    with pytest.raises(ValueError, match="trust_remote_code=True") as refused:
        LimberConfig.from_pretrained(folder)
    assert "innocent.py" in str(refused.value)
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        LimberForCausalLM.from_pretrained(folder)
    from transformers import AutoConfig, AutoModel

    for loader in (AutoConfig, AutoModel):
        with pytest.raises(ValueError, match="trust_remote_code=True"):
            loader.from_pretrained(folder)
    image = tmp_path / "red.png"
    Image.new("RGB", (32, 32), "red").save(image)
    with pytest.raises(ValueError, match="trust-remote-code"):
        main(["caption", str(folder), str(image), "--max-new-tokens", "2"])
    assert not marker.exists()

    # Trusted, it loads (and the code runs, as the caller asked).
    config = LimberConfig.from_pretrained(folder, trust_remote_code=True)
    assert config.vision_config.model_type == "innocent" and marker.exists()
    model = LimberForCausalLM.from_pretrained(folder, trust_remote_code=True)
    assert type(model.image_encoder).__name__ == "InnocentModel"
    assert main(["caption", str(folder), str(image), "--max-new-tokens", "2", "--trust-remote-code"]) == 0


def load_serving(monkeypatch):
    spec = importlib.util.spec_from_file_location("space_serving", SERVING)
    serving = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, serving)  # its dataclasses look their module up there
    spec.loader.exec_module(serving)
    return serving


def test_the_space_trusts_shipped_code_only_when_told(tmp_path, monkeypatch):
    serving = load_serving(monkeypatch)
    folder, marker = malicious_folder(tmp_path, "innocent_space")
    monkeypatch.delenv(serving.TRUST_REMOTE_CODE_ENV, raising=False)
    services = serving.Services(str(tmp_path / "no-clip"), str(folder), str(tmp_path / "no-gallery"))
    with pytest.raises(serving.Missing, match="trust_remote_code"):
        services.limber.get()
    assert not marker.exists()
    monkeypatch.setenv(serving.TRUST_REMOTE_CODE_ENV, "1")
    assert isinstance(services.limber.get().model, LimberForCausalLM) and marker.exists()


def adapter_folder(root: Path) -> tuple[LimberForCausalLM, Path]:
    encoder, lm = image_encoder("hf-clip"), language_model("llama")
    encoder.save_pretrained(root / "encoder")
    lm.save_pretrained(root / "lm")
    model = LimberForCausalLM.from_parts(root / "encoder", root / "lm")
    model.save_pretrained(root / "adapter")
    return model, root / "adapter"


def test_an_adapter_cannot_overwrite_the_frozen_parts(tmp_path):
    model, folder = adapter_folder(tmp_path)
    weights = load_file(folder / "model.safetensors")
    assert set(weights) == {"projection.weight", "projection.bias"}
    poisoned = {**weights, "language_model.lm_head.weight": torch.zeros_like(model.language_model.lm_head.weight)}
    save_file(poisoned, folder / "model.safetensors")
    with pytest.raises(ValueError, match=r"language_model\.lm_head\.weight") as refused:
        LimberForCausalLM.from_pretrained(folder)
    assert "does not train" in str(refused.value)

    save_file({"projection.weight": weights["projection.weight"]}, folder / "model.safetensors")
    with pytest.raises(ValueError, match=r"projection\.bias"):
        LimberForCausalLM.from_pretrained(folder)


def test_an_adapter_trained_with_its_image_encoder_carries_and_loads_it(tmp_path):
    model, folder = adapter_folder(tmp_path)
    with torch.no_grad():
        model.image_encoder.post_layernorm.weight.fill_(3.0)
    model.config.train_image_encoder = True
    model.save_pretrained(folder)
    saved = load_file(folder / "model.safetensors")
    assert any(name.startswith("image_encoder.") for name in saved)
    assert not any(name.startswith("language_model.") for name in saved)
    loaded = LimberForCausalLM.from_pretrained(folder)
    assert torch.all(loaded.image_encoder.post_layernorm.weight == 3.0)

    config = json.loads((folder / "config.json").read_text())
    config.pop("train_image_encoder")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"image_encoder\."):
        LimberForCausalLM.from_pretrained(folder)


# -- text: only the images passed make image slots; long text fits the LM -------------------------------------


def tiny(lm_kind: str = "llama") -> tuple[LimberForCausalLM, LimberProcessor]:
    model = LimberForCausalLM.from_parts(image_encoder("clip-resnet"), language_model(lm_kind)).eval()
    return model, LimberProcessor.for_model(model, word_tokenizer())


def picture(colour: str = "red") -> Image.Image:
    return Image.new("RGB", (48, 48), colour)


def test_a_typed_image_marker_is_plain_text():
    from hf_limber.evaluation.questions import answer_questions, question_prompt

    model, processor = tiny()
    k = model.config.num_image_tokens
    prompt = question_prompt("what is <image> ?", [("how many <image> ?", "two <image>")])
    assert prompt.count("<image>") == 2
    batch = processor(images=[picture(), picture("blue")], text=[prompt])
    assert (batch["input_ids"] == model.config.image_token_id).sum().item() == 2 * k
    (answer,) = answer_questions(model, processor, [picture()], ["what <image><image> is there ?"], max_new_tokens=2)
    assert isinstance(answer, str)


def test_markers_that_do_not_match_the_images_are_refused_before_generation():
    from hf_limber.limber.processing_limber import ImageSlotMismatch

    _, processor = tiny()
    with pytest.raises(ImageSlotMismatch, match="places 2 image.*but 1 image"):
        processor(images=[picture()], text="<image>a cat <image>")
    with pytest.raises(ImageSlotMismatch, match="places 1 image.*but 2 image"):
        processor(images=[picture(), picture()], text=["a cat"])


def test_the_space_answers_a_question_that_types_the_marker(tmp_path, monkeypatch):
    serving = load_serving(monkeypatch)
    model, processor = tiny()
    model.save_pretrained(tmp_path / "limber", full=True)
    processor.save_pretrained(tmp_path / "limber")
    services = serving.Services(str(tmp_path / "no-clip"), str(tmp_path / "limber"), str(tmp_path / "no-gallery"))
    assert isinstance(services.answer(picture(), "what is <image> <image> ?"), str)
    assert isinstance(services.caption(picture(), max_new_tokens=2), str)
    monkeypatch.setattr(serving, "answer_questions", lambda *args, **kwargs: processor(images=[picture()], text=["<image><image>"]))
    with pytest.raises(serving.BadInput, match="places 2 image"):
        services.answer(picture(), "what is it ?")


@pytest.mark.parametrize("lm_kind", ["gpt2", "llama"])
def test_over_long_text_is_cut_to_the_lms_context_with_a_warning(lm_kind):
    from hf_limber.evaluation.questions import answer_questions

    model, processor = tiny(lm_kind)
    context = model.config.text_config.max_position_embeddings  # 256 positions
    assert processor.context_length == context
    question = " ".join(["red cat"] * 5_000)
    with pytest.warns(UserWarning, match=f"cut to fit the LM's context of {context} positions"):
        batch = processor(images=[picture()], text=f"q : {question} a :", max_new_tokens=8)
    assert batch["input_ids"].shape[1] == context - 8
    assert (batch["input_ids"] == model.config.image_token_id).sum().item() == model.config.num_image_tokens
    assert processor.tokenizer.decode(batch["input_ids"][0, -3:]).split() == ["cat", "a", ":"]  # the end is kept
    with pytest.warns(UserWarning, match="cut to fit"):
        (answer,) = answer_questions(model, processor, [picture()], [question], max_new_tokens=8)
    assert isinstance(answer, str)
