import math
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import random_inputs
from transformers import AutoConfig, AutoModel, AutoModelForZeroShotImageClassification

from hf_limber import (
    ClipConfig,
    ClipModel,
    ClipTextModel,
    ClipTextModelWithProjection,
    ClipVisionModel,
    ClipVisionModelWithProjection,
    ContrastiveLoss,
)
from hf_limber.clip.modeling_resnet import Bottleneck


def test_forward_outputs_and_loss(tiny_config):
    torch.manual_seed(0)
    model = ClipModel(tiny_config).eval()
    inputs = random_inputs(tiny_config)
    out = model(**inputs, return_loss=True)
    assert out.logits_per_image.shape == (3, 3)
    torch.testing.assert_close(out.logits_per_text, out.logits_per_image.t())
    torch.testing.assert_close(out.image_embeds.norm(dim=-1), torch.ones(3))
    scale = math.exp(tiny_config.logit_scale_init_value)
    torch.testing.assert_close(out.logits_per_image, scale * out.image_embeds @ out.text_embeds.t())
    labels = torch.arange(3)
    expected = (torch.nn.functional.cross_entropy(out.logits_per_image, labels)
                + torch.nn.functional.cross_entropy(out.logits_per_text, labels)) / 2
    torch.testing.assert_close(out.loss, expected)
    assert model(**inputs).loss is None
    # Features as transformers defines them: projected, not normalised.
    features = model.get_image_features(inputs["pixel_values"]).pooler_output
    torch.testing.assert_close(torch.nn.functional.normalize(features, dim=-1), out.image_embeds)


def test_vision_tower_exposes_grid_and_pooled_features(tiny_config):
    vision = tiny_config.vision_config
    model = ClipVisionModel(vision).eval()
    pixels = random_inputs(tiny_config)["pixel_values"]
    out = model(pixels, output_hidden_states=True)
    assert out.last_hidden_state.shape == (3, vision.num_feature_tokens, vision.feature_size)
    if vision.tower == "resnet":
        # The grid before attention pooling, h*w tokens, and the pooled vector already projected.
        assert out.last_hidden_state.shape[1] == (vision.image_size // 32) ** 2
        assert out.pooler_output.shape == (3, tiny_config.projection_dim)
        assert len(out.hidden_states) == 5
    else:
        assert out.pooler_output.shape == (3, vision.hidden_size)
        assert len(out.hidden_states) == vision.num_hidden_layers + 1
    with_projection = ClipVisionModelWithProjection(vision).eval()
    assert with_projection(pixels).image_embeds.shape == (3, tiny_config.projection_dim)


def test_text_models(tiny_config):
    inputs = random_inputs(tiny_config)
    text = ClipTextModel(tiny_config.text_config)
    out = text(inputs["input_ids"], inputs["attention_mask"])
    assert out.last_hidden_state.shape == (3, 12, tiny_config.text_config.hidden_size)
    projected = ClipTextModelWithProjection(tiny_config.text_config)(inputs["input_ids"])
    assert projected.text_embeds.shape == (3, tiny_config.projection_dim)


def test_pooling_at_end_of_text_is_independent_of_padding():
    config = ClipConfig.from_preset("tiny-vit")
    model = ClipModel(config).eval()
    text = config.text_config
    short = torch.tensor([[text.bos_token_id, 5, 6, text.eos_token_id]])
    padded = torch.tensor([[text.bos_token_id, 5, 6, text.eos_token_id] + [text.pad_token_id] * 6,
                           [text.bos_token_id] + list(range(10, 18)) + [text.eos_token_id]])
    mask = torch.tensor([[1] * 4 + [0] * 6, [1] * 10])
    with torch.no_grad():
        alone = model.get_text_features(short).pooler_output
        batched = model.get_text_features(padded, mask).pooler_output
        unmasked = model.get_text_features(padded).pooler_output
    torch.testing.assert_close(batched[0], alone[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(unmasked[0], alone[0], atol=1e-6, rtol=1e-5)
    # Left padding with the end-of-text id as pad: pooling still finds the real end token, and the
    # padded keys stay hidden, so the result is finite.
    left = torch.tensor([[text.pad_token_id] * 2 + [text.bos_token_id, 5, 6, text.eos_token_id]])
    left_mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
    assert model.text_model.end_of_text_positions(left, left_mask).tolist() == [5]
    assert torch.isfinite(model.get_text_features(left, left_mask).pooler_output).all()


def test_truncated_text_without_end_token_pools_at_last_real_token():
    config = ClipConfig.from_preset("tiny-vit")
    model = ClipModel(config).eval()
    ids = torch.randint(0, 1000, (1, 8))
    tower = model.text_model
    assert tower.end_of_text_positions(ids, None).item() == 7
    assert tower.end_of_text_positions(ids, torch.tensor([[1] * 5 + [0] * 3])).item() == 4


def test_overlong_text_and_wrong_pixels_fail_clearly():
    config = ClipConfig.from_preset("tiny-vit")
    model = ClipModel(config)
    with pytest.raises(ValueError, match="context is 32"):
        model.get_text_features(torch.zeros(1, 40, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expects \(batch, 3, 32, 32\)"):
        model.get_image_features(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="needs both"):
        model(input_ids=torch.zeros(1, 4, dtype=torch.long))


def test_unequal_text_and_image_counts_with_a_loss_fail_clearly():
    model = ClipModel(ClipConfig.from_preset("tiny-vit"))
    texts, images = random_inputs(model.config, batch=3), random_inputs(model.config, batch=2)
    inputs = {"input_ids": texts["input_ids"], "attention_mask": texts["attention_mask"],
              "pixel_values": images["pixel_values"]}
    with pytest.raises(ValueError, match="3 texts and 2 images"):
        model(**inputs, return_loss=True)
    assert model(**inputs).logits_per_image.shape == (2, 3)  # without a loss, any counts can be scored


def test_initialisation_follows_the_paper():
    config = ClipConfig.from_preset("tiny-resnet")
    model = ClipModel(config)
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert blocks and all(torch.all(b.bn3.weight == 0) for b in blocks)
    width = config.text_config.hidden_size
    # Large matrices make the sample standard deviations tight.
    assert model.text_model.position_embedding.std().item() == pytest.approx(0.01, rel=0.1)
    assert model.text_model.token_embedding.weight.std().item() == pytest.approx(0.02, rel=0.05)
    qkv = model.text_model.encoder.layers[0].attn.qkv.weight
    assert qkv.std().item() == pytest.approx(width**-0.5, rel=0.1)
    out_proj = model.text_model.encoder.layers[0].attn.out_proj.weight
    assert out_proj.std().item() == pytest.approx(width**-0.5 * (2 * 2) ** -0.5, rel=0.1)
    pool = model.vision_model.attnpool
    assert pool.q_proj.weight.std().item() == pytest.approx(pool.c_proj.in_features**-0.5, rel=0.1)


def test_the_cap_is_one_in_place_clamp_of_the_log_value():
    model = ClipModel(ClipConfig.from_preset("tiny-vit"))
    with torch.no_grad():
        model.logit_scale.fill_(7.0)
    # forward uses exp(logit_scale) as it is (as transformers' CLIPModel); training clamps the parameter.
    assert model.logit_scale_multiplier().item() == pytest.approx(math.exp(7.0))
    model.clamp_logit_scale_()
    assert model.logit_scale.item() == pytest.approx(math.log(100))
    assert model.logit_scale_multiplier().item() == pytest.approx(100.0)
    with pytest.warns(FutureWarning, match="logit_scale_multiplier"):
        assert model.temperature().item() == pytest.approx(100.0)  # the deprecated name
    out = model(**random_inputs(model.config))
    assert out.logits_per_image.abs().max().item() <= 100.0 + 1e-4
    assert out.logit_scale_multiplier.item() == pytest.approx(100.0)
    with pytest.warns(FutureWarning, match="logit_scale_multiplier"):
        assert out.logit_scale is out.logit_scale_multiplier  # the deprecated field name
    # At the cap the parameter still gets its gradient (a clamp inside forward would cut it).
    ContrastiveLoss("global")(out.image_embeds, out.text_embeds, out.logit_scale_multiplier).backward()
    assert model.logit_scale.grad.abs().item() > 0
    with torch.no_grad():
        model.logit_scale.fill_(-1.0)
    model.clamp_logit_scale_()
    assert model.logit_scale.item() == 0.0


def test_the_cap_is_named_as_a_multiplier_and_old_configs_still_load(tmp_path):
    config = ClipConfig.from_preset("tiny-vit", max_logit_scale_multiplier=50.0)
    assert "max_logit_scale_multiplier" in config.to_dict() and "max_logit_scale" not in config.to_dict()
    saved = config.to_dict() | {"max_logit_scale": 30.0}  # a config.json written before the rename
    del saved["max_logit_scale_multiplier"]
    old = ClipConfig.from_dict(saved)
    assert old.max_logit_scale_multiplier == 30.0 and old.max_logit_scale == 30.0


def test_gradient_checkpointing_gives_the_same_gradients(tiny_config):
    inputs = random_inputs(tiny_config)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = ClipModel(tiny_config).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert all(b.gradient_checkpointing for b in model.modules() if hasattr(b, "_gradient_checkpointing_func"))
        model(**inputs, return_loss=True).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-4, msg=name)
    if tiny_config.vision_config.tower == "resnet":
        assert any(name.startswith("vision_model.layer1") for name in grads[0])


def test_save_and_load_round_trip_is_exact(tiny_config, tmp_path):
    model = ClipModel(tiny_config).eval()
    with torch.no_grad():  # make BatchNorm statistics non-trivial so they must be saved
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is ClipModel
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    inputs = random_inputs(tiny_config)
    assert torch.equal(model(**inputs).logits_per_image, loaded(**inputs).logits_per_image)
    assert type(AutoModelForZeroShotImageClassification.from_pretrained(tmp_path)) is ClipModel
    assert type(AutoConfig.from_pretrained(tmp_path)) is ClipConfig


def test_remote_code_loads_without_hf_limber(tiny_config, tmp_path, clip_tokenizer):
    from hf_limber import ClipProcessor

    model = ClipModel(tiny_config).eval()
    processor = ClipProcessor.for_config(tiny_config, clip_tokenizer)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    inputs = random_inputs(tiny_config)
    torch.save(inputs, tmp_path / "inputs.pt")
    with torch.no_grad():
        expected = model(**inputs).logits_per_image
    script = textwrap.dedent(f"""
        import sys
        sys.modules["hf_limber"] = None  # any import of hf_limber now fails
        import torch
        from transformers import AutoModel, AutoProcessor
        model = AutoModel.from_pretrained({str(tmp_path)!r}, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        assert "hf_limber" not in type(model).__module__, type(model).__module__
        inputs = torch.load({str(tmp_path / "inputs.pt")!r})
        with torch.no_grad():
            torch.save(model(**inputs).logits_per_image, {str(tmp_path / "out.pt")!r})
        batch = processor(text=["a cat"], return_tensors="pt")
        print(type(processor).__name__, batch["input_ids"].tolist())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ClipProcessor [[49406, 320, 2368, 49407]]" in result.stdout
    # The subprocess may use another thread count: equal up to float summation order.
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected, rtol=0, atol=1e-5)
