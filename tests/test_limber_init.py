"""The ridge start of the LiMBeR projection: least squares from an image's summed tokens to its
caption words' summed embeddings, so that each token alone lands on the word for what it shows."""

from __future__ import annotations

import math

import torch
from limber_parts import image_encoder, language_model, word_tokenizer

from hf_limber.limber import LimberForCausalLM
from hf_limber.training.limber_init import ridge_init_, word_weights

OBJECTS = ["cat", "dog", "apple", "car", "tree", "house"]


def test_words_weigh_by_rarity_and_a_word_in_every_image_weighs_nothing():
    weights = word_weights([["a red cat", "a cat."], ["a green cat"], ["a blue dog"], ["a red car"]])
    assert weights[0]["a"] == 0  # in every image
    assert math.isclose(weights[2]["dog"], 1.0)  # in one image only
    assert weights[0]["red"] == weights[0]["cat"] == math.log(2) / math.log(4)  # each in two images
    assert set(weights[0]) == {"a", "red", "cat"}  # distinct words over the image's captions


def test_ridge_start_sends_each_token_to_the_word_for_what_it_shows():
    """Captions list an image's objects but not where they are; after the fit, each token's soft
    prompt is closest to its own object's word and a token showing nothing is close to zero."""
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
    ridge_init_(model, features, captions, tokenizer, l2=1e-2)

    with torch.no_grad():
        prompts = model.project(features)  # (images, tokens, hidden)
    words = model.get_input_embeddings().weight.detach()[tokenizer.convert_tokens_to_ids(OBJECTS)]
    occupied = shown < len(OBJECTS)
    nearest = (torch.nn.functional.normalize(prompts[occupied], dim=-1)
               @ torch.nn.functional.normalize(words, dim=-1).T).argmax(1)
    assert (nearest == shown[occupied]).float().mean() > 0.95
    assert prompts[~occupied].norm(dim=-1).mean() < 0.25 * prompts[occupied].norm(dim=-1).mean()
