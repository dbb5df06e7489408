"""LiMBeR: training from cached features vs from pixels vs the frozen LM alone, and against transformers' Llava.

Parts (random weights): the LM is SmolLM2-135M-sized (Llama: 576 wide, 30 layers, 9 heads, 3 KV
heads, 1536 MLP, 49,152 tokens). Image encoders: hf_limber's RN50x16 image tower (a 12x12 grid of
3072-wide features, k = 144), and for the side-by-side with Llava a transformers CLIP ViT of similar
size (154M parameters vs 167M, 1024 wide, 12 layers, 32-px patches at 384 px: also 144 tokens),
read at layer -2 without the class token by both, as Llava does. Everything but the projection
(ours: one linear map; Llava: linear-GELU-linear) is frozen; the LM runs without a KV cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM, LlavaConfig, LlavaForConditionalGeneration

from hf_limber import ClipConfig, LimberForCausalLM
from hf_limber.clip.modeling_clip import ClipVisionModel

from .report import comparison_table
from .timing import Case, compare, count_flops

SMOLLM2_135M = {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                "intermediate_size": 1536, "vocab_size": 49152}
LLAVA_VIT = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 12, "num_attention_heads": 16,
             "image_size": 384, "patch_size": 32}
PROMPT_TOKENS = 4  # "A picture of" and a space, roughly
IGNORE_INDEX = -100


@dataclass
class LimberSizes:
    resnet_preset: str  # whose image tower plays the frozen ResNet encoder
    lm: dict
    vit: dict
    batch: int
    caption_tokens: int
    caption_images: int
    new_tokens: int
    repeats: int  # timed rounds of the training steps
    caption_repeats: int  # timed rounds of the captioning


def build_lm(lm: dict) -> LlamaForCausalLM:
    config = LlamaConfig(**lm, tie_word_embeddings=True)
    return LlamaForCausalLM._from_config(config, attn_implementation="sdpa").eval()


def build_llava(sizes: LimberSizes) -> LlavaForConditionalGeneration:
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**sizes.vit), text_config=LlamaConfig(**sizes.lm, tie_word_embeddings=True),
        image_token_index=sizes.lm["vocab_size"] - 1, vision_feature_layer=-2, vision_feature_select_strategy="default",
        image_seq_length=(sizes.vit["image_size"] // sizes.vit["patch_size"]) ** 2, tie_word_embeddings=True,
    )
    model = LlavaForConditionalGeneration._from_config(config, attn_implementation="sdpa")
    model.requires_grad_(False)
    model.model.multi_modal_projector.requires_grad_(True)
    return model.train()


def token_ids(image_token: int, k: int, batch: int, text_tokens: int, vocab: int) -> torch.Tensor:
    """k image placeholders, then random text ids (never the placeholder, never a special low id)."""
    text = torch.randint(3, vocab - 2, (batch, text_tokens), generator=torch.Generator().manual_seed(2))
    return torch.cat([torch.full((batch, k), image_token), text], dim=1)


def caption_labels(ids: torch.Tensor, k: int) -> torch.Tensor:
    """Loss on the caption only: not on the image tokens, not on the prompt."""
    labels = ids.clone()
    labels[:, : k + PROMPT_TOKENS] = IGNORE_INDEX
    return labels


def optimised(loss: Callable[[], torch.Tensor], parameters: list[torch.Tensor]) -> Callable[[], None]:
    """A training step: loss, backward, fused AdamW on the trainable parameters."""
    optimizer = torch.optim.AdamW(parameters, fused=True)

    def step() -> None:
        loss().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def limber_section(sizes: LimberSizes, peak: float) -> tuple[str, dict[str, float]]:
    """Training-step and captioning tables, and the figures the goals are judged on."""
    lm = build_lm(sizes.lm)
    resnet = ClipVisionModel(ClipConfig.from_preset(sizes.resnet_preset).vision_config).eval()
    ours_resnet = LimberForCausalLM.from_parts(resnet, lm).train()
    ours_vit = LimberForCausalLM.from_parts(CLIPVisionModel(CLIPVisionConfig(**sizes.vit)), lm, feature_layer=-2).train()
    llava = build_llava(sizes)
    k = ours_resnet.config.num_image_tokens
    if ours_vit.config.num_image_tokens != k:
        raise ValueError("the ViT and the ResNet encoders must give the same number of image tokens")

    text_tokens = PROMPT_TOKENS + sizes.caption_tokens
    vocab = sizes.lm["vocab_size"]
    ours_ids = token_ids(ours_resnet.config.image_token_id, k, sizes.batch, text_tokens, vocab)
    llava_ids = token_ids(llava.config.image_token_index, k, sizes.batch, text_tokens, vocab)
    labels = caption_labels(ours_ids, k)
    size_of = {"resnet": ours_resnet.config.image_size, "vit": sizes.vit["image_size"]}
    pixels = {name: torch.randn(sizes.batch, 3, s, s, generator=torch.Generator().manual_seed(3)) for name, s in size_of.items()}
    cached = ours_resnet.image_features(pixels["resnet"])
    embeds = torch.nn.Parameter(torch.randn(sizes.batch, ours_ids.shape[1], sizes.lm["hidden_size"]))

    print(f"[limber] training step, {ours_ids.shape[1]} tokens", flush=True)
    resnet_name = sizes.resnet_preset
    steps = [
        # The baseline updates its inputs_embeds as ours updates its projection: both end in one small AdamW step.
        Case("frozen LM alone (grads for inputs_embeds)", optimised(
            lambda: lm(inputs_embeds=embeds, labels=labels, use_cache=False).loss, [embeds])),
        Case(f"ours, cached {resnet_name} features", optimised(
            lambda: ours_resnet(ours_ids, image_features=cached, labels=labels).loss, trainable(ours_resnet))),
        Case(f"ours, {resnet_name} from pixels", optimised(
            lambda: ours_resnet(ours_ids, pixel_values=pixels["resnet"], labels=labels).loss, trainable(ours_resnet))),
        Case("ours, ViT encoder from pixels", optimised(
            lambda: ours_vit(ours_ids, pixel_values=pixels["vit"], labels=labels).loss, trainable(ours_vit))),
        Case("Llava, same ViT encoder from pixels", optimised(
            lambda: llava(input_ids=llava_ids, pixel_values=pixels["vit"], labels=labels, use_cache=False).loss,
            trainable(llava))),
    ]
    for case in steps:
        case.items = sizes.batch
        case.flops = count_flops(case.run)  # also the warm-up
    compare(steps, sizes.repeats, warmup=0)
    by_name = {case.name: case for case in steps}
    figures = {
        "cached_over_lm": steps[1].median / steps[0].median,
        "cached_speedup": steps[2].median / steps[1].median,
        "vit_vs_llava": by_name["Llava, same ViT encoder from pixels"].median / by_name["ours, ViT encoder from pixels"].median,
    }

    print("[limber] captioning", flush=True)
    captions = caption_cases(ours_vit, llava, sizes, k)
    compare(captions, sizes.caption_repeats, warmup=0)
    markdown = "\n".join([
        f"### Training step, batch {sizes.batch}, {ours_ids.shape[1]} tokens ({k} image + {PROMPT_TOKENS} prompt + "
        f"{sizes.caption_tokens} caption), fp32", "",
        comparison_table(steps, steps[1].name, peak, unit="captions/s"), "",
        f"Cached features cost **{100 * (figures['cached_over_lm'] - 1):+.1f}%** over the frozen LM's own step; "
        f"caching the {resnet_name} features makes a step **{figures['cached_speedup']:.1f}x** faster; "
        f"ours vs Llava with the same encoder: **{figures['vit_vs_llava']:.2f}x**.", "",
        f"### Captioning, greedy, {sizes.new_tokens} new tokens per image, {sizes.caption_images} images, ViT encoder "
        "from pixels, KV cache on", "",
        comparison_table(captions, "ours, batched", peak, unit="new tokens/s"),
    ])
    return markdown, figures


def caption_cases(ours_vit: LimberForCausalLM, llava: LlavaForConditionalGeneration, sizes: LimberSizes, k: int) -> list[Case]:
    images = sizes.caption_images
    size = sizes.vit["image_size"]
    pixels = torch.randn(images, 3, size, size, generator=torch.Generator().manual_seed(4))
    vocab = sizes.lm["vocab_size"]
    prompts = {"ours": token_ids(ours_vit.config.image_token_id, k, images, PROMPT_TOKENS, vocab),
               "Llava": token_ids(llava.config.image_token_index, k, images, PROMPT_TOKENS, vocab)}
    # Every image gets exactly new_tokens tokens (no early end), so the token counts are equal.
    options = {"max_new_tokens": sizes.new_tokens, "min_new_tokens": sizes.new_tokens, "do_sample": False,
               "pad_token_id": 0}

    def generate(model: torch.nn.Module, ids: torch.Tensor, one_by_one: bool) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                for rows in ([slice(i, i + 1) for i in range(images)] if one_by_one else [slice(None)]):
                    model.generate(input_ids=ids[rows], attention_mask=torch.ones_like(ids[rows]),
                                   pixel_values=pixels[rows], **options)

        return run

    cases = [Case(f"{name}, {mode}", generate(model, prompts[name], mode == "one by one"), items=images * sizes.new_tokens)
             for name, model in (("ours", ours_vit.eval()), ("Llava", llava.eval()))
             for mode in ("batched", "one by one")]
    for case in cases:
        case.flops = count_flops(case.run)  # also the warm-up
    return cases
