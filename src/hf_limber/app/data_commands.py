"""`hf-limber data emoji OUT` and `hf-limber data emoji-scenes OUT`."""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data.catalog import NPM_DIR_ENV
from ..data.plan import DEFAULT_HELD_OUT_STYLES
from ..data.sources import STYLES
from ..data.vocabulary import VOCABULARIES


def _styles(text: str) -> list[str]:
    return [style.strip() for style in text.split(",") if style.strip()]


def _common_arguments(parser: argparse.ArgumentParser, image_size: int) -> None:
    parser.add_argument("out", type=Path, help="output folder (created; an earlier build there is replaced)")
    parser.add_argument(
        "--styles",
        type=_styles,
        default=None,
        help=f"comma-separated styles to use (default: every one installed); known: {', '.join(STYLES)}",
    )
    parser.add_argument(
        "--held-out",
        dest="held_out_styles",
        type=_styles,
        default=list(DEFAULT_HELD_OUT_STYLES),
        help="comma-separated styles kept out of training, one test_<style> split each "
        f"(default: {','.join(DEFAULT_HELD_OUT_STYLES)})",
    )
    parser.add_argument("--image-size", type=int, default=image_size, help=f"pixels a side (default: {image_size})")
    parser.add_argument("--background", default="white", help="CSS colour name or #rrggbb (default: white)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use a seeded sample of this many concepts")
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="share of concepts held back (emoji: the validation split; scenes: test_novel_concepts; default: 0.1)",
    )
    parser.add_argument(
        "--vocabulary",
        choices=VOCABULARIES,
        default="all",
        help="concepts to draw: all, or common-nouns (one-word names of concrete things, drawn by every style; "
        "the vocabulary a CPU-trained CLIP and a small LM can learn) (default: all)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="rendered-tile cache (default: $HF_LIMBER_EMOJI_CACHE or ~/.cache/hf_limber/emoji-tiles)",
    )
    parser.add_argument(
        "--npm-dir",
        type=Path,
        default=None,
        help=f"node_modules folder with npm emoji packages (default: ${NPM_DIR_ENV} "
        "or ~/.cache/hf_limber/npm/node_modules)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="build datasets from emoji artwork in registry packages")
    commands = data.add_subparsers(dest="data_command", required=True)

    emoji = commands.add_parser(
        "emoji",
        help="one image per emoji concept and style, split by style",
        description="Emoji concepts drawn in every installed style, saved as a DatasetDict "
        "with a dataset card (README.md).",
    )
    _common_arguments(emoji, image_size=64)
    emoji.add_argument("--skin-tones", dest="include_skin_tones", action="store_true",
                       help="add skin-tone variants as their own rows")
    emoji.add_argument("--common-concepts-only", action="store_true", help="keep only concepts that every style draws")
    emoji.set_defaults(run=run_emoji)

    scenes = commands.add_parser(
        "emoji-scenes",
        help="canvases of 1-3 emoji with captions and VQA questions",
        description="Scenes of emoji with COCO-style captions and VQA-style questions, "
        "split by style, saved as a DatasetDict with a dataset card.",
    )
    _common_arguments(scenes, image_size=128)
    scenes.add_argument("--num-scenes", type=int, default=4000, help="training scenes (default: 4000)")
    scenes.add_argument("--num-test-scenes", type=int, default=500,
                        help="scenes per evaluation split: validation, test_novel_concepts, each test_<style> "
                        "(default: 500)")
    scenes.add_argument("--grid", type=int, choices=(2, 3), default=2, help="cells a side (default: 2)")
    scenes.add_argument("--captions", dest="captions_per_scene", type=int, default=5,
                        help="reference captions per scene (default: 5)")
    scenes.set_defaults(run=run_scenes)


def _summary(out: Path, dataset) -> None:
    report = json.loads((out / "build_report.json").read_text())
    for style, info in report["styles"].items():
        print(
            f"{style:22s} {info['role']:9s} {info['images']:6d} images  {info['source']}"
            + (f"  ({info['unreadable_skipped']} unreadable skipped)" if info["unreadable_skipped"] else "")
        )
    for entry in report["not_used"]:
        print(f"not used: {entry['source']} ({entry['style']}): {entry['why']}")
    print(", ".join(f"{split}: {rows.num_rows}" for split, rows in dataset.items()))
    print(f"Saved to {out} in {report['build_seconds']} s (card: {out / 'README.md'})")


def _build(builder: Callable[..., Any], args: argparse.Namespace) -> int:
    """Each option is named as the builder's keyword argument, so the options pass through as they are."""
    accepted = inspect.signature(builder).parameters
    dataset = builder(args.out, **{name: value for name, value in vars(args).items()
                                   if name in accepted and name != "out_dir"})
    _summary(args.out, dataset)
    return 0


def run_emoji(args: argparse.Namespace) -> int:
    from ..data.emoji import build_emoji_dataset

    return _build(build_emoji_dataset, args)


def run_scenes(args: argparse.Namespace) -> int:
    from ..data.scenes import build_emoji_scenes

    return _build(build_emoji_scenes, args)
