"""The ridge start of the LiMBeR projection: least squares from an image's summed tokens to its
caption words' summed embeddings, so that each token alone lands on the word for what it shows."""

from __future__ import annotations

import math

import pytest
import torch
from limber_parts import image_encoder, language_model, word_tokenizer

from hf_limber.limber import LimberForCausalLM
from hf_limber.training.limber_init import dual_basis, ridge_init_, word_weights

OBJECTS = ["cat", "dog", "apple", "car", "tree", "house"]


def test_words_weigh_by_rarity_and_a_word_in_every_image_weighs_nothing():
    weights = word_weights([["a red cat", "a cat."], ["a green cat"], ["a blue dog"], ["a red car"]])
    assert weights[0]["a"] == 0  # in every image
    assert math.isclose(weights[2]["dog"], 1.0)  # in one image only
    assert weights[0]["red"] == weights[0]["cat"] == math.log(2) / math.log(4)  # each in two images
    assert set(weights[0]) == {"a", "red", "cat"}  # distinct words over the image's captions


@pytest.mark.parametrize("dual", [False, True])
def test_ridge_start_sends_each_token_to_the_word_for_what_it_shows(dual):
    """Captions list an image's objects but not where they are; after the fit, each token's soft
    prompt is closest to its own object's word (by cosine; fit to the dual vectors: by dot product) and
    a token showing nothing is close to zero."""
    tokenizer = word_tokenizer()
    model = LimberForCausalLM.from_parts(image_encoder("clip-vit"), language_model("llama"), projection_dropout=0.0,
                                         normalize_features=True)
    tokens, width = model.config.num_image_tokens, model.config.image_feature_size
    generator = torch.Generator().manual_seed(0)
    looks = torch.randn(len(OBJECTS) + 1, width, generator=generator)  # the last: an empty token
    images, shown = 300, []
    for _ in range(images):
        count = int(torch.randint(1, 4, (1,), generator=generator))  # varies, as in scenes: else the
        cells = torch.full((tokens,), len(OBJECTS))                         # empties' sum is the intercept's
        cells[torch.randperm(tokens, generator=generator)[:count]] = torch.randperm(len(OBJECTS), generator=generator)[:count]
        shown.append(cells)
    shown = torch.stack(shown)
    features = looks[shown] + 0.05 * torch.randn(images, tokens, width, generator=generator)
    captions = [[" and ".join(f"a {OBJECTS[c]}" for c in cells.tolist() if c < len(OBJECTS))] for cells in shown]
    ridge_init_(model, features, captions, tokenizer, l2=1e-2, dual=dual)

    with torch.no_grad():
        prompts = model.project(features)  # (images, tokens, hidden)
    words = model.get_input_embeddings().weight.detach()[tokenizer.convert_tokens_to_ids(OBJECTS)]
    occupied = shown < len(OBJECTS)
    if dual:
        nearest = (prompts[occupied] @ words.T).argmax(1)
    else:
        nearest = (torch.nn.functional.normalize(prompts[occupied], dim=-1)
                   @ torch.nn.functional.normalize(words, dim=-1).T).argmax(1)
    assert (nearest == shown[occupied]).float().mean() > 0.95
    assert prompts[~occupied].norm(dim=-1).mean() < 0.25 * prompts[occupied].norm(dim=-1).mean()


def test_dual_vectors_turn_dot_products_into_the_word_weights():
    """Word embeddings sharing a large common direction (as LM token embeddings do): a weighted sum of
    them is most like the word with the largest norm, not the heaviest; the same sum of dual vectors has
    dot products with the embeddings that rank the words by weight."""
    generator = torch.Generator().manual_seed(0)
    common = 3 * torch.randn(64, generator=generator)
    vectors = common + torch.randn(20, 64, generator=generator) * torch.linspace(0.5, 2.0, 20)[:, None]
    dual = dual_basis(vectors.double(), rcond=1e-6)
    products = dual @ vectors.double().T
    assert torch.allclose(products / products.diagonal().mean(), torch.eye(20, dtype=torch.float64), atol=1e-3)
    assert torch.isclose(dual.norm(dim=1).mean(), vectors.double().norm(dim=1).mean())

    weights = torch.zeros(20, dtype=torch.float64)
    weights[3], weights[15] = 1.0, 0.6  # word 3 is the heavier, word 15 the longer vector
    plain, through_dual = weights @ vectors.double(), weights @ dual
    assert int((plain @ vectors.double().T).argmax()) != 3
    assert int((through_dual @ vectors.double().T).argmax()) == 3

