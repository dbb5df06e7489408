"""CLIP embeddings on the CPU through ONNX Runtime.

- `export_onnx` writes a `ClipModel`'s two encoders as `image_encoder.onnx` (pixels -> image embedding) and
  `text_encoder.onnx` (token ids and attention mask -> text embedding), batch and text length dynamic, in fp32 or
  with int8 weights, beside the model's processor and `onnx_export.json`, which says what was exported.
- `OnnxClipModel.from_pretrained(folder)` runs them with `ClipModel`'s embedding API (`get_image_features`,
  `get_text_features`, `logit_scale`), so the evaluation code (`ZeroShotClassifier`, `embed_images`) takes it.

The graphs come from torch.onnx's dynamo exporter (`torch.export`). The text tower puts each row's real tokens
first with a *stable* argsort (see `real_tokens_first`), which no exporter translates: here it becomes ONNX
`TopK`, whose ties keep input order by the operator's specification. The TorchScript exporter refuses that sort
outright, so it is no fallback. The embeddings are the projected, unnormalised ones, as `get_*_features` return.

Needs the `onnx` extra (`pip install 'hf_limber[onnx]'`: onnx, onnxscript, onnxruntime), imported only when used.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import os
import secrets
import shutil
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PretrainedConfig
from transformers.modeling_outputs import BaseModelOutputWithPooling

from .configuration_clip import ClipConfig
from .export import ExportRefused, load_for_export, refuse_occupied
from .modeling_clip import ClipModel
from .processing_clip import ClipProcessor

IMAGE_FILE = "image_encoder.onnx"
TEXT_FILE = "text_encoder.onnx"
MANIFEST_FILE = "onnx_export.json"
OPSET = 18
# Dynamic quantisation: the weights of every MatMul/Gemm stored as int8, activations quantised per call.
# Measured on an AVX2 CPU (one thread, batch 8, random weights): signed weights (QInt8) ran ViT-B/32 1.3x
# (images) and 1.2x (texts) faster than unsigned (QUInt8), at the same cosine to fp32 (0.9998 and 0.9987).
# Convolutions stay fp32: with QInt8 weights RN50's image encoder took 3.2x as long as fp32 (ConvInteger),
# with QUInt8 0.92x, within the noise.
INT8_OPS = ("MatMul", "Gemm")
INT8_WEIGHT_TYPE = "QInt8"


def require(module: str) -> ModuleType:
    """`module`, or an ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{module} is needed to export or run CLIP through ONNX Runtime, and is not installed: "
                          "pip install 'hf_limber[onnx]' (onnx, onnxscript, onnxruntime).") from error


def _pooled(output: Any) -> torch.Tensor:
    # Ours and transformers 5 return an output whose pooler_output is the projected embedding.
    return output if torch.is_tensor(output) else output.pooler_output


class ImageEmbedding(nn.Module):
    """pixel_values -> the image embedding `get_image_features` pools (ours, or transformers' CLIPModel)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return _pooled(self.model.get_image_features(pixel_values=pixel_values))


class TextEmbedding(nn.Module):
    """(input_ids, attention_mask) -> the text embedding `get_text_features` pools."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return _pooled(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


def _stable_sort(self: Any, *, stable: bool | None = None, dim: int = -1, descending: bool = False) -> tuple[Any, Any]:
    """aten.sort.stable as ONNX TopK over the whole axis: TopK keeps the input order of equal values."""
    op = require("onnxscript").opset18
    length = op.Reshape(op.Gather(op.Shape(self), dim, axis=0), op.Constant(value_ints=[1]))
    # ORT's TopK takes no 8-bit input (the mask arrives as uint8): sort int32, give the values back in kind.
    values, indices = op.TopK(op.Cast(self, to=6), length, axis=dim, largest=descending, sorted=True)
    return op.CastLike(values, self), indices


def export_encoders(model: nn.Module, folder: str | Path, image_size: int, max_text_length: int) -> None:
    """`model`'s image and text embeddings as IMAGE_FILE and TEXT_FILE in `folder`, fp32, with a dynamic batch
    axis and a dynamic text length (up to `max_text_length`). `model` is ours or transformers' CLIPModel."""
    require("onnxscript")
    require("onnx")
    folder = Path(folder)
    model = _float32_on_cpu(model)
    # torch.export specialises an axis whose example size is 0 or 1: the examples have two of each.
    pixels = torch.zeros(2, 3, image_size, image_size)
    ids = torch.ones(2, max_text_length, dtype=torch.long)
    batch = torch.export.Dim("batch")
    length = torch.export.Dim("text_length", max=max_text_length)
    with warnings.catch_warnings():
        # Naming each shared axis once per input is what the exporter asks for, and then warns about.
        warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
        _export(ImageEmbedding(model), (pixels,), folder / IMAGE_FILE, ["pixel_values"], "image_embeds",
                {"pixel_values": {0: batch}})
        _export(TextEmbedding(model), (ids, torch.ones_like(ids)), folder / TEXT_FILE, ["input_ids", "attention_mask"],
                "text_embeds", {"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}})


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, inputs: list[str], output: str,
            dynamic_shapes: dict[str, dict[int, Any]]) -> None:
    program = torch.onnx.export(
        module.eval(), args, dynamo=True, input_names=inputs, output_names=[output], dynamic_shapes=dynamic_shapes,
        opset_version=OPSET, custom_translation_table={torch.ops.aten.sort.stable: _stable_sort}, verbose=False,
    )
    program.save(str(path))


def _float32_on_cpu(model: nn.Module) -> nn.Module:
    parameter = next(model.parameters())
    if parameter.dtype == torch.float32 and parameter.device.type == "cpu" and not model.training:
        return model
    return copy.deepcopy(model).float().cpu().eval()  # the caller's model stays as it is


def quantize_int8(source: Path, target: Path, weight_type: str = INT8_WEIGHT_TYPE) -> None:
    """`source` with int8 weights (onnxruntime's dynamic quantisation) written to `target`."""
    quantization = require("onnxruntime.quantization")
    root = logging.getLogger()
    root.addFilter(_without_preprocessing_advice)
    try:
        quantization.quantize_dynamic(source, target, op_types_to_quantize=list(INT8_OPS),
                                      weight_type=getattr(quantization.QuantType, weight_type))
    finally:
        root.removeFilter(_without_preprocessing_advice)


def _without_preprocessing_advice(record: logging.LogRecord) -> bool:
    # onnxruntime advises its pre-processing (quant_pre_process) on every call. Measured on ViT-B/32: the int8
    # image encoder ran no faster with it, and its shape inference fails on the text encoder.
    return "pre-processing before quantization" not in record.getMessage()


def export_onnx(model: ClipModel, out: str | Path, processor: ClipProcessor | None = None, int8: bool = False,
                overwrite: bool = False, source: str | None = None) -> Path:
    """Write `model`'s encoders (fp32, or int8 weights with `int8`), `processor` and MANIFEST_FILE to `out`.

    Everything is written to a temporary sibling folder first and moved into `out` once complete, so a failed
    export leaves an earlier one whole. An `out` holding files is refused (FileExistsError) unless `overwrite`;
    then files of the same name are replaced and others stay. `source` is recorded as where the model came from.
    """
    if not isinstance(model, ClipModel):
        raise ExportRefused(f"{type(model).__name__} is not a ClipModel: export_onnx writes hf_limber's dual encoder.")
    out = Path(out)
    refuse_occupied(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{secrets.token_hex(4)}.partial"
    staging.mkdir()  # not tempfile.mkdtemp: its private mode would become the export's once renamed
    try:
        config = model.config
        export_encoders(model, staging, config.vision_config.image_size, config.text_config.max_position_embeddings)
        if int8:
            for name in (IMAGE_FILE, TEXT_FILE):
                quantize_int8(staging / name, staging / f"int8-{name}")
                os.replace(staging / f"int8-{name}", staging / name)
        if processor is not None:
            processor.save_pretrained(staging)
        manifest = _manifest(model, int8, source or str(getattr(config, "_name_or_path", "") or "in memory"))
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
        _move_into(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _manifest(model: ClipModel, int8: bool, source: str) -> dict[str, Any]:
    config = model.config
    return {
        "format": "hf_limber CLIP encoders for ONNX Runtime",
        "precision": "int8" if int8 else "fp32",
        "quantization": {"method": "onnxruntime.quantization.quantize_dynamic", "weight_type": INT8_WEIGHT_TYPE,
                         "op_types": list(INT8_OPS)} if int8 else None,
        "opset": OPSET,
        "exporter": f"torch.onnx dynamo (torch {torch.__version__}, onnx {require('onnx').__version__})",
        "source": source,
        "tower": config.vision_config.tower,
        "files": {"image": {"file": IMAGE_FILE, "inputs": ["pixel_values"], "output": "image_embeds"},
                  "text": {"file": TEXT_FILE, "inputs": ["input_ids", "attention_mask"], "output": "text_embeds"}},
        "image_size": config.vision_config.image_size,
        "max_text_length": config.text_config.max_position_embeddings,
        "logit_scale": model.logit_scale.item(),
        "logit_bias": None if model.logit_bias is None else model.logit_bias.item(),
        "config": config.to_dict(),
    }


def _move_into(staging: Path, out: Path) -> None:
    """Put the complete export in place: the folder itself when `out` is new or empty, else file by file (each
    replace atomic), so no earlier file goes before its successor is there."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        staging.rename(out)
        return
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            target = out / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)


def load_for_onnx(src: str | Path) -> tuple[ClipModel, ClipProcessor | None]:
    """A saved hf_limber CLIP and its processor (`load_for_export`'s refusals, with advice for ONNX)."""
    if PretrainedConfig.get_config_dict(str(src))[0].get("model_type") == "clip":
        raise ExportRefused(f"{src} is a transformers CLIPModel folder: convert it first (hf-limber convert {src} "
                            "OUT), then export OUT to ONNX.")
    return load_for_export(src)


def describe_onnx_export(out: str | Path) -> str:
    manifest = json.loads((Path(out) / MANIFEST_FILE).read_text())
    return (f"{manifest['precision']} ONNX encoders of a {manifest['tower']} CLIP (opset {manifest['opset']}, "
            f"{manifest['exporter']}) in {out}")


class OnnxClipModel:
    """A CLIP exported by `export_onnx`, run by ONNX Runtime on the CPU, with `ClipModel`'s embedding API.

    `get_image_features` / `get_text_features` return a `BaseModelOutputWithPooling` whose `pooler_output` is the
    projected, unnormalised embedding (float32 torch tensors), as ours and transformers 5 do; nothing else is
    computed (no hidden states). `logit_scale` (and a SigLIP model's `logit_bias`) are the trained values.
    """

    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, folder: Path, manifest: dict[str, Any], image_session: Any, text_session: Any) -> None:
        self.folder = folder
        self.manifest = manifest
        self.config = ClipConfig.from_dict(manifest["config"])
        self.image_session = image_session
        self.text_session = text_session
        self.logit_scale = torch.tensor(manifest["logit_scale"], dtype=torch.float32)
        bias = manifest["logit_bias"]
        self.logit_bias = None if bias is None else torch.tensor(bias, dtype=torch.float32)

    @classmethod
    def from_pretrained(cls, folder: str | Path, num_threads: int | None = None) -> OnnxClipModel:
        """Load an export; `num_threads` intra-op threads per call (default: ONNX Runtime's, one per core)."""
        folder = Path(folder)
        if not (folder / MANIFEST_FILE).is_file():
            raise FileNotFoundError(f"{folder} holds no {MANIFEST_FILE}, so it is no ONNX export of ours: make one "
                                    f"with `hf-limber export MODEL {folder} --to onnx`.")
        ort = require("onnxruntime")
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1

        def session(kind: str) -> Any:
            path = folder / manifest["files"][kind]["file"]
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        return cls(folder, manifest, session("image"), session("text"))

    def eval(self) -> OnnxClipModel:
        return self  # inference only, like a module in eval mode

    def logit_scale_multiplier(self) -> torch.Tensor:
        return self.logit_scale.exp()

    def get_image_features(self, pixel_values: torch.Tensor | np.ndarray, **kwargs: Any) -> BaseModelOutputWithPooling:
        _refuse_options(kwargs)
        pixels = _numpy(pixel_values, np.float32)
        size = self.manifest["image_size"]
        if pixels.ndim != 4 or pixels.shape[1:] != (3, size, size):
            raise ValueError(f"pixel_values has shape {tuple(pixels.shape)}; the exported image encoder takes (batch, "
                             f"3, {size}, {size}). Prepare images with the export's processor "
                             "(ClipProcessor.from_pretrained on the same folder).")
        (embeds,) = self.image_session.run(None, {"pixel_values": pixels})
        return BaseModelOutputWithPooling(pooler_output=torch.from_numpy(embeds))

    def get_text_features(self, input_ids: torch.Tensor | np.ndarray,
                          attention_mask: torch.Tensor | np.ndarray | None = None,
                          **kwargs: Any) -> BaseModelOutputWithPooling:
        _refuse_options(kwargs)
        ids = _numpy(input_ids, np.int64)
        mask = np.ones_like(ids) if attention_mask is None else _numpy(attention_mask, np.int64)
        limit = self.manifest["max_text_length"]
        if ids.ndim != 2 or ids.shape[1] > limit or mask.shape != ids.shape:
            raise ValueError(f"input_ids has shape {tuple(ids.shape)} (attention_mask {tuple(mask.shape)}); the "
                             f"exported text encoder takes (batch, length <= {limit}) for both. Tokenize with the "
                             "export's processor, which truncates and keeps the end-of-text token.")
        (embeds,) = self.text_session.run(None, {"input_ids": ids, "attention_mask": mask})
        return BaseModelOutputWithPooling(pooler_output=torch.from_numpy(embeds))

    def __repr__(self) -> str:
        return f"OnnxClipModel({self.manifest['precision']} {self.manifest['tower']} CLIP from {self.folder})"


# Options of ClipModel's embedding methods that an export honours at their defaults only.
_DEFAULT_ONLY = {"output_hidden_states": (None, False), "output_attentions": (None, False),
                 "interpolate_pos_encoding": (False,), "return_dict": (None, True)}


def _refuse_options(kwargs: dict[str, Any]) -> None:
    for name, value in kwargs.items():
        if name not in _DEFAULT_ONLY:
            raise TypeError(f"OnnxClipModel does not take {name}=: the export computes the embeddings alone.")
        if value not in _DEFAULT_ONLY[name]:
            raise ValueError(f"{name}={value!r}: the ONNX export computes the pooled embeddings only, at the exported "
                             "image size; use the PyTorch model for hidden states, attentions or other sizes.")


def _numpy(values: torch.Tensor | np.ndarray, dtype: type) -> np.ndarray:
    array = values.detach().cpu().numpy() if torch.is_tensor(values) else np.asarray(values)
    return np.ascontiguousarray(array, dtype=dtype)
