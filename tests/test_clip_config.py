import pytest
import torch

from hf_limber import ClipConfig, ClipModel, ClipTextConfig, ClipVisionConfig, list_presets

# Published parameter counts (millions) of the CLIP paper's models, as profiled by open_clip.
PUBLISHED_PARAMETERS = {
    "RN50": 102.0, "RN101": 119.7, "RN50x4": 178.3, "RN50x16": 291.0, "RN50x64": 623.3,
    "ViT-B/32": 151.3, "ViT-B/16": 149.6, "ViT-L/14": 427.6, "ViT-L/14@336": 427.9,
}


@pytest.mark.parametrize("name", PUBLISHED_PARAMETERS)
def test_preset_parameter_count_matches_paper(name):
    with torch.device("meta"):
        model = ClipModel(ClipConfig.from_preset(name))
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(count - PUBLISHED_PARAMETERS[name]) / PUBLISHED_PARAMETERS[name] < 0.005


def test_list_presets_has_every_paper_model_and_small_ones():
    presets = list_presets()
    assert set(PUBLISHED_PARAMETERS) <= set(presets)
    assert {"tiny-vit", "tiny-resnet", "small-vit", "small-resnet"} <= set(presets)


def test_preset_geometry_follows_the_paper():
    rn = ClipConfig.from_preset("RN50x16").vision_config
    assert (rn.image_size, rn.grid_size, rn.feature_size, rn.num_attention_heads) == (384, 12, 3072, 48)
    vit = ClipConfig.from_preset("ViT-L/14@336").vision_config
    assert (vit.grid_size, vit.num_feature_tokens, vit.num_attention_heads) == (24, 577, 16)
    assert ClipConfig.from_preset("ViT-B/32").text_config.num_attention_heads == 8


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match="Unknown preset 'ViT-H/14'.*RN50"):
        ClipConfig.from_preset("ViT-H/14")


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: ClipTextConfig(hidden_size=100, num_attention_heads=8), "hidden_size"),
        (lambda: ClipTextConfig(hidden_act="relu"), "hidden_act"),
        (lambda: ClipTextConfig(vocab_size=100, eos_token_id=49407), "eos_token_id"),
        (lambda: ClipVisionConfig(tower="vit", image_size=225, patch_size=32), "image_size"),
        (lambda: ClipVisionConfig(tower="resnet", image_size=200, hidden_size=64, num_hidden_layers=[3, 4, 6, 3]), "image_size"),
        (lambda: ClipVisionConfig(tower="resnet", hidden_size=64, num_hidden_layers=[3, 4, 6]), "num_hidden_layers"),
        (lambda: ClipVisionConfig(tower="convnext"), "tower"),
        (lambda: ClipVisionConfig(tower="vit", hidden_size=768, num_attention_heads=7), "num_attention_heads"),
        (lambda: ClipConfig(logit_scale_init_value=5.0), "logit_scale_init_value"),
        # Sizes that used to load, or crash deep inside torch (issue: safe by default, item 12).
        (lambda: ClipTextConfig(num_hidden_layers=0), "num_hidden_layers"),
        (lambda: ClipTextConfig(num_hidden_layers=-2), "num_hidden_layers"),
        (lambda: ClipTextConfig(hidden_size=-512), "hidden_size"),
        (lambda: ClipTextConfig(attention_dropout=1.5), "attention_dropout"),
        (lambda: ClipVisionConfig(tower="vit", num_hidden_layers=0), "num_hidden_layers"),
        (lambda: ClipVisionConfig(tower="vit", patch_size=0), "patch_size"),
        (lambda: ClipVisionConfig(tower="vit", patch_size="32"), "patch_size"),
        (lambda: ClipVisionConfig(tower="vit", hidden_size=-768), "hidden_size"),
        (lambda: ClipVisionConfig(tower="resnet", hidden_size=64, num_hidden_layers=[3, 0, 6, 3]), "num_hidden_layers"),
        (lambda: ClipVisionConfig(tower="vit", image_size=0), "image_size"),
        (lambda: ClipConfig(projection_dim=0), "projection_dim"),
    ],
)
def test_invalid_configs_fail_naming_the_field(make, field):
    with pytest.raises(ValueError, match=rf"\.{field}: .*\. "):
        make()


def test_projection_dim_is_shared_by_both_towers():
    config = ClipConfig(projection_dim=64, text_config={"projection_dim": 8}, vision_config={"projection_dim": 9})
    assert config.text_config.projection_dim == config.vision_config.projection_dim == 64


def test_config_round_trips_through_dict():
    config = ClipConfig.from_preset("RN50")
    again = ClipConfig.from_dict(config.to_dict())
    assert again.to_dict() == config.to_dict()
    assert again.vision_config.num_hidden_layers == [3, 4, 6, 3]
