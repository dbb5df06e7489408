"""`hf-limber convert SRC OUT`: public CLIP weights into a `save_pretrained` folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert CLIP weights (transformers folder, or OpenAI/open_clip .safetensors) to hf_limber",
        description="SRC is a transformers CLIPModel folder or a .safetensors state dict in OpenAI's "
        "layout (OpenAI releases, open_clip CLIP models). Pickle checkpoints (.pt/.bin) are refused: "
        "convert them to safetensors first with code you trust.",
    )
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--hidden-act", choices=("quick_gelu", "gelu"), default="quick_gelu",
                        help="activation of an OpenAI-layout state dict (OpenAI weights: quick_gelu)")
    parser.add_argument("--bpe", type=Path, default=None,
                        help="CLIP BPE merges file (bpe_simple_vocab_16e6.txt.gz) to save a processor with "
                        "an OpenAI-layout state dict; by default open_clip's copy is used when installed")
    parser.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from .convert import convert_path

    model, processor = convert_path(args.src, hidden_act=args.hidden_act, bpe_path=args.bpe)
    model.save_pretrained(args.out)
    if processor is not None:
        processor.save_pretrained(args.out)
    else:
        print("No tokenizer vocabulary found: saved the model without a processor (pass --bpe).")
    print(f"Saved {model.config.vision_config.tower} CLIP to {args.out}")
    return 0
