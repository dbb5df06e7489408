"""`hf-limber data emoji OUT` and `hf-limber data emoji-scenes OUT`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The builders are light to import once hf_limber is (their keyword arguments give the options' defaults).
from ..data.catalog import NPM_DIR_ENV
from ..data.emoji import build_emoji_dataset
from ..data.scenes import build_emoji_scenes
from ..data.sources import STYLES
from ..data.vocabulary import VOCABULARIES
from .options import Option, add_options, values


def _styles(text: str) -> list[str]:
    return [style.strip() for style in text.split(",") if style.strip()]


# Options both builders take; defaults and types are each builder's keyword arguments.
COMMON_OPTIONS = {
    "styles": Option(f"comma-separated styles to use (default: every one installed); known: {', '.join(STYLES)}",
                     type=_styles),
    "held_out_styles": Option("comma-separated styles kept out of training, one test_<style> split each",
                              flag="--held-out", type=_styles),
    "image_size": Option("pixels a side"),
    "background": Option("CSS colour name or #rrggbb"),
    "seed": Option("seed of every draw"),
    "limit": Option("use a seeded sample of this many concepts"),
    "validation_fraction": Option("share of concepts held back (emoji: the validation split; scenes: "
                                  "test_novel_concepts)"),
    "vocabulary": Option("concepts to draw: all, or common-nouns (one-word names of concrete things, drawn by every "
                         "style; the vocabulary a CPU-trained CLIP and a small LM can learn)", choices=VOCABULARIES),
    "cache_dir": Option("rendered-tile cache (default: $HF_LIMBER_EMOJI_CACHE or ~/.cache/hf_limber/emoji-tiles)"),
    "npm_dir": Option(f"node_modules folder with npm emoji packages (default: ${NPM_DIR_ENV} or "
                      "~/.cache/hf_limber/npm/node_modules)"),
    "progress": Option("progress bars"),
}
EMOJI_OPTIONS = {
    "include_skin_tones": Option("add skin-tone variants as their own rows", flag="--skin-tones"),
    "common_concepts_only": Option("keep only concepts that every style draws"),
}
SCENES_OPTIONS = {
    "num_scenes": Option("training scenes"),
    "num_test_scenes": Option("scenes per evaluation split: validation, test_novel_concepts, each test_<style>"),
    "grid": Option("cells a side", choices=(2, 3)),
    "captions_per_scene": Option("reference captions per scene", flag="--captions"),
    "patch_probability": Option("share of objects drawn on a coloured square (the colour questions ask about "
                                "them; 0: none)"),
    "object_sizes": Option("sides of small and large objects as shares of a cell's side (two numbers)", nargs=2),
}


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="build datasets from emoji artwork in registry packages")
    commands = data.add_subparsers(dest="data_command", required=True)
    for name, builder, options, help_text, description in (
        ("emoji", build_emoji_dataset, EMOJI_OPTIONS, "one image per emoji concept and style, split by style",
         "Emoji concepts drawn in every installed style, saved as a DatasetDict with a dataset card (README.md)."),
        ("emoji-scenes", build_emoji_scenes, SCENES_OPTIONS, "canvases of 1-3 emoji with captions and VQA questions",
         "Scenes of emoji with COCO-style captions and VQA-style questions, split by style, saved as a DatasetDict "
         "with a dataset card."),
    ):
        command = commands.add_parser(name, help=help_text, description=description)
        command.add_argument("out", type=Path, help="output folder (created; an earlier build there is replaced)")
        add_options(command, builder, {**COMMON_OPTIONS, **options})
        command.set_defaults(run=lambda args, builder=builder: _build(builder, args))


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
    _summary(args.out, builder(args.out, **values(builder, args)))
    return 0
