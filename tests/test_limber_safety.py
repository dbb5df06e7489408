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


def test_the_space_trusts_shipped_code_only_when_told(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("space_serving", SERVING)
    serving = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, serving)  # its dataclasses look their module up there
    spec.loader.exec_module(serving)
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
