"""The CLIP and LiMBeR classes behave as transformers 5.x models do (issue 18): output flags from the
config, tuples with return_dict=False, attentions and attn_implementation, input-embedding getters and
setters, feature outputs, torch.export / torch.compile, gradient checkpointing in any call order."""

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import random_inputs
from limber_parts import image_encoder, language_model, word_tokenizer
from PIL import Image
from transformers import CLIPConfig, CLIPModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

from hf_limber import (
    ClipConfig,
    ClipModel,
    ClipTextModel,
    ClipTextModelWithProjection,
    ClipVisionModel,
    ClipVisionModelWithProjection,
)
from hf_limber.clip import convert
from hf_limber.limber import LimberForCausalLM, LimberProcessor


def padded_inputs(config: ClipConfig) -> dict[str, torch.Tensor]:
    """Right padding (rows 1, 2), left padding (row 0) and a gap (row 1): every layout the tower accepts."""
    inputs = random_inputs(config)
    inputs["attention_mask"][0, 1:3] = 0
    inputs["attention_mask"][1, 4] = 0
    return inputs


def same_weights(model: torch.nn.Module, **from_config: str) -> torch.nn.Module:
    twin = type(model)._from_config(model.config, **from_config).eval()
    twin.load_state_dict(model.state_dict())
    return twin


# -- 1. output flags from the config, tuples with return_dict=False --------------------------------------


def test_config_output_flags_and_return_dict_false_are_honoured(tiny_config):
    inputs = random_inputs(tiny_config)
    text = {k: inputs[k] for k in ("input_ids", "attention_mask")}
    pixels = {"pixel_values": inputs["pixel_values"]}
    for model_class, config, batch in (
        (ClipModel, tiny_config, inputs), (ClipTextModel, tiny_config.text_config, text),
        (ClipTextModelWithProjection, tiny_config.text_config, text),
        (ClipVisionModel, tiny_config.vision_config, pixels),
        (ClipVisionModelWithProjection, tiny_config.vision_config, pixels),
    ):
        # A config of its own: the flags set below must not leak into the next model.
        model = model_class._from_config(copy.deepcopy(config), attn_implementation="eager").eval()
        with torch.no_grad():
            plain = model(**batch)
            model.config.output_hidden_states = True
            model.config.output_attentions = True
            asked = model(**batch)
            as_tuple = model(**batch, return_dict=False)
            model.config.return_dict = False
            config_tuple = model(**batch)
        outputs = [asked] if model_class is not ClipModel else [asked.text_model_output, asked.vision_model_output]
        for out in outputs:
            assert out.hidden_states is not None and out.attentions is not None, model_class.__name__
        if model_class is not ClipModel:
            assert plain.hidden_states is None and plain.attentions is None
        for result in (as_tuple, config_tuple):
            assert isinstance(result, tuple), model_class.__name__
            torch.testing.assert_close(result[0], asked.to_tuple()[0])


def test_hidden_states_per_tower_have_the_documented_shapes(tiny_config):
    inputs = random_inputs(tiny_config)
    model = ClipModel(tiny_config).eval()
    tiny_config.output_hidden_states = True
    with torch.no_grad():
        out = model(**inputs)
    text, vision = out.text_model_output, out.vision_model_output
    assert len(text.hidden_states) == tiny_config.text_config.num_hidden_layers + 1
    assert text.hidden_states[0].shape == text.last_hidden_state.shape
    if tiny_config.vision_config.tower == "vit":
        assert len(vision.hidden_states) == tiny_config.vision_config.num_hidden_layers + 1
        torch.testing.assert_close(vision.hidden_states[-1], vision.last_hidden_state)
    else:  # the stem, then four stages, as maps; the last flattened is the grid
        assert len(vision.hidden_states) == 5 and all(state.ndim == 4 for state in vision.hidden_states)
        torch.testing.assert_close(vision.hidden_states[-1].flatten(2).transpose(1, 2), vision.last_hidden_state)


# -- 2. set_input_embeddings: resize_token_embeddings ---------------------------------------------------------


@pytest.mark.parametrize("model_class", [ClipModel, ClipTextModel, ClipTextModelWithProjection])
def test_resize_token_embeddings_adds_usable_tokens(model_class):
    config = ClipConfig.from_preset("tiny-vit")
    model = model_class._from_config(config if model_class is ClipModel else config.text_config).eval()
    vocab = model.get_input_embeddings().num_embeddings
    model.resize_token_embeddings(vocab + 3)
    assert model.get_input_embeddings().num_embeddings == vocab + 3
    assert model.get_input_embeddings() is model.text_model.token_embedding
    ids = random_inputs(config)["input_ids"]
    ids[:, 1] = vocab + 2  # a new token
    with torch.no_grad():
        out = model.get_text_features(ids) if model_class is ClipModel else model(ids)
    assert torch.isfinite(out.to_tuple()[0]).all()


# -- 3. get_input_embeddings on the vision towers: enable_input_require_grads ------------------------------


@pytest.mark.parametrize("model_class", [ClipVisionModel, ClipVisionModelWithProjection])
def test_vision_input_embeddings_let_reentrant_checkpointing_train_frozen_towers(tiny_config, model_class):
    torch.manual_seed(0)
    model = model_class(tiny_config.vision_config)
    tower = model.vision_model
    embedding = model.get_input_embeddings()
    assert embedding is (tower.patch_embedding if tiny_config.vision_config.tower == "vit" else tower.conv1)
    # PEFT's situation: everything frozen but an adapter inside a checkpointed block.
    model.requires_grad_(False)
    inner = tower.encoder.layers[0].mlp.fc1 if tiny_config.vision_config.tower == "vit" else tower.layer1[0].downsample.conv
    inner.weight.requires_grad_(True)
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": True})
    model.train()
    model.enable_input_require_grads()
    out = model(random_inputs(tiny_config)["pixel_values"])
    out.to_tuple()[0].sum().backward()
    assert inner.weight.grad is not None and inner.weight.grad.abs().sum() > 0


# -- 4. get_*_features return BaseModelOutputWithPooling ----------------------------------------------------


def test_feature_getters_return_outputs_whose_pooler_output_is_the_projected_embedding(tiny_config):
    model = ClipModel(tiny_config).eval()
    inputs = random_inputs(tiny_config)
    with torch.no_grad():
        text = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
        image = model.get_image_features(inputs["pixel_values"])
        out = model(**inputs)
        tower_text = model.text_model(inputs["input_ids"], inputs["attention_mask"])
        text_tuple = model.get_text_features(inputs["input_ids"], inputs["attention_mask"], return_dict=False)
    assert isinstance(text, BaseModelOutputWithPooling) and isinstance(image, BaseModelOutputWithPooling)
    torch.testing.assert_close(text.pooler_output, model.text_projection(tower_text.pooler_output))
    torch.testing.assert_close(text.last_hidden_state, tower_text.last_hidden_state)
    torch.testing.assert_close(F.normalize(text.pooler_output, dim=-1), out.text_embeds)
    torch.testing.assert_close(F.normalize(image.pooler_output, dim=-1), out.image_embeds)
    assert image.pooler_output.shape == (3, tiny_config.projection_dim)
    torch.testing.assert_close(text_tuple[1], text.pooler_output)


# -- 5. torch.export and torch.compile; padding keeps the fused causal kernel -----------------------------


def test_torch_export_of_clip_equals_eager(tiny_config):
    model = ClipModel(tiny_config).eval()
    inputs = padded_inputs(tiny_config)
    exported = torch.export.export(model, (), kwargs=inputs, strict=False).module()
    with torch.no_grad():
        expected = model(**inputs)
        got = exported(**inputs)
    torch.testing.assert_close(got.logits_per_image, expected.logits_per_image)


@pytest.mark.slow
def test_torch_compile_fullgraph_of_clip_equals_eager(tiny_config):
    model = ClipModel(tiny_config).eval()
    inputs = padded_inputs(tiny_config)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, fullgraph=True)(**inputs).logits_per_image,
                                   model(**inputs).logits_per_image)


@pytest.mark.slow
def test_compiled_training_steps_have_no_graph_break_and_the_eager_losses(tiny_config):
    """Issue 20: forward and contrastive loss as one inductor graph (fullgraph=True raises on any break),
    backward and AdamW after it; five steps give eager's losses. In float64: in float32 inductor's fused
    kernels sum in another order, and the ResNet's losses drift from eager's by 1.6e-5 by the second step."""
    inputs = {name: value.double() if value.is_floating_point() else value
              for name, value in padded_inputs(tiny_config).items()}

    def losses(compiled: bool) -> list[float]:
        torch.manual_seed(0)
        model = ClipModel(tiny_config).double().train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        forward = torch.compile(model, fullgraph=True) if compiled else model
        out = []
        for _ in range(5):
            loss = forward(**inputs, return_loss=True).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            out.append(loss.item())
        return out

    eager = losses(compiled=False)
    assert eager[-1] < eager[0]  # it trains
    torch.testing.assert_close(losses(compiled=True), eager, rtol=0, atol=1e-10)


def test_any_padding_runs_the_fused_causal_kernel_and_matches_transformers_masked_attention(monkeypatch):
    torch.manual_seed(0)
    reference = CLIPModel(CLIPConfig(
        projection_dim=16,
        text_config=dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, eos_token_id=299),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16),
    )).eval()
    ours = convert.from_transformers(reference).eval()
    ids = torch.randint(1, 298, (3, 10))
    ids[:, -1] = ids[0, 5] = 299
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0  # right padding
    mask[1, :3] = 0  # left padding
    mask[2, 4:6] = 0  # a gap
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention",
                        lambda *args, **kwargs: calls.append(kwargs) or sdpa(*args, **kwargs))
    with torch.no_grad():
        mine = ours.text_model(ids, mask)
        theirs = reference.text_model(input_ids=ids, attention_mask=mask)
    assert calls and all(call["attn_mask"] is None and call["is_causal"] for call in calls[:2])
    real = mask.bool()
    torch.testing.assert_close(mine.last_hidden_state[real], theirs.last_hidden_state[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(mine.pooler_output, theirs.pooler_output, atol=1e-5, rtol=0)


def tiny_limber() -> tuple[LimberForCausalLM, dict[str, torch.Tensor]]:
    model = LimberForCausalLM.from_parts(image_encoder("clip-vit"), language_model("llama"))
    processor = LimberProcessor.for_model(model, word_tokenizer())
    pictures = [Image.new("RGB", (48, 48), colour) for colour in ((200, 30, 30), (30, 30, 200))]
    return model, dict(processor(images=pictures, captions=["a red cat", "two dogs"]))


def test_torch_export_of_limber_equals_eager_and_keeps_the_token_count_check():
    model, batch = tiny_limber()
    model.eval()
    exported = torch.export.export(model, (), kwargs=batch, strict=False).module()
    with torch.no_grad():
        expected = model(**batch)
        got = exported(**batch)
    torch.testing.assert_close(got.logits, expected.logits)
    torch.testing.assert_close(got.loss, expected.loss)
    wrong = {**batch, "input_ids": batch["input_ids"].masked_fill(batch["input_ids"] == model.config.image_token_id, 5)}
    with pytest.raises(ValueError, match="image tokens but 2 image"):
        model(**wrong)
    with pytest.raises(RuntimeError):  # the exported program keeps the check as a runtime assertion
        exported(**wrong)


@pytest.mark.slow
def test_torch_compile_fullgraph_of_limber_equals_eager():
    model, batch = tiny_limber()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, fullgraph=True)(**batch).logits, model(**batch).logits)


# -- 6. LiMBeR gradient checkpointing, whichever call comes first -------------------------------------------


def checkpointed_calls(model: LimberForCausalLM, batch: dict[str, torch.Tensor]) -> int:
    """How many LM layers ran through the checkpoint function in one training forward."""
    count = 0
    for layer in model.language_model.modules():
        if hasattr(layer, "_gradient_checkpointing_func"):
            checkpoint = layer._gradient_checkpointing_func

            def counted(*args, _checkpoint=checkpoint, **kwargs):
                nonlocal count
                count += 1
                return _checkpoint(*args, **kwargs)

            layer._gradient_checkpointing_func = counted
    model(**batch).loss.backward()
    return count


@pytest.mark.parametrize("train_first", [True, False])
def test_limber_checkpoints_the_lm_layers_whether_train_or_checkpointing_comes_first(train_first):
    model, batch = tiny_limber()
    if train_first:
        model.train()
        model.activation_checkpointing_enable()
    else:
        model.activation_checkpointing_enable()
        model.train()
    layers = model.language_model.config.num_hidden_layers
    assert checkpointed_calls(model, batch) == layers
    assert not any(m.training for m in model.language_model.modules() if isinstance(m, torch.nn.Dropout))
    model.activation_checkpointing_disable()
    assert not any(m.training for m in model.language_model.modules())
    assert checkpointed_calls(model, batch) == 0


# -- output_attentions and attn_implementation on both towers ------------------------------------------------


def test_eager_and_sdpa_give_equal_outputs_and_eager_returns_attentions(tiny_config):
    torch.manual_seed(0)
    sdpa = ClipModel._from_config(tiny_config, attn_implementation="sdpa").eval()
    eager = same_weights(sdpa, attn_implementation="eager")
    assert eager.config.text_config._attn_implementation == "eager"
    inputs = padded_inputs(tiny_config)
    with torch.no_grad():
        fast = sdpa(**inputs, output_hidden_states=True)
        written_out = eager(**inputs, output_hidden_states=True, output_attentions=True)
    torch.testing.assert_close(written_out.logits_per_image, fast.logits_per_image, atol=1e-5, rtol=1e-5)
    for ours, theirs in zip(written_out.text_model_output.hidden_states, fast.text_model_output.hidden_states):
        real = inputs["attention_mask"].bool()
        torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=1e-5)
    text_attentions = written_out.text_model_output.attentions
    assert len(text_attentions) == tiny_config.text_config.num_hidden_layers
    batch, length = inputs["input_ids"].shape
    assert text_attentions[0].shape == (batch, tiny_config.text_config.num_attention_heads, length, length)
    # A real token never attends to padding or to the future.
    real = inputs["attention_mask"].bool()
    allowed = torch.ones(length, length, dtype=torch.bool).tril() & real[:, None, None, :]
    for weights in text_attentions:
        assert weights[real[:, None, :, None].expand_as(weights) & ~allowed.expand_as(weights)].abs().max() == 0
        torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
    vision_attentions = written_out.vision_model_output.attentions
    vision = tiny_config.vision_config
    if vision.tower == "vit":
        tokens = vision.num_feature_tokens
        assert len(vision_attentions) == vision.num_hidden_layers
        assert vision_attentions[0].shape == (batch, vision.num_attention_heads, tokens, tokens)
    else:  # the attention pool: its one query over the mean and every grid cell
        assert len(vision_attentions) == 1
        assert vision_attentions[0].shape == (batch, vision.num_attention_heads, 1, 1 + vision.grid_size**2)
    # Asking an sdpa model for attentions computes them (eager math for that call), equal to eager's.
    with torch.no_grad():
        asked = sdpa(**inputs, output_attentions=True)
    torch.testing.assert_close(asked.vision_model_output.attentions[0], vision_attentions[0])
    sdpa.set_attn_implementation("eager")
    assert sdpa.config.vision_config._attn_implementation == "eager"


# -- interpolate_pos_encoding equals transformers' -------------------------------------------------------------


def test_vit_interpolate_pos_encoding_equals_transformers_clip_vision_model_token_by_token():
    torch.manual_seed(0)
    reference = CLIPModel(CLIPConfig(
        projection_dim=16,
        text_config=dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, eos_token_id=299),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=48, patch_size=16),
        attn_implementation="eager",
    )).eval()
    with torch.no_grad():  # position embeddings with structure, so that resizing them matters
        reference.vision_model.embeddings.position_embedding.weight.normal_()
    ours = convert.from_transformers(reference).eval()
    ours.set_attn_implementation("eager")
    for height, width in ((96, 96), (64, 112), (32, 80)):
        pixels = torch.randn(2, 3, height, width)
        with torch.no_grad():
            theirs = reference.vision_model(pixel_values=pixels, interpolate_pos_encoding=True,
                                            output_hidden_states=True, output_attentions=True)
            mine = ClipVisionModel._from_config(ours.config.vision_config)
            mine.vision_model = ours.vision_model
            mine = mine(pixels, interpolate_pos_encoding=True, output_hidden_states=True, output_attentions=True)
        torch.testing.assert_close(mine.last_hidden_state, theirs.last_hidden_state, atol=1e-5, rtol=0)
        torch.testing.assert_close(mine.pooler_output, theirs.pooler_output, atol=1e-5, rtol=0)
        for state, reference_state in zip(mine.hidden_states, theirs.hidden_states, strict=True):
            torch.testing.assert_close(state, reference_state, atol=1e-5, rtol=0)
        for weights, reference_weights in zip(mine.attentions, theirs.attentions, strict=True):
            torch.testing.assert_close(weights, reference_weights, atol=1e-5, rtol=0)
