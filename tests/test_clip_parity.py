"""Numbers match the public implementations: transformers' CLIPModel and open_clip, random weights."""

import pytest
import torch
from open_clip.model import CLIP as OpenClipCLIP
from transformers import CLIPConfig, CLIPModel

from hf_limber.clip import convert

ATOL = 1e-5


def randomise_(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every tensor a random value of its own scale, BatchNorm statistics included.

    Fresh initialisations hide mistakes (zeroed gains, identical biases); random values don't.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("logit_scale"):
                tensor.fill_(2.0)
            else:
                scale = tensor.std().item() if tensor.numel() > 1 and tensor.std() > 0 else 0.1
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * max(scale, 0.05))


def text_ids(batch: int, length: int, vocab: int, seed: int = 1) -> torch.Tensor:
    """Start token, random words, end-of-text (the largest id), zero padding as open_clip pads."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab - 2, (batch, length), generator=generator)
    ids[:, 0] = vocab - 2
    for row in range(batch):
        end = length - 1 - 3 * row
        ids[row, end], ids[row, end + 1 :] = vocab - 1, 0
    return ids


def assert_embeddings_match(reference, ours, pixels, ids, attention_mask=None):
    with torch.no_grad():
        if isinstance(reference, CLIPModel):
            out = reference(input_ids=ids, pixel_values=pixels, attention_mask=attention_mask)
            ref_image, ref_text, ref_logits = out.image_embeds, out.text_embeds, out.logits_per_image
            ref_image_raw = reference.get_image_features(pixel_values=pixels)
            ref_text_raw = reference.get_text_features(input_ids=ids, attention_mask=attention_mask)
            if not torch.is_tensor(ref_image_raw):
                ref_image_raw, ref_text_raw = ref_image_raw.pooler_output, ref_text_raw.pooler_output
        else:
            ref_image_raw, ref_text_raw = reference.encode_image(pixels), reference.encode_text(ids)
            ref_image = torch.nn.functional.normalize(ref_image_raw, dim=-1)
            ref_text = torch.nn.functional.normalize(ref_text_raw, dim=-1)
            ref_logits = reference.logit_scale.exp() * ref_image @ ref_text.t()
        mine = ours(input_ids=ids, pixel_values=pixels, attention_mask=attention_mask)
        torch.testing.assert_close(ours.get_image_features(pixels).pooler_output, ref_image_raw, atol=ATOL, rtol=0)
        torch.testing.assert_close(ours.get_text_features(ids, attention_mask).pooler_output, ref_text_raw, atol=ATOL, rtol=0)
        torch.testing.assert_close(mine.image_embeds, ref_image, atol=ATOL, rtol=0)
        torch.testing.assert_close(mine.text_embeds, ref_text, atol=ATOL, rtol=0)
        torch.testing.assert_close(mine.logits_per_image, ref_logits, atol=ATOL * 10, rtol=0)
    return (mine.logits_per_image - ref_logits).abs().max().item()


@pytest.mark.parametrize("act", ["quick_gelu", "gelu"])
def test_matches_transformers_clip(act):
    torch.manual_seed(0)
    reference = CLIPModel(CLIPConfig(
        projection_dim=48,
        text_config=dict(vocab_size=1000, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=24, hidden_act=act,
                         bos_token_id=998, eos_token_id=999, pad_token_id=0),
        vision_config=dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                           image_size=48, patch_size=16, hidden_act=act),
    )).eval()
    randomise_(reference)
    ours = convert.from_transformers(reference)
    ids = text_ids(3, 24, 1000)
    mask = (torch.arange(24) <= (ids == 999).int().argmax(-1, keepdim=True)).long()
    pixels = torch.randn(3, 3, 48, 48)
    assert_embeddings_match(reference, ours, pixels, ids, mask)


def test_matches_transformers_legacy_eos_pooling():
    """transformers pools at the largest id when eos_token_id == 2 (its legacy configs)."""
    reference = CLIPModel(CLIPConfig(
        projection_dim=32,
        text_config=dict(vocab_size=500, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, eos_token_id=2),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16),
    )).eval()
    randomise_(reference)
    ours = convert.from_transformers(reference)
    assert ours.config.text_config.eos_token_id == 499
    assert_embeddings_match(reference, ours, torch.randn(2, 3, 32, 32), text_ids(2, 16, 500))


OPEN_CLIP_SMALL = {
    "resnet": dict(embed_dim=48, vision_cfg=dict(image_size=64, layers=[2, 1, 2, 1], width=16, head_width=64),
                   text_cfg=dict(context_length=20, vocab_size=600, width=64, heads=4, layers=2)),
    "vit": dict(embed_dim=48, vision_cfg=dict(image_size=48, layers=2, width=64, patch_size=16, head_width=16),
                text_cfg=dict(context_length=20, vocab_size=600, width=64, heads=4, layers=2)),
}


@pytest.mark.parametrize("tower", ["resnet", "vit"])
@pytest.mark.parametrize("quick_gelu", [True, False])
def test_matches_open_clip(tower, quick_gelu):
    torch.manual_seed(0)
    reference = OpenClipCLIP(quick_gelu=quick_gelu, **OPEN_CLIP_SMALL[tower]).eval()
    randomise_(reference)
    ours = convert.from_open_clip(reference)
    assert ours.config.vision_config.tower == tower
    size = OPEN_CLIP_SMALL[tower]["vision_cfg"]["image_size"]
    assert_embeddings_match(reference, ours, torch.randn(3, 3, size, size), text_ids(3, 20, 600))


def test_openai_state_dict_with_jit_metadata_and_missing_counters():
    reference = OpenClipCLIP(quick_gelu=True, **OPEN_CLIP_SMALL["resnet"]).eval()
    randomise_(reference)
    state = {k: v for k, v in reference.state_dict().items() if not k.endswith("num_batches_tracked")}
    state.update(input_resolution=torch.tensor(64), context_length=torch.tensor(20), vocab_size=torch.tensor(600))
    ours = convert.from_openai_state_dict(state, text_heads=4)
    assert_embeddings_match(reference, ours, torch.randn(2, 3, 64, 64), text_ids(2, 20, 600))


def test_conversion_rejects_weights_that_do_not_fit():
    state = OpenClipCLIP(**OPEN_CLIP_SMALL["vit"]).state_dict()
    state["ln_final.weight"] = torch.ones(32)
    with pytest.raises((ValueError, RuntimeError)):
        convert.from_openai_state_dict(state)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["RN50", "ViT-B-32"])
def test_full_size_matches_open_clip(name):
    import open_clip

    reference = open_clip.create_model(name, pretrained=None, force_quick_gelu=True).eval()
    randomise_(reference)
    ours = convert.from_open_clip(reference)
    size = ours.config.vision_config.image_size
    assert_embeddings_match(reference, ours, torch.randn(1, 3, size, size), text_ids(1, 77, 49408))


@pytest.mark.slow
def test_full_size_vit_b32_matches_transformers():
    from hf_limber import ClipConfig

    preset = ClipConfig.from_preset("ViT-B/32")
    text, vision = preset.text_config, preset.vision_config
    reference = CLIPModel(CLIPConfig(
        projection_dim=512,
        text_config=dict(hidden_size=text.hidden_size, intermediate_size=text.intermediate_size,
                         num_attention_heads=text.num_attention_heads, eos_token_id=49407),
        vision_config=dict(hidden_size=vision.hidden_size, intermediate_size=vision.intermediate_size,
                           num_attention_heads=vision.num_attention_heads, patch_size=32, image_size=224),
    )).eval()
    randomise_(reference)
    ours = convert.from_transformers(reference)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    assert_embeddings_match(reference, ours, torch.randn(1, 3, 224, 224), text_ids(1, 77, 49408))


def test_other_resolutions_match_transformers_interpolate_pos_encoding():
    torch.manual_seed(0)
    reference = CLIPModel(CLIPConfig(
        projection_dim=32,
        text_config=dict(vocab_size=500, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, eos_token_id=499),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=48, patch_size=16),
    )).eval()
    randomise_(reference)
    ours = convert.from_transformers(reference)
    for height, width in ((96, 96), (64, 112), (48, 48)):
        pixels = torch.randn(2, 3, height, width)
        with torch.no_grad():
            theirs = reference.get_image_features(pixels, interpolate_pos_encoding=True)
            theirs = getattr(theirs, "pooler_output", theirs)
            torch.testing.assert_close(ours.get_image_features(pixels, interpolate_pos_encoding=True).pooler_output, theirs,
                                       atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        ours.get_image_features(torch.randn(1, 3, 96, 96))
    with pytest.raises(ValueError, match="multiples of 16"):
        ours.get_image_features(torch.randn(1, 3, 100, 96), interpolate_pos_encoding=True)


def test_a_resnet_tower_at_another_resolution_keeps_its_grid_and_resizes_its_pool_positions():
    from hf_limber import ClipConfig, ClipVisionModel

    torch.manual_seed(0)
    tower = ClipVisionModel(ClipConfig.from_preset("tiny-resnet").vision_config).eval()
    size = tower.config.image_size
    pixels = torch.randn(1, 3, size, size)
    with torch.no_grad():
        native = tower(pixels)
        same = tower(pixels, interpolate_pos_encoding=True)
        large = tower(torch.nn.functional.interpolate(pixels, scale_factor=2), interpolate_pos_encoding=True)
    torch.testing.assert_close(same.pooler_output, native.pooler_output)  # nothing to resize at its own size
    assert large.last_hidden_state.shape[1] == 4 * native.last_hidden_state.shape[1]  # the grid doubles a side
    assert large.pooler_output.shape == native.pooler_output.shape
