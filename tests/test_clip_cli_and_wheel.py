import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from open_clip.model import CLIP as OpenClipCLIP
from safetensors.torch import save_file
from test_clip_parity import OPEN_CLIP_SMALL, randomise_, text_ids
from transformers import AutoModel, AutoProcessor, CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

from hf_limber import ClipConfig, ClipModel
from hf_limber.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_convert_transformers_folder(tmp_path, clip_tokenizer):
    reference = CLIPModel(CLIPConfig(
        projection_dim=32,
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         max_position_embeddings=32, eos_token_id=49407),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16),
    )).eval()
    randomise_(reference)
    source = tmp_path / "hf"
    reference.save_pretrained(source)
    CLIPProcessor(CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  clip_tokenizer).save_pretrained(source)
    assert main(["convert", str(source), str(tmp_path / "out")]) == 0
    model = AutoModel.from_pretrained(tmp_path / "out").eval()
    processor = AutoProcessor.from_pretrained(tmp_path / "out")
    batch = processor(text=["a dog", "a cat"], images=[torch.rand(3, 40, 40), torch.rand(3, 50, 40)])
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits_per_image, reference(**batch).logits_per_image,
                                   atol=1e-4, rtol=0)


def test_convert_openai_safetensors_and_refuse_pickles(tmp_path):
    reference = OpenClipCLIP(quick_gelu=True, **OPEN_CLIP_SMALL["resnet"]).eval()
    randomise_(reference)
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    save_file(state, tmp_path / "rn.safetensors")
    assert main(["convert", str(tmp_path / "rn.safetensors"), str(tmp_path / "out")]) == 0
    model = AutoModel.from_pretrained(tmp_path / "out").eval()
    assert model.config.vision_config.tower == "resnet"
    assert (tmp_path / "out" / "tokenizer.json").exists()
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.get_image_features(pixels).pooler_output, reference.encode_image(pixels),
                                   atol=1e-5, rtol=0)
    (tmp_path / "model.pt").write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="never loads pickles"):
        main(["convert", str(tmp_path / "model.pt"), str(tmp_path / "bad")])


def test_convert_refuses_what_is_not_a_supported_source(tmp_path):
    ours = tmp_path / "ours"
    ClipModel(ClipConfig.from_preset("tiny-vit")).save_pretrained(ours)
    with pytest.raises(ValueError, match="already an hf_limber CLIP"):
        main(["convert", str(ours), str(tmp_path / "out")])
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"model_type": "vit"}')
    with pytest.raises(ValueError, match="holds a 'vit' model"):
        main(["convert", str(other), str(tmp_path / "out")])
    with pytest.raises(ValueError, match="has no config.json"):
        main(["convert", str(tmp_path), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_convert_refuses_a_folder_that_holds_files(tmp_path):
    reference = OpenClipCLIP(quick_gelu=True, **OPEN_CLIP_SMALL["resnet"]).eval()
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, tmp_path / "rn.safetensors")
    out = tmp_path / "out"
    out.mkdir()
    (out / "preprocessor_config.json").write_text('{"note": "another model\'s"}')
    with pytest.raises(SystemExit, match="already holds files.*--overwrite"):
        main(["convert", str(tmp_path / "rn.safetensors"), str(out)])
    assert sorted(p.name for p in out.iterdir()) == ["preprocessor_config.json"]
    assert main(["convert", str(tmp_path / "rn.safetensors"), str(out), "--overwrite"]) == 0
    assert (out / "model.safetensors").is_file()


@pytest.mark.timeout(600)
def test_presets_load_from_an_installed_wheel(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("hf_limber-*.whl"))
    assert "hf_limber/modeling/RN50x64.json" in zipfile.ZipFile(wheel).namelist()
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    script = ("import hf_limber, sys; assert hf_limber.__file__.startswith(sys.argv[1]), hf_limber.__file__; "
              "c = hf_limber.ClipConfig.from_preset('ViT-L/14@336'); print(c.vision_config.image_size, len(hf_limber.list_presets()))")
    result = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, text=True,
                            env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["336", str(len(list((ROOT / "modeling").glob("*.json"))))]
