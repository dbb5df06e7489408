"""`hf-limber train-clip RECIPE [--field value ...]`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train-clip", help="train a CLIP from a recipe (YAML read by HfArgumentParser)")
    parser.add_argument("recipe", type=Path)
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="recipe fields, e.g. --max_steps 10")
    parser.set_defaults(run=run_train_clip)


def run_train_clip(args: argparse.Namespace) -> int:
    from ..recipes import parse_recipe
    from ..training.clip_recipe import ClipRecipeArguments, train_clip
    from ..training.contrastive_trainer import ContrastiveTrainingArguments

    train_clip(*parse_recipe(args.recipe, (ClipRecipeArguments, ContrastiveTrainingArguments), args.overrides))
    return 0
