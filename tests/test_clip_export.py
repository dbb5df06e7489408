"""A ViT CLIP of ours out to transformers' stock CLIPModel (no remote code) and to open_clip, at odd shapes."""

import json

import pytest
import torch
from open_clip.model import CLIP as OpenClipCLIP
from test_clip_parity import randomise_, text_ids
from transformers import AutoModel, AutoProcessor, CLIPModel, CLIPProcessor

from hf_limber import ClipConfig, ClipModel, ClipProcessor
from hf_limber.cli import main
from hf_limber.clip import convert, export

ATOL = 1e-5
# Width 48 (three 16-wide heads), 3 layers, patch 8 on 40-px images (a 5x5 grid), a 13-token context.
ODD = dict(embed_dim=40, vision_cfg=dict(image_size=40, layers=3, width=48, patch_size=8, head_width=16),
           text_cfg=dict(context_length=13, vocab_size=300, width=48, heads=3, layers=3))


def odd_config(**overrides) -> ClipConfig:
    return ClipConfig(
        projection_dim=40,
        text_config=dict(hidden_size=48, num_attention_heads=3, num_hidden_layers=3, max_position_embeddings=13),
        vision_config=dict(tower="vit", hidden_size=48, num_attention_heads=3, num_hidden_layers=3, patch_size=8,
                           image_size=40),
        **overrides,
    )


def assert_same_outputs(ours: ClipModel, theirs: CLIPModel, ids, pixels, mask=None) -> float:
    with torch.no_grad():
        a = ours(input_ids=ids, pixel_values=pixels, attention_mask=mask)
        b = theirs(input_ids=ids, pixel_values=pixels, attention_mask=mask)
    torch.testing.assert_close(a.image_embeds, b.image_embeds, atol=ATOL, rtol=0)
    torch.testing.assert_close(a.text_embeds, b.text_embeds, atol=ATOL, rtol=0)
    torch.testing.assert_close(a.logits_per_image, b.logits_per_image, atol=ATOL, rtol=0)
    return (a.logits_per_image - b.logits_per_image).abs().max().item()


def test_export_writes_a_stock_clip_folder_with_no_remote_code(tmp_path, clip_tokenizer):
    torch.manual_seed(0)
    ours = ClipModel(odd_config()).eval()
    randomise_(ours)
    source = tmp_path / "ours"
    ours.save_pretrained(source)
    ClipProcessor.for_config(ours.config, clip_tokenizer).save_pretrained(source)
    out = tmp_path / "stock"
    assert main(["export", str(source), str(out), "--to", "transformers"]) == 0

    assert not list(out.glob("*.py"))
    for path in out.glob("*.json"):
        text = path.read_text()
        assert "auto_map" not in text and "hf_limber" not in text and "limber_clip" not in text, path.name
    model = AutoModel.from_pretrained(out).eval()
    assert type(model) is CLIPModel
    processor = AutoProcessor.from_pretrained(out)
    assert type(processor) is CLIPProcessor
    texts = ["a red apple on a table", "two cats", "an emoji of a smiling face with many teeth and a hat"]
    images = [torch.rand(3, 40, 40), torch.rand(3, 57, 44), torch.rand(3, 40, 64)]
    mine = ClipProcessor.from_pretrained(source)(text=texts, images=images)
    stock = processor(text=texts, images=images, padding=True, truncation=True, return_tensors="pt")
    assert torch.equal(stock["input_ids"], mine["input_ids"])
    torch.testing.assert_close(stock["pixel_values"], mine["pixel_values"])
    gap = assert_same_outputs(ours, model, mine["input_ids"], mine["pixel_values"], mine["attention_mask"])
    assert gap < ATOL


@pytest.mark.parametrize("quick_gelu", [True, False])
def test_open_clip_to_ours_to_transformers_and_back(quick_gelu):
    torch.manual_seed(0)
    reference = OpenClipCLIP(quick_gelu=quick_gelu, **ODD).eval()
    randomise_(reference)
    ids, pixels = text_ids(3, 13, 300), torch.randn(3, 3, 40, 40)
    mask = (ids != 0).long()

    ours = convert.from_open_clip(reference)
    theirs = export.to_transformers(ours)
    assert_same_outputs(ours, theirs, ids, pixels, mask)
    back = convert.from_transformers(theirs)
    assert_same_outputs(back, theirs, ids, pixels, mask)

    state = export.to_openai_state_dict(back)
    original = reference.state_dict()
    assert state.keys() == original.keys()
    for key, value in state.items():
        assert torch.equal(value, original[key]), key
    rebuilt = OpenClipCLIP(quick_gelu=quick_gelu, **ODD).eval()
    rebuilt.load_state_dict(state, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.encode_image(pixels), reference.encode_image(pixels), atol=0, rtol=0)


def test_resnet_weights_go_back_to_open_clip():
    small = dict(embed_dim=40, vision_cfg=dict(image_size=64, layers=[1, 2, 1, 1], width=16, head_width=32),
                 text_cfg=dict(context_length=13, vocab_size=300, width=48, heads=3, layers=1))
    reference = OpenClipCLIP(**small).eval()
    randomise_(reference)
    state = export.to_openai_state_dict(convert.from_open_clip(reference))
    original = reference.state_dict()
    assert state.keys() == original.keys()
    assert all(torch.equal(value, original[key]) for key, value in state.items())


def test_export_refuses_what_clip_model_cannot_hold(tmp_path):
    resnet = ClipModel(ClipConfig.from_preset("tiny-resnet"))
    with pytest.raises(export.ExportRefused, match="no ResNet CLIP tower"):
        export.to_transformers(resnet)
    sigmoid = ClipModel(odd_config(contrastive_objective="sigmoid"))
    with pytest.raises(export.ExportRefused, match="logit_bias"):
        export.export_to_transformers(sigmoid, tmp_path / "siglip")
    assert not (tmp_path / "siglip").exists()
    legacy = ClipModel(ClipConfig(text_config=dict(hidden_size=32, num_hidden_layers=1, vocab_size=50, eos_token_id=2,
                                                   bos_token_id=1, pad_token_id=0),
                                  vision_config=dict(hidden_size=32, num_hidden_layers=1, image_size=32, patch_size=16)))
    with pytest.raises(export.ExportRefused, match="legacy"):
        export.to_transformers(legacy)

    resnet.save_pretrained(tmp_path / "rn")
    with pytest.raises(export.ExportRefused, match="ResNet"):
        main(["export", str(tmp_path / "rn"), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
    CLIPModel(export.transformers_config(ClipModel(odd_config()))).save_pretrained(tmp_path / "stock")
    with pytest.raises(export.ExportRefused, match="already a transformers CLIPModel"):
        main(["export", str(tmp_path / "stock"), str(tmp_path / "out")])


def test_export_refuses_a_folder_that_holds_files(tmp_path):
    ClipModel(odd_config()).save_pretrained(tmp_path / "ours")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="already holds files.*--overwrite"):
        main(["export", str(tmp_path / "ours"), str(out)])
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert main(["export", str(tmp_path / "ours"), str(out), "--overwrite"]) == 0
    assert json.loads((out / "config.json").read_text())["model_type"] == "clip"
    assert type(CLIPModel.from_pretrained(out)) is CLIPModel
