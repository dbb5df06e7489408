"""CLIP encoders exported to ONNX and run by ONNX Runtime: the same embeddings as PyTorch (fp32), close ones
with int8 weights, any batch and text length, the CLI's folder rules, and the zero-shot classifier on top."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import random_inputs
from PIL import Image
from test_clip_parity import randomise_
from transformers import AutoProcessor

from hf_limber import ClipConfig, ClipModel, ClipProcessor
from hf_limber.cli import main
from hf_limber.clip import onnx as clip_onnx
from hf_limber.clip.onnx import IMAGE_FILE, MANIFEST_FILE, TEXT_FILE, OnnxClipModel, export_onnx
from hf_limber.evaluation import ZeroShotClassifier

pytest.importorskip("onnxruntime", reason="the onnx extra (in dev) runs the exported encoders")

ATOL = 1e-5
PRESETS = ["tiny-vit", "tiny-resnet"]


class Export:
    """A randomised tiny CLIP of one preset, saved, and exported by the CLI in fp32 and with int8 weights."""

    def __init__(self, preset: str, root, tokenizer) -> None:
        torch.manual_seed(0)
        self.model = ClipModel(ClipConfig.from_preset(preset)).eval()
        randomise_(self.model)
        self.processor = ClipProcessor.for_config(self.model.config, tokenizer)
        self.source = root / "model"
        self.model.save_pretrained(self.source)
        self.processor.save_pretrained(self.source)
        self.fp32, self.int8 = root / "fp32", root / "int8"
        assert main(["export", str(self.source), str(self.fp32), "--to", "onnx"]) == 0
        assert main(["export", str(self.source), str(self.int8), "--to", "onnx", "--int8"]) == 0
        self.onnx = OnnxClipModel.from_pretrained(self.fp32, num_threads=1)
        self.onnx_int8 = OnnxClipModel.from_pretrained(self.int8, num_threads=1)


@pytest.fixture(scope="module", params=PRESETS)
def exported(request, tmp_path_factory, clip_tokenizer) -> Export:
    return Export(request.param, tmp_path_factory.mktemp(request.param), clip_tokenizer)


def texts_with_padding(config: ClipConfig) -> list[dict[str, torch.Tensor]]:
    """Right padding of several lengths, left padding and a gap, a full-length row, and no mask at all."""
    right = random_inputs(config, batch=4, length=12)
    short = random_inputs(config, batch=2, length=5, seed=1)
    full = random_inputs(config, batch=1, length=config.text_config.max_position_embeddings, seed=2)
    left = {key: right[key].clone() for key in ("input_ids", "attention_mask")}
    left["attention_mask"][1, :4] = 0  # left padding
    left["attention_mask"][2, 3:5] = 0  # a gap
    return [{key: batch[key] for key in ("input_ids", "attention_mask")} for batch in (right, short, full)] + [
        left, {"input_ids": right["input_ids"][:1]}]


def test_fp32_export_gives_pytorch_embeddings(exported):
    model, onnx_model = exported.model, exported.onnx
    pixels = random_inputs(model.config, batch=3)["pixel_values"]
    with torch.inference_mode():
        expected = model.get_image_features(pixel_values=pixels).pooler_output
    got = onnx_model.get_image_features(pixel_values=pixels).pooler_output
    assert got.dtype == torch.float32 and got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    for batch in texts_with_padding(model.config):
        with torch.inference_mode():
            expected = model.get_text_features(**batch).pooler_output
        torch.testing.assert_close(onnx_model.get_text_features(**batch).pooler_output, expected, atol=ATOL, rtol=0)
    assert onnx_model.logit_scale.item() == pytest.approx(model.logit_scale.item())
    assert onnx_model.logit_bias is None


def test_batch_of_one_and_of_many_agree(exported):
    inputs = random_inputs(exported.model.config, batch=4)
    for onnx_model, close in ((exported.onnx, ATOL), (exported.onnx_int8, None)):
        images = onnx_model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
        texts = onnx_model.get_text_features(input_ids=inputs["input_ids"],
                                             attention_mask=inputs["attention_mask"]).pooler_output
        for row in range(4):
            one_image = onnx_model.get_image_features(pixel_values=inputs["pixel_values"][row : row + 1]).pooler_output
            one_text = onnx_model.get_text_features(input_ids=inputs["input_ids"][row : row + 1],
                                                    attention_mask=inputs["attention_mask"][row : row + 1]).pooler_output
            for one, many in ((one_image, images[row : row + 1]), (one_text, texts[row : row + 1])):
                if close is not None:
                    torch.testing.assert_close(one, many, atol=close, rtol=0)
                else:  # int8 quantises activations with each call's own range: close, not equal
                    assert F.cosine_similarity(one, many).item() > 0.99


def test_int8_weights_stay_close_to_fp32(exported):
    inputs = random_inputs(exported.model.config, batch=4)
    for method, kwargs in (("get_image_features", {"pixel_values": inputs["pixel_values"]}),
                           ("get_text_features", {"input_ids": inputs["input_ids"],
                                                  "attention_mask": inputs["attention_mask"]})):
        fp32 = getattr(exported.onnx, method)(**kwargs).pooler_output
        int8 = getattr(exported.onnx_int8, method)(**kwargs).pooler_output
        assert F.cosine_similarity(fp32, int8).min().item() >= 0.99, method
    manifest = json.loads((exported.int8 / MANIFEST_FILE).read_text())
    assert manifest["precision"] == "int8" and manifest["quantization"]["weight_type"] == "QInt8"
    assert (exported.int8 / TEXT_FILE).stat().st_size < (exported.fp32 / TEXT_FILE).stat().st_size


def test_cli_export_writes_encoders_processor_and_manifest(exported):
    out = exported.fp32
    assert {IMAGE_FILE, TEXT_FILE, MANIFEST_FILE, "processor_config.json"} <= {p.name for p in out.iterdir()}
    assert not list(out.parent.glob(".*partial"))  # the staging folder is gone
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["precision"] == "fp32" and manifest["opset"] == clip_onnx.OPSET
    assert manifest["source"] == str(exported.source) and "dynamo" in manifest["exporter"]
    assert manifest["tower"] == exported.model.config.vision_config.tower
    assert type(AutoProcessor.from_pretrained(out)) is ClipProcessor
    processor = ClipProcessor.from_pretrained(out)
    batch = processor(text=["a cat", "a much longer caption of a dog"])
    with torch.inference_mode():
        expected = exported.model.get_text_features(**batch).pooler_output
    torch.testing.assert_close(exported.onnx.get_text_features(**batch).pooler_output, expected, atol=ATOL, rtol=0)


def test_cli_refuses_an_occupied_out_and_int8_without_onnx(exported, capsys):
    before = (exported.fp32 / IMAGE_FILE).read_bytes()
    with pytest.raises(SystemExit, match="already holds files"):
        main(["export", str(exported.source), str(exported.fp32), "--to", "onnx"])
    with pytest.raises(SystemExit, match="--int8"):
        main(["export", str(exported.source), str(exported.fp32.parent / "other"), "--int8"])
    assert (exported.fp32 / IMAGE_FILE).read_bytes() == before


def test_zero_shot_classifier_same_top1_with_the_export(exported):
    size = exported.model.config.vision_config.image_size
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (size + 9, size + 3, 3), dtype=np.uint8)) for _ in range(5)]
    labels = ["cat", "dog", "car", "tree", "boat", "pizza"]
    processor = ClipProcessor.from_pretrained(exported.fp32)
    with torch.inference_mode():
        eager = ZeroShotClassifier(exported.model, exported.processor)(images, labels, top_k=None)
    onnx = ZeroShotClassifier(exported.onnx, processor)(images, labels, top_k=None)
    assert [row[0][0] for row in onnx] == [row[0][0] for row in eager]
    for a, b in zip(onnx, eager):
        assert [p for _, p in a] == pytest.approx([p for _, p in b], abs=1e-4)


def test_unsupported_inputs_are_refused_naming_the_problem(exported):
    onnx_model = exported.onnx
    size = exported.model.config.vision_config.image_size
    with pytest.raises(ValueError, match=f"3, {size}, {size}"):
        onnx_model.get_image_features(pixel_values=torch.zeros(1, 3, size + 8, size + 8))
    with pytest.raises(ValueError, match="length <= 32"):
        onnx_model.get_text_features(input_ids=torch.ones(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="hidden states"):
        onnx_model.get_image_features(pixel_values=torch.zeros(1, 3, size, size), output_hidden_states=True)
    with pytest.raises(FileNotFoundError, match="--to onnx"):
        OnnxClipModel.from_pretrained(exported.source)


def _fake_encoders(model, folder, image_size, max_text_length):
    for name in (IMAGE_FILE, TEXT_FILE):
        (folder / name).write_text("new")


def test_overwrite_replaces_files_and_keeps_others(tmp_path, monkeypatch):
    monkeypatch.setattr(clip_onnx, "export_encoders", _fake_encoders)
    out = tmp_path / "out"
    out.mkdir()
    (out / IMAGE_FILE).write_text("old")
    (out / "notes.txt").write_text("mine")
    model = ClipModel(ClipConfig.from_preset("tiny-vit"))
    with pytest.raises(FileExistsError):
        export_onnx(model, out)
    export_onnx(model, out, overwrite=True)
    assert (out / IMAGE_FILE).read_text() == "new" and (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / MANIFEST_FILE).read_text())["precision"] == "fp32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_export_leaves_the_earlier_one_whole(tmp_path, monkeypatch):
    def failing(*args):
        _fake_encoders(*args)
        raise RuntimeError("exporter failed")

    out = tmp_path / "out"
    out.mkdir()
    (out / IMAGE_FILE).write_text("old")
    monkeypatch.setattr(clip_onnx, "export_encoders", failing)
    with pytest.raises(RuntimeError, match="exporter failed"):
        export_onnx(ClipModel(ClipConfig.from_preset("tiny-vit")), out, overwrite=True)
    assert (out / IMAGE_FILE).read_text() == "old" and not (out / TEXT_FILE).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left behind


def test_missing_onnxruntime_names_the_extra(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    with pytest.raises(ImportError, match=r"hf_limber\[onnx\]"):
        OnnxClipModel.from_pretrained(exported.fp32)
