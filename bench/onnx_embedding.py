"""CLIP embeddings on the CPU: ONNX Runtime against eager PyTorch (issue 20, "fast where users run it").

Cases (random weights built from the presets; the same pixels, and the same full-context ids, 77 tokens for the
paper's presets, with their attention mask):
- eager fp32 in `torch.inference_mode`: ours (ClipModel), transformers' CLIPModel (ViT only: ours converted by
  `hf_limber.clip.export.to_transformers`, SDPA attention), open_clip (no mask: it pools at the largest id, the
  end-of-text token here);
- ONNX Runtime on the CPU: ours exported by `hf_limber.clip.onnx` and run through `OnnxClipModel`, fp32 and with
  int8 weights (the export's dynamic quantisation of the matmuls), and transformers' CLIPModel exported the same
  way (torch.onnx dynamo) and run through its bare sessions.

One thread count after the other in the same process: `torch.set_num_threads` and ONNX Runtime's intra-op
threads both set to it. The goal: ours through ONNX Runtime at least 2.5 times as fast as the fastest eager case.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from hf_limber import ClipConfig, ClipModel
from hf_limber.clip.export import to_transformers
from hf_limber.clip.onnx import (
    IMAGE_FILE, MANIFEST_FILE, TEXT_FILE, OnnxClipModel, export_encoders, export_onnx, quantize_int8, require,
)

from .clip_models import clip_inputs, open_clip_model
from .embedding import inference
from .report import comparison_table, cpu_name
from .timing import Case, compare, count_flops

GOAL = 2.5
ORT_INT8 = "ours, ONNX Runtime int8"
ORT_FP32 = "ours, ONNX Runtime fp32"
ORT_THEIRS = "transformers, ONNX Runtime fp32"
EAGER = ("ours, eager", "transformers, eager", "open_clip, eager")
ORDER = (*EAGER, ORT_FP32, ORT_INT8, ORT_THEIRS)


@dataclass(frozen=True)
class OnnxSizes:
    presets: list[str]
    batches: list[int]
    threads: list[int]
    repeats: int
    # Presets whose text tower is timed: RN50's is ViT-B/32's (width 512, 12 layers, 77 tokens) but for its
    # projection (1024 wide, not 512), so one of them says it for both when time is short.
    text_presets: list[str]


class SessionPair:
    """transformers' CLIPModel exported by `export_encoders`: the two ONNX Runtime sessions, called bare."""

    def __init__(self, folder: Path, threads: int) -> None:
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.image = ort.InferenceSession(str(folder / IMAGE_FILE), options, providers=["CPUExecutionProvider"])
        self.text = ort.InferenceSession(str(folder / TEXT_FILE), options, providers=["CPUExecutionProvider"])

    def embed_images(self, pixels: torch.Tensor) -> object:
        return self.image.run(None, {"pixel_values": pixels.numpy()})

    def embed_texts(self, ids: torch.Tensor, mask: torch.Tensor) -> object:
        return self.text.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})


def int8_copy(fp32: Path, out: Path) -> Path:
    """The int8 export of the model `fp32` holds, quantised from its files (as `export_onnx(int8=True)` does
    after exporting), so the benchmark exports each model once."""
    shutil.copytree(fp32, out)
    for name in (IMAGE_FILE, TEXT_FILE):
        quantize_int8(fp32 / name, out / name)
    manifest = json.loads((fp32 / MANIFEST_FILE).read_text())
    (out / MANIFEST_FILE).write_text(json.dumps({**manifest, "precision": "int8"}))
    return out


def onnx_section(sizes: OnnxSizes) -> str:
    """Tables per preset, kind, batch and thread count, and the goal's verdict for each."""
    verdicts = ["| preset | embedding | batch | threads | fastest eager | ORT fp32 ÷ it | ORT int8 ÷ it | "
                f"≥ {GOAL}x |", "|---|---|---:|---:|---|---:|---:|:---:|"]
    tables: list[str] = []
    previous = torch.get_num_threads()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for preset in sizes.presets:
                _preset_tables(preset, sizes, Path(tmp) / preset.replace("/", "-"), tables, verdicts)
    finally:
        torch.set_num_threads(previous)  # the sections after this one run on the run's own thread count
    machine = (f"CPU: {cpu_name()}; torch CPU capability {torch.backends.cpu.get_cpu_capability()}; onnxruntime "
               f"{require('onnxruntime').__version__}. Tables: *ours ÷ this* is relative to {ORT_INT8!r}; GFLOP are "
               "ours' eager model FLOPs for every row (no MFU: the int8 rows have no fp32 peak to be held to).")
    return "\n".join([machine, "", f"### Goal: ours through ONNX Runtime ≥ {GOAL}x the fastest eager case", "",
                      *verdicts, "", *tables])



def _preset_tables(preset: str, sizes: OnnxSizes, folder: Path, tables: list[str],
                   verdicts: list[str]) -> None:
    config = ClipConfig.from_preset(preset)
    mine = ClipModel(config).eval()
    theirs = to_transformers(mine) if config.vision_config.tower == "vit" else None
    open_model = open_clip_model(preset, config).eval()
    print(f"[onnx] {preset}: exporting", flush=True)
    ours_fp32 = export_onnx(mine, folder / "ours-fp32")
    ours_int8 = int8_copy(ours_fp32, folder / "ours-int8")
    if theirs is not None:
        (folder / "transformers").mkdir()
        export_encoders(theirs, folder / "transformers", config.vision_config.image_size,
                        config.text_config.max_position_embeddings)
    kinds = ("images", "texts") if preset in sizes.text_presets else ("images",)
    flops: dict[tuple[str, int], float] = {}
    for threads in sizes.threads:
        torch.set_num_threads(threads)
        runtime = {ORT_FP32: OnnxClipModel.from_pretrained(ours_fp32, num_threads=threads),
                   ORT_INT8: OnnxClipModel.from_pretrained(ours_int8, num_threads=threads)}
        their_sessions = SessionPair(folder / "transformers", threads) if theirs is not None else None
        for kind in kinds:
            for batch in sizes.batches:
                pixels, ids = clip_inputs(config, batch)
                mask = ids.ne(0).long()  # clip_inputs pads with 0 after the end-of-text token, and only there
                if kind == "images":
                    calls = {"ours, eager": lambda: mine.get_image_features(pixel_values=pixels),
                             "open_clip, eager": lambda: open_model.encode_image(pixels),
                             **{name: (lambda model=model: model.get_image_features(pixel_values=pixels))
                                for name, model in runtime.items()}}
                    if theirs is not None:
                        calls["transformers, eager"] = lambda: theirs.get_image_features(pixel_values=pixels)
                        calls[ORT_THEIRS] = lambda: their_sessions.embed_images(pixels)
                else:
                    calls = {"ours, eager": lambda: mine.get_text_features(input_ids=ids, attention_mask=mask),
                             "open_clip, eager": lambda: open_model.encode_text(ids),
                             **{name: (lambda model=model: model.get_text_features(input_ids=ids, attention_mask=mask))
                                for name, model in runtime.items()}}
                    if theirs is not None:
                        calls["transformers, eager"] = lambda: theirs.get_text_features(input_ids=ids,
                                                                                        attention_mask=mask)
                        calls[ORT_THEIRS] = lambda: their_sessions.embed_texts(ids, mask)
                print(f"[onnx] {preset} {kind}, batch {batch}, {threads} thread(s)", flush=True)
                cases = [Case(name, inference(calls[name]) if name in EAGER else calls[name], items=batch)
                         for name in ORDER if name in calls]
                warmup = 1
                if (kind, batch) not in flops:
                    # Ours' model FLOPs, for every row; counting them is ours' warm-up.
                    flops[(kind, batch)] = count_flops(cases[0].run)
                    for case in cases[1:]:
                        case.run()
                    warmup = 0
                for case in cases:
                    case.flops = flops[(kind, batch)]
                compare(cases, sizes.repeats, warmup=warmup)
                length = f" of {ids.shape[1]} tokens" if kind == "texts" else ""
                tables += [f"### {preset}, {batch} {kind}{length} per call, {threads} thread{'s' * (threads > 1)}", "",
                           comparison_table(cases, ORT_INT8, unit=f"{kind}/s"), ""]
                verdicts.append(_verdict(preset, kind, batch, threads, cases))


def _verdict(preset: str, kind: str, batch: int, threads: int, cases: list[Case]) -> str:
    by_name = {case.name: case for case in cases}
    fastest = min((case for case in cases if case.name in EAGER), key=lambda case: case.median)
    fp32, int8 = (fastest.median / by_name[name].median for name in (ORT_FP32, ORT_INT8))
    return (f"| {preset} | {kind} | {batch} | {threads} | {fastest.name.split(',')[0]} | {fp32:.2f}x | {int8:.2f}x "
            f"| {'yes' if max(fp32, int8) >= GOAL else '**no**'} |")
