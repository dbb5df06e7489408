import pytest
import torch
from limber_parts import image_encoder, language_model, word_tokenizer
from PIL import Image

from hf_limber.limber import LimberConfig, LimberForCausalLM, LimberProcessor

ENCODERS = {
    # kind: (features, k, feature width) the model must derive by itself
    "clip-resnet": ("tokens", 4, 512),
    "clip-vit": ("tokens", 16, 64),
    "hf-clip": ("tokens", 16, 32),
    "beit": ("tokens", 16, 32),
    "vit": ("tokens", 16, 32),
    "timm-nfresnet": ("pooled", 3, 2048),
}


def build(encoder_kind: str, lm_kind: str = "llama", **options) -> LimberForCausalLM:
    features, k, _ = ENCODERS[encoder_kind]
    options.setdefault("features", features)
    if features == "pooled":
        options.setdefault("num_pooled_tokens", k)
    return LimberForCausalLM.from_parts(image_encoder(encoder_kind), language_model(lm_kind), **options)


def images(n: int, size: int = 48) -> list[Image.Image]:
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]
    return [Image.new("RGB", (size, size + 8 * i), colours[i % 4]) for i in range(n)]


@pytest.mark.parametrize("encoder_kind", ENCODERS)
@pytest.mark.parametrize("lm_kind", ["llama", "gpt2"])
def test_shapes_are_derived_from_the_parts(encoder_kind, lm_kind):
    model = build(encoder_kind, lm_kind)
    features, k, width = ENCODERS[encoder_kind]
    assert model.config.num_image_tokens == k
    assert model.projection.in_features == width
    assert model.projection.out_features == 32 * (k if features == "pooled" else 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"projection.weight", "projection.bias"}
    processor = LimberProcessor.for_model(model, word_tokenizer())
    batch = processor(images=images(2), captions=["a red cat", "two small dogs on the left"])
    assert (batch["input_ids"] == model.config.image_token_id).sum(1).tolist() == [k, k]
    out = model(**batch)
    assert out.logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(out.loss)


def test_labels_cover_caption_and_end_token_only():
    model = build("clip-vit")
    processor = LimberProcessor.for_model(model, word_tokenizer())
    batch = processor(images=images(2), captions=["a red cat", "two dogs"])
    tokenizer = processor.tokenizer
    for row, caption in enumerate(["a red cat", "two dogs"]):
        labelled = batch["labels"][row][batch["labels"][row] != -100].tolist()
        assert labelled == tokenizer(caption, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        prompt = tokenizer("A picture of", add_special_tokens=False)["input_ids"]
        ids = batch["input_ids"][row].tolist()
        assert ids[16 : 16 + len(prompt)] == prompt  # the prompt follows the k image tokens, unlabelled
    # The model refuses labels on image positions even if a caller sets them.
    labels = batch["input_ids"].clone()
    masked = model(**{**batch, "labels": labels}).loss
    manual = labels.masked_fill(labels == model.config.image_token_id, -100)
    assert torch.allclose(masked, model.language_model(inputs_embeds=model.embed(batch["input_ids"], batch["pixel_values"]),
                                                       attention_mask=batch["attention_mask"], labels=manual).loss)


def test_count_mismatch_is_a_clear_error():
    model = build("clip-resnet")
    processor = LimberProcessor.for_model(model, word_tokenizer())
    batch = processor(images=images(1), text="a cat")
    with pytest.raises(ValueError, match="image tokens but 2 image"):
        model(input_ids=batch["input_ids"], pixel_values=torch.cat([batch["pixel_values"]] * 2))
    with pytest.raises(ValueError, match="no pixel_values"):
        model(input_ids=batch["input_ids"])


def test_training_changes_only_the_projection():
    model = build("clip-resnet").train()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    before = model.projection.weight.detach().clone()
    processor = LimberProcessor.for_model(model, word_tokenizer())
    batch = processor(images=images(4), captions=["a red cat", "a green dog", "a blue car", "two apples"])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        loss = model(**batch).loss
        loss.backward()
        assert model.projection.weight.grad.abs().sum() > 0
        optimizer.step()
        optimizer.zero_grad()
    assert not model.image_encoder.training and not model.language_model.training
    for name, value in model.named_parameters():
        if name in frozen:
            assert torch.equal(value, frozen[name]), name
    for name, value in model.named_buffers():  # BatchNorm statistics of the frozen ResNet too
        assert torch.equal(value, buffers[name]), name
    assert not torch.equal(model.projection.weight, before)


def test_cached_features_give_the_same_loss():
    model = build("clip-vit").eval()
    processor = LimberProcessor.for_model(model, word_tokenizer())
    batch = processor(images=images(3), captions=["a red cat", "a dog", "two cars"])
    features = model.image_features(batch["pixel_values"])
    assert features.shape == (3, 16, 64)
    cached = processor(image_features=features, captions=["a red cat", "a dog", "two cars"])
    assert "pixel_values" not in cached
    torch.testing.assert_close(model(**cached).loss, model(**batch).loss, rtol=0, atol=0)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_gradient_checkpointing_on_the_frozen_lm_still_trains_the_projection(use_reentrant):
    grads = []
    for checkpointing in (False, True):
        model = build("hf-clip")
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
        model.train()
        model.projection_dropout.p = 0.0
        processor = LimberProcessor.for_model(model, word_tokenizer())
        batch = processor(images=images(2), captions=["a red cat", "two dogs"])
        model(**batch).loss.backward()
        grads.append(model.projection.weight.grad.clone())
    assert grads[1].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("lm_kind", ["llama", "gpt2"])
def test_batched_generation_equals_one_by_one(lm_kind):
    model = build("clip-resnet", lm_kind).eval()
    processor = LimberProcessor.for_model(model, word_tokenizer())
    pictures = images(3)
    prompts = ["A picture of", "A picture of the", "Q: what is there ? A:"]
    batch = processor(images=pictures, text=prompts)
    assert batch["attention_mask"][:, 0].tolist() != [1, 1, 1]  # left padded
    together = model.generate(**batch, max_new_tokens=6, do_sample=False)
    for index in range(3):
        single = processor(images=pictures[index], text=prompts[index])
        alone = model.generate(**single, max_new_tokens=6, do_sample=False)
        assert together[index].tolist() == alone[0].tolist()
    beams = model.generate(**batch, max_new_tokens=4, num_beams=3, do_sample=False)
    sampled = model.generate(**batch, max_new_tokens=4, do_sample=True, top_p=0.9, temperature=0.7)
    assert beams.shape[0] == 3 and sampled.shape[0] == 3
    assert all(isinstance(t, str) for t in processor.batch_decode(together))


def test_n_shot_prompt_places_k_tokens_per_image():
    model = build("clip-resnet")
    processor = LimberProcessor.for_model(model, word_tokenizer())
    text = "<image>Q: what color ? A: red\n<image>Q: what color ? A:"
    batch = processor(images=images(2), text=[text])
    assert (batch["input_ids"] == model.config.image_token_id).sum().item() == 2 * 4
    assert model.generate(**batch, max_new_tokens=3, do_sample=False).shape == (1, 3)


def test_save_and_load_adapter_and_full_forms(tmp_path):
    encoder, lm = image_encoder("clip-resnet"), language_model("llama")
    encoder.save_pretrained(tmp_path / "encoder")
    lm.save_pretrained(tmp_path / "lm")
    model = LimberForCausalLM.from_parts(tmp_path / "encoder", tmp_path / "lm").eval()
    with torch.no_grad():
        model.projection.weight.normal_()
    processor = LimberProcessor.for_model(model, word_tokenizer())
    batch = processor(images=images(2), captions=["a red cat", "two dogs"])
    expected = model(**batch).logits

    model.save_pretrained(tmp_path / "adapter")
    files = {p.name: p.stat().st_size for p in (tmp_path / "adapter").iterdir()}
    assert files["model.safetensors"] < 200_000  # the projection only
    adapter = LimberForCausalLM.from_pretrained(tmp_path / "adapter")
    assert LimberConfig.from_pretrained(tmp_path / "adapter").vision_source == str(tmp_path / "encoder")
    torch.testing.assert_close(adapter(**batch).logits, expected, rtol=0, atol=0)

    model.save_pretrained(tmp_path / "full", full=True)
    full = LimberForCausalLM.from_pretrained(tmp_path / "full")
    torch.testing.assert_close(full(**batch).logits, expected, rtol=0, atol=0)

    processor.save_pretrained(tmp_path / "adapter")
    again = LimberProcessor.from_pretrained(tmp_path / "adapter")
    assert again.num_image_tokens == 4 and again.prompt == "A picture of"
    assert torch.equal(again(images=images(2), text="a")["input_ids"], processor(images=images(2), text="a")["input_ids"])


def test_adapter_without_sources_asks_for_the_parts(tmp_path):
    model = build("vit")
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="pass image_encoder="):
        LimberForCausalLM.from_pretrained(tmp_path)
    loaded = LimberForCausalLM.from_pretrained(tmp_path, image_encoder=model.image_encoder,
                                               language_model=model.language_model)
    assert torch.equal(loaded.projection.weight, model.projection.weight)


def test_questions_zero_and_n_shot():
    from hf_limber.evaluation.questions import answer_questions, clean_answer, question_prompt

    assert question_prompt("what color ?", [("how many ?", "two")]) == "<image>Q: how many ? A: two\n<image>Q: what color ? A:"
    # A captioning prompt with a first token before its image gives questions the same start.
    assert question_prompt("what color ?", start="<s>") == "<s><image>Q: what color ? A:"
    assert clean_answer(" Two dogs!\nQ: what next") == "2 dogs"
    model = build("clip-resnet")
    processor = LimberProcessor.for_model(model, word_tokenizer())
    pictures = images(4)
    answers = answer_questions(model, processor, pictures[:2], ["what color ?", "how many ?"],
                               shots=[[(pictures[2], "what is there ?", "a cat")], [(pictures[3], "how many ?", "two")]])
    assert len(answers) == 2 and all(isinstance(a, str) and "\n" not in a for a in answers)


def test_token_pool_averages_the_grid_into_fewer_tokens():
    from hf_limber.limber.modeling_limber import pool_token_grid

    tokens = torch.arange(16.0).view(1, 16, 1)  # a 4x4 grid of one-wide tokens, row by row
    pooled = pool_token_grid(tokens, 2)
    assert pooled.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]  # means of the four 2x2 blocks
    model = LimberForCausalLM.from_parts(image_encoder("clip-resnet"), language_model("llama"), token_pool=2)
    full = LimberForCausalLM.from_parts(image_encoder("clip-resnet"), language_model("llama"))
    assert model.config.num_image_tokens * 4 == full.config.num_image_tokens
    pixels = torch.randn(2, 3, model.config.image_size, model.config.image_size)
    torch.testing.assert_close(model.image_features(pixels), pool_token_grid(full.image_features(pixels), 2))
    with pytest.raises(ValueError, match="token_pool"):
        LimberForCausalLM.from_parts(image_encoder("clip-resnet"), language_model("llama"), token_pool=3)


def test_soft_prompts_can_start_at_the_lms_embedding_norm():
    lm = language_model("llama")
    expected = lm.get_input_embeddings().weight.norm(dim=-1).mean().item()
    model = LimberForCausalLM.from_parts(image_encoder("clip-vit"), lm, soft_prompt_norm="auto",
                                         normalize_features=True, projection_dropout=0.0)
    assert model.config.soft_prompt_norm == pytest.approx(expected, abs=1e-4)
    features = torch.randn(2, model.config.num_image_tokens, model.config.image_feature_size)
    prompts = model.project(features)
    torch.testing.assert_close(prompts.norm(dim=-1), torch.full(prompts.shape[:2], model.config.soft_prompt_norm))
    # Normalised features: the map sees the same input whatever the encoder's scale and offset.
    torch.testing.assert_close(model.project(features * 50 + 3), prompts, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="soft_prompt_norm"):
        LimberConfig(soft_prompt_norm=-1.0)


def test_the_projection_default_is_the_papers_plain_linear_map():
    model = LimberForCausalLM.from_parts(image_encoder("clip-vit"), language_model("llama"), projection_dropout=0.0)
    features = torch.randn(1, model.config.num_image_tokens, model.config.image_feature_size)
    torch.testing.assert_close(model.project(features), model.projection(features))


def test_the_fine_tuned_encoder_setting_trains_and_saves_the_encoder(tmp_path):
    model = LimberForCausalLM.from_parts(image_encoder("clip-vit"), language_model("llama"), train_image_encoder=True)
    processor = LimberProcessor.for_model(model, word_tokenizer())
    batch = processor(images=images(2), text=["a red cat", "a blue dog"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    assert model.image_encoder.training and not model.language_model.training
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(**batch, labels=batch["input_ids"]).loss.backward()
    optimizer.step()
    changed = {n.split(".")[0] for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"projection", "image_encoder"}
    model.eval().save_pretrained(tmp_path)  # the adapter form: the projection and the trained encoder
    reloaded = LimberForCausalLM.from_pretrained(tmp_path, image_encoder=image_encoder("clip-vit"),
                                                 language_model=language_model("llama"))
    pixels = batch["pixel_values"]
    torch.testing.assert_close(reloaded.image_features(pixels), model.image_features(pixels))
    frozen = LimberForCausalLM.from_parts(image_encoder("clip-vit"), language_model("llama"))
    assert not any(p.requires_grad for p in frozen.image_encoder.parameters())


def test_the_encoder_can_see_larger_pictures_than_it_was_trained_on(tmp_path):
    encoder = image_encoder("clip-resnet")
    native = encoder.config.vision_config.image_size
    model = LimberForCausalLM.from_parts(encoder, language_model("llama"), image_size=2 * native, token_pool=2)
    base = LimberForCausalLM.from_parts(image_encoder("clip-resnet"), language_model("llama"))
    assert model.config.image_size == 2 * native
    assert model.config.num_image_tokens == base.config.num_image_tokens  # 4x the grid, pooled 2x2
    processor = LimberProcessor.for_model(model, word_tokenizer())
    batch = processor(images=images(2), text=["a red cat", "a blue dog"])
    assert batch["pixel_values"].shape[-1] == 2 * native
    assert model(**batch, labels=batch["input_ids"]).loss.isfinite()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert LimberProcessor.from_pretrained(tmp_path)(images=images(1))["pixel_values"].shape[-1] == 2 * native


def test_tiles_give_one_soft_prompt_per_tile_from_the_encoders_pooled_vector(tmp_path):
    encoder = image_encoder("clip-resnet")
    native = encoder.config.vision_config.image_size
    model = LimberForCausalLM.from_parts(encoder, language_model("llama"), features="tiles", tiles_per_side=2)
    assert model.config.image_size == 2 * native and model.config.num_image_tokens == 4
    pixels = torch.randn(2, 3, 2 * native, 2 * native)
    features = model.image_features(pixels)
    assert features.shape == (2, 4, model.config.image_feature_size)
    # Tile 1 of picture 1 is its top-right quarter, seen by the tower alone at its own size.
    top_right = pixels[1:2, :, :native, native:]
    torch.testing.assert_close(features[1, 1], model.image_encoder(pixel_values=top_right).pooler_output[0])
    processor = LimberProcessor.for_model(model, word_tokenizer())
    batch = processor(images=images(2), text=["a red cat", "a blue dog"])
    assert batch["pixel_values"].shape[-1] == 2 * native
    assert (batch["input_ids"] == model.config.image_token_id).sum(-1).tolist() == [4, 4]
    model.save_pretrained(tmp_path)
    reloaded = LimberForCausalLM.from_pretrained(tmp_path, image_encoder=image_encoder("clip-resnet"),
                                                 language_model=language_model("llama"))
    torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)
    with pytest.raises(ValueError, match="equal tiles"):
        model.image_features(torch.randn(1, 3, 2 * native + 1, 2 * native + 1))
