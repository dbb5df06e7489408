"""Tiny random image encoders of every supported kind and tiny causal LMs, for the LiMBeR tests."""

from __future__ import annotations

import torch
from transformers import (
    BeitConfig,
    BeitModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    ViTConfig,
    ViTModel,
)

from hf_limber import ClipConfig, ClipModel

VOCAB = 120


def image_encoder(kind: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    small_vit = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     image_size=32, patch_size=8)
    if kind == "clip-resnet":
        return ClipModel(ClipConfig.from_preset("tiny-resnet"))
    if kind == "clip-vit":
        return ClipModel(ClipConfig.from_preset("tiny-vit"))
    if kind == "hf-clip":
        return CLIPVisionModel(CLIPVisionConfig(**small_vit))
    if kind == "beit":
        return BeitModel(BeitConfig(**small_vit, use_mask_token=False, add_pooling_layer=True))
    if kind == "vit":
        return ViTModel(ViTConfig(**small_vit))
    if kind == "timm-nfresnet":
        import timm

        return timm.create_model("nf_resnet26", pretrained=False, num_classes=0)
    raise ValueError(kind)


def language_model(kind: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "llama":
        return LlamaForCausalLM(LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=0))
    if kind == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=256,
                                          bos_token_id=1, eos_token_id=2, pad_token_id=0))
    raise ValueError(kind)


def word_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over a small caption vocabulary, so tiny LMs can learn it."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["<pad>", "<s>", "</s>", "<unk>"] + (
        "a picture of the an red green blue small large cat dog apple car tree house on left right above below "
        "next to and two three one q : what is there how many yes no color ? . , it in"
    ).split()
    vocab = {word: index for index, word in enumerate(dict.fromkeys(words))}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")


def text_trained_lm(texts: list[str], steps: int = 300) -> torch.nn.Module:
    """A tiny Llama (seed 0) trained `steps` full-batch AdamW steps on `texts` through `word_tokenizer()`, so it
    can say them: the frozen LM of tests in which a LiMBeR must learn to make it say a picture's caption."""
    torch.manual_seed(0)
    lm, tokenizer = language_model("llama"), word_tokenizer()
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    optimizer = torch.optim.AdamW(lm.parameters(), lr=3e-3)
    for _ in range(steps):
        lm(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return lm
