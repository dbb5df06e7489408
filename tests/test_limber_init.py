"""The ridge start of the LiMBeR projection: closed-form least squares to the caption words' embeddings."""

from __future__ import annotations

import torch
from limber_parts import image_encoder, language_model, word_tokenizer

from hf_limber.limber import LimberForCausalLM
from hf_limber.training.limber_init import caption_targets, ridge_init_

WORDS = ["cat", "dog", "apple", "car", "tree", "house", "red", "green", "blue"]


def test_caption_targets_weight_rare_words_over_common_ones():
    tokenizer = word_tokenizer()
    embeddings = torch.eye(len(tokenizer))  # each token its own axis: the target shows the weights
    targets = caption_targets([["a red cat"], ["a green cat"], ["a blue dog"]], tokenizer, embeddings)
    a, red, cat = (tokenizer.convert_tokens_to_ids(w) for w in ("a", "red", "cat"))
    assert targets[0, a] == 0  # in every caption: no information
    assert targets[0, red] > targets[0, cat] > 0  # red is rarer than cat
    assert torch.allclose(targets.sum(1), torch.ones(3))


def test_ridge_start_points_each_image_at_its_own_caption():
    tokenizer = word_tokenizer()
    for features_kind, k in (("pooled", 2), ("tokens", None)):
        options = {"features": features_kind, "num_pooled_tokens": k} if k else {}
        model = LimberForCausalLM.from_parts(image_encoder("clip-vit"), language_model("llama"),
                                             projection_dropout=0.0, normalize_features=True, **options)
        generator = torch.Generator().manual_seed(0)
        count = 18
        tokens = 1 if features_kind == "pooled" else model.config.num_image_tokens
        width = model.config.image_feature_size
        # An image's tokens share what the image shows, and differ a little.
        features = (torch.randn(count, 1, width, generator=generator)
                    + 0.1 * torch.randn(count, tokens, width, generator=generator))
        captions = [[f"a {WORDS[6 + i % 3]} {WORDS[i % 6]}"] for i in range(count)]
        ridge_init_(model, features if features_kind == "tokens" else features[:, 0], captions, tokenizer, l2=1e-3)
        embeddings = model.get_input_embeddings().weight.detach()
        targets = caption_targets(captions, tokenizer, embeddings)
        with torch.no_grad():
            prompts = model.project(features if features_kind == "tokens" else features[:, 0]).mean(1)
        similarity = torch.nn.functional.normalize(prompts, dim=-1) @ torch.nn.functional.normalize(targets, dim=-1).T
        own_best = (similarity.argmax(1) == torch.arange(count)) | torch.isclose(
            similarity.max(1).values, similarity.diagonal())
        assert own_best.float().mean() == 1.0, features_kind
