"""A LiMBeR whose LM (or whole model) is spread by accelerate over CPU and disk (`device_map="auto"`,
a small `max_memory`, `offload_folder`) generates the tokens the plain model generates."""

import pytest
import torch
from limber_parts import image_encoder, language_model, word_tokenizer
from PIL import Image
from transformers import AutoModelForCausalLM

from hf_limber.limber import LimberForCausalLM, LimberProcessor

pytest.importorskip("accelerate")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("offload")
    image_encoder("clip-resnet").save_pretrained(root / "encoder")
    language_model("llama").save_pretrained(root / "lm")
    plain = LimberForCausalLM.from_parts(root / "encoder", root / "lm")
    with torch.no_grad():
        plain.projection.weight.normal_()
    processor = LimberProcessor.for_model(plain, word_tokenizer())
    pictures = [Image.new("RGB", (40, 40), (200, 30, 30)), Image.new("RGB", (40, 40), (30, 30, 200))]
    batch = processor(images=pictures, text=["a", "a red"])
    expected = plain.generate(**batch, max_new_tokens=8, do_sample=False)
    return root, plain, batch, expected


def spread_over_cpu_and_disk(device_map: dict[str, str], no_split: set[str], model: torch.nn.Module) -> None:
    assert set(device_map.values()) == {"cpu", "disk"}, device_map
    # No module accelerate was told not to split has its parts on two devices.
    for name, module in model.named_modules():
        if type(module).__name__ in no_split:
            placed = {device for key, device in device_map.items() if key.startswith(name + ".") or key == name}
            covering = [device for key, device in device_map.items() if name.startswith(key + ".")]
            assert len(placed | set(covering)) == 1, (name, device_map)


def test_no_split_modules_come_from_the_parts(parts):
    _, plain, _, _ = parts
    assert {"LlamaDecoderLayer"} <= set(plain._no_split_modules)
    assert set(plain.language_model._no_split_modules) <= set(plain._no_split_modules)


def test_an_lm_offloaded_to_cpu_and_disk_generates_the_same_tokens(parts, tmp_path):
    root, plain, batch, expected = parts
    lm = AutoModelForCausalLM.from_pretrained(root / "lm", device_map="auto", max_memory={"cpu": "100KB"},
                                              offload_folder=tmp_path / "offload")
    spread_over_cpu_and_disk(lm.hf_device_map, set(lm._no_split_modules), lm)
    model = LimberForCausalLM.from_parts(root / "encoder", lm)
    model.projection.load_state_dict(plain.projection.state_dict())
    assert torch.equal(model.generate(**batch, max_new_tokens=8, do_sample=False), expected)

    # The adapter form passes device_map and its options on to the LM it loads.
    plain.save_pretrained(tmp_path / "adapter")
    loaded = LimberForCausalLM.from_pretrained(tmp_path / "adapter", device_map="auto", max_memory={"cpu": "100KB"},
                                               offload_folder=tmp_path / "offload-adapter")
    spread_over_cpu_and_disk(loaded.language_model.hf_device_map, set(lm._no_split_modules), loaded.language_model)
    assert torch.equal(loaded.generate(**batch, max_new_tokens=8, do_sample=False), expected)


def test_a_full_limber_spread_over_cpu_and_disk_generates_the_same_tokens(parts, tmp_path):
    _, plain, batch, expected = parts
    plain.save_pretrained(tmp_path / "full", full=True)
    half = sum(p.numel() * p.element_size() for p in plain.parameters()) // 2
    model = LimberForCausalLM.from_pretrained(tmp_path / "full", device_map="auto", max_memory={"cpu": half},
                                              offload_folder=tmp_path / "offload")
    spread_over_cpu_and_disk(model.hf_device_map, set(plain._no_split_modules), model)
    assert torch.equal(model.generate(**batch, max_new_tokens=8, do_sample=False), expected)
