"""`hf-limber convert SRC OUT`: public CLIP weights into a `save_pretrained` folder.
`hf-limber export MODEL OUT --to transformers`: a ViT CLIP of ours as a stock transformers CLIPModel folder;
`--to onnx [--int8]`: its two encoders for ONNX Runtime (any tower).
`hf-limber eval-clip MODEL DATASET`: zero-shot, few-shot probes and retrieval, as a report."""

from __future__ import annotations

import argparse
from pathlib import Path

# The settings class is light to import once hf_limber is (it gives the options' defaults).
from ..evaluation.clip_report import ClipEvalSettings
from .options import Option, add_evaluation_command, values

# The evaluation settings `eval-clip` offers; defaults and types are ClipEvalSettings'.
EVAL_OPTIONS = {
    "label_columns": Option("label columns for zero-shot classification, each its own class set", nargs="+"),
    "template_sets": Option("template sets to compare: simple (one prompt), emoji, imagenet (the paper's 80)",
                            flag="--templates", nargs="+"),
    "caption_column": Option("texts for retrieval ('' to skip)"),
    "image_column": Option("images"),
    "probe_column": Option("label column of the few-shot linear probes ('' to skip)"),
    "shots": Option("examples per class for the probes"),
    "probe_train_split": Option("split the probes' examples come from"),
    "probe_validation_split": Option("split that chooses the probes' regularisation"),
    "seed": Option("seed of the probes' example draw"),
    "batch_size": Option("images or texts per embedding batch"),
}


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
    parser.add_argument("--overwrite", action="store_true",
                        help="write into OUT although it holds files (they may be replaced; others stay)")
    parser.set_defaults(run=run_convert)

    export = subparsers.add_parser(
        "export", help="write a CLIP of ours as a stock transformers CLIPModel folder, or as ONNX encoders",
        description="MODEL is a saved hf_limber CLIP (trained or converted here). --to transformers: OUT gets "
        "config.json, model.safetensors and a CLIPProcessor that plain transformers loads (CLIPModel, AutoModel, "
        "pipelines); ResNet towers and sigmoid-loss (SigLIP) models are refused: CLIPModel cannot hold them. "
        "--to onnx: OUT gets image_encoder.onnx and text_encoder.onnx (embeddings; batch and text length "
        "dynamic), the processor and onnx_export.json, for hf_limber.clip.onnx.OnnxClipModel on ONNX Runtime "
        "(needs the onnx extra); the export is written beside OUT and moved in once complete.",
    )
    export.add_argument("model")
    export.add_argument("out", type=Path)
    export.add_argument("--to", choices=("transformers", "onnx"), default="transformers",
                        help="target: transformers' CLIPModel, or ONNX encoders for ONNX Runtime")
    export.add_argument("--int8", action="store_true",
                        help="with --to onnx: int8 weights (onnxruntime's dynamic quantisation of the matmuls)")
    export.add_argument("--overwrite", action="store_true",
                        help="write into OUT although it holds files (they may be replaced; others stay)")
    export.set_defaults(run=run_export)

    add_evaluation_command(
        subparsers, "eval-clip", ClipEvalSettings, EVAL_OPTIONS, "the first test* split", run_evaluate,
        help="zero-shot accuracy, few-shot linear probes and retrieval recall of a CLIP on a dataset",
        description="MODEL is a saved CLIP folder (ours or transformers'); DATASET a `save_to_disk` "
        "DatasetDict (e.g. from `hf-limber data emoji`). Writes report.json, report.md and PNG plots.",
    )


def run_convert(args: argparse.Namespace) -> int:
    from ..clip.convert import convert_path

    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        raise SystemExit(f"{args.out} already holds files ({', '.join(sorted(p.name for p in args.out.iterdir())[:5])}"
                         "...): the converted model would be mixed with them (another model's processor files, "
                         "say). Pass a new or empty folder, or --overwrite.")
    model, processor = convert_path(args.src, hidden_act=args.hidden_act, bpe_path=args.bpe)
    model.save_pretrained(args.out)
    if processor is not None:
        processor.save_pretrained(args.out)
    else:
        print("No tokenizer vocabulary found: saved the model without a processor (pass --bpe).")
    print(f"Saved {model.config.vision_config.tower} CLIP to {args.out}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..clip.export import describe_export, export_to_transformers, load_for_export, refuse_occupied

    if args.int8 and args.to != "onnx":
        raise SystemExit("--int8 quantises the ONNX encoders: pass it with --to onnx.")
    try:
        refuse_occupied(args.out, args.overwrite)
    except FileExistsError as error:
        raise SystemExit(str(error)) from None
    if args.to == "onnx":
        return run_export_onnx(args)
    model, processor = load_for_export(args.model)
    export_to_transformers(model, args.out, processor, overwrite=True)
    if processor is None:
        print(f"{args.model} has no processor: exported the model alone (add a CLIPProcessor to {args.out}).")
    print(f"Exported {describe_export(args.out)}: load it with transformers' CLIPModel.from_pretrained, no remote code.")
    return 0


def run_export_onnx(args: argparse.Namespace) -> int:
    from ..clip.onnx import describe_onnx_export, export_onnx, load_for_onnx

    model, processor = load_for_onnx(args.model)
    export_onnx(model, args.out, processor, int8=args.int8, overwrite=args.overwrite, source=str(args.model))
    if processor is None:
        print(f"{args.model} has no processor: exported the encoders alone (add a ClipProcessor to {args.out}).")
    print(f"Exported {describe_onnx_export(args.out)}: load it with "
          "hf_limber.clip.onnx.OnnxClipModel.from_pretrained, its processor with ClipProcessor.from_pretrained.")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from datasets import load_from_disk
    from transformers import AutoModel, AutoProcessor

    from ..evaluation.clip_report import evaluate_clip, markdown_table, write_report

    dataset_dict = load_from_disk(str(args.dataset))
    split = args.split or next((name for name in dataset_dict if name.startswith("test")), None)
    if split is None:
        raise SystemExit(f"{args.dataset} has no test* split ({', '.join(dataset_dict)}): pass --split.")
    model = AutoModel.from_pretrained(args.model)
    processor = AutoProcessor.from_pretrained(args.model)
    settings = ClipEvalSettings(**{**values(ClipEvalSettings, args), "split": split})
    evaluation = evaluate_clip(model, processor, dataset_dict, settings)
    out = args.out or Path(args.model) / f"eval-{split}"
    write_report(evaluation, dataset_dict[split], settings, out, {"model": str(args.model), "dataset": str(args.dataset)})
    print(markdown_table(evaluation.report))
    print(f"Report, table and plots in {out}")
    if args.card:
        from ..evaluation.clip_report import card_results
        from ..hub.cards import write_card_from_report

        print(f"Model card: {write_card_from_report(args, 'clip', card_results(evaluation.report, args.dataset.name), out)}")
    return 0
