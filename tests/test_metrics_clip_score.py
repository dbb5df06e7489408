"""CLIPScore / RefCLIPScore: the formula by hand, from a tiny random CLIP, and ours vs transformers' CLIP."""

import math

import evaluate
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

import hf_limber
from hf_limber.clip import convert
from hf_limber.evaluation import clip_score, ref_clip_score
from hf_limber.evaluation.clip_score import clip_scores_from_embeddings, harmonic_mean
from hf_limber.evaluation.embedding import embed_images, embed_texts
from hf_limber.metrics import metric_path

CAPTIONS = ["a red apple on a table", "two dogs", "a yellow face with tears of joy", "a bus"]
REFERENCES = [["an apple", "a red fruit"], ["dogs playing"], ["a laughing emoji", "a face", "tears"], ["a red bus"]]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    sizes = [(40, 50), (32, 32), (64, 48), (36, 80)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


@pytest.fixture(scope="module")
def tiny_clip(clip_tokenizer):
    config = hf_limber.ClipConfig.from_preset("tiny-vit")
    torch.manual_seed(0)
    return hf_limber.ClipModel(config).eval(), hf_limber.ClipProcessor.for_config(config, clip_tokenizer)


def test_formula_by_hand():
    image = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[6.0, 8.0], [1.0, 1.0], [0.0, -2.0]])
    # cosines 1, 1/sqrt(2), -1; w = 2.5; negatives clip to 0
    torch.testing.assert_close(clip_scores_from_embeddings(image, text), torch.tensor([2.5, 2.5 / math.sqrt(2), 0.0]))
    torch.testing.assert_close(clip_scores_from_embeddings(image, text, w=1.0),
                               torch.tensor([1.0, 1 / math.sqrt(2), 0.0]))
    torch.testing.assert_close(harmonic_mean(torch.tensor([2.5, 0.0]), torch.tensor([0.5, 0.0])),
                               torch.tensor([2 * 2.5 * 0.5 / 3.0, 0.0]))


def by_hand(model, processor, images, captions, references, w=2.5):
    """CLIP-S and RefCLIP-S in numpy from the model's raw embeddings."""
    def unit(x):
        x = x.detach().numpy().astype(np.float64)
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    def text_embeddings(texts):
        batch = processor(text=[f"A photo depicts {t}" for t in texts])
        return unit(model.get_text_features(batch["input_ids"], batch["attention_mask"]).pooler_output)

    with torch.no_grad():
        image = unit(model.get_image_features(processor(images=images)["pixel_values"]).pooler_output)
        caption = text_embeddings(captions)
        clip_s = w * np.maximum((image * caption).sum(-1), 0)
        best = np.array([(text_embeddings(refs) @ c).max() for c, refs in zip(caption, references)])
    return clip_s, 2 * clip_s * best / (clip_s + best)


def test_scores_match_a_hand_computation_from_the_embeddings(tiny_clip, images):
    model, processor = tiny_clip
    clip_s, ref_s = by_hand(model, processor, images, CAPTIONS, REFERENCES)
    result = ref_clip_score(images, CAPTIONS, REFERENCES, model, processor, batch_size=3)
    np.testing.assert_allclose(result.scores, clip_s, atol=1e-6)
    np.testing.assert_allclose(result.ref_scores, ref_s, atol=1e-6)
    assert result.clip_score == pytest.approx(clip_s.mean(), abs=1e-6)
    assert result.ref_clip_score == pytest.approx(ref_s.mean(), abs=1e-6)
    assert clip_score(images, CAPTIONS, model, processor).scores == pytest.approx(result.scores, abs=1e-6)


def transformers_clip_like(config: hf_limber.ClipConfig) -> CLIPModel:
    text, vision = config.text_config, config.vision_config
    shared = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "hidden_act",
              "layer_norm_eps")
    return CLIPModel(CLIPConfig(
        projection_dim=config.projection_dim,
        text_config={**{k: getattr(text, k) for k in shared}, "vocab_size": text.vocab_size,
                     "max_position_embeddings": text.max_position_embeddings, "eos_token_id": text.eos_token_id,
                     "bos_token_id": text.bos_token_id, "pad_token_id": text.pad_token_id},
        vision_config={**{k: getattr(vision, k) for k in shared}, "image_size": vision.image_size,
                       "patch_size": vision.patch_size},
    )).eval()


def test_ours_and_transformers_clip_give_the_same_scores(clip_tokenizer, images):
    torch.manual_seed(2)  # a draw whose random CLIP scores every caption above 0, so no clipping hides a difference
    reference = transformers_clip_like(hf_limber.ClipConfig.from_preset("tiny-vit"))
    ours = convert.from_transformers(reference).eval()
    size = reference.config.vision_config.image_size
    theirs_processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=clip_tokenizer,
    )
    ours_processor = hf_limber.ClipProcessor.for_config(ours.config, clip_tokenizer)
    for embed, inputs in ((embed_images, images), (embed_texts, CAPTIONS)):
        torch.testing.assert_close(embed(ours, ours_processor, inputs), embed(reference, theirs_processor, inputs),
                                   atol=1e-5, rtol=0)
    theirs = ref_clip_score(images, CAPTIONS, REFERENCES, reference, theirs_processor)
    mine = ref_clip_score(images, CAPTIONS, REFERENCES, ours, ours_processor)
    assert min(mine.scores) > 0
    np.testing.assert_allclose(mine.scores, theirs.scores, atol=1e-5)
    np.testing.assert_allclose(mine.ref_scores, theirs.ref_scores, atol=1e-5)


def test_evaluate_modules_give_the_function_results(tiny_clip, images):
    model, processor = tiny_clip
    expected = ref_clip_score(images, CAPTIONS, REFERENCES, model, processor)
    plain = evaluate.load(metric_path("clip_score")).compute(
        predictions=CAPTIONS, images=images, model=model, processor=processor
    )
    assert plain["clip_score"] == pytest.approx(expected.clip_score, abs=1e-6)
    assert plain["scores"] == pytest.approx(expected.scores, abs=1e-6)
    with_refs = evaluate.load(metric_path("ref_clip_score")).compute(
        predictions=CAPTIONS, references=REFERENCES, images=images, model=model, processor=processor
    )
    assert with_refs["ref_clip_score"] == pytest.approx(expected.ref_clip_score, abs=1e-6)
    assert with_refs["ref_scores"] == pytest.approx(expected.ref_scores, abs=1e-6)


def test_errors_say_what_to_pass(tiny_clip, images):
    model, processor = tiny_clip
    with pytest.raises(ValueError, match="model=clip_model, processor=clip_processor"):
        evaluate.load(metric_path("clip_score")).compute(predictions=CAPTIONS, images=images)
    with pytest.raises(ValueError, match="one entry per image"):
        clip_score(images[:2], CAPTIONS, model, processor)
    with pytest.raises(ValueError, match="Item 1 has no reference captions"):
        ref_clip_score(images[:2], CAPTIONS[:2], [["a"], []], model, processor)
