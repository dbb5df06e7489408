"""Precision that follows the hardware (`precision: auto`), and a warning for the one setting that
silently makes CPU training many times slower.

bf16 autocast pays off only where bfloat16 matmuls run natively (a GPU, or a CPU with AVX512-BF16 or
AMX). Elsewhere torch falls back to a generic kernel: on the AVX2 machine of bench/RESULTS.md a
ViT-B/32 training step ran ~22x slower per image in bf16 than in fp32 (pytorch/pytorch#146508 and
the CPU notes of torch's AMP docs describe the same fallback).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import TrainerCallback, TrainingArguments

logger = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bfloat16 matmuls natively (the check torch itself uses to pick oneDNN)."""
    is_supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(is_supported and is_supported())


PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class PrecisionArguments:
    """A training-arguments mixin: ``precision`` chooses bf16 autocast or fp32 for the recipes."""

    precision: str | None = field(default=None, metadata={
        "help": "auto: bf16 autocast where the device runs bfloat16 natively (a GPU, a CPU with AVX512-BF16 or "
        "AMX), else fp32; bf16; fp32; unset: the bf16 field as given"})


def choose_precision(args: Any) -> str:
    """Set ``args.bf16`` from ``args.precision`` (see PrecisionArguments); returns what runs and why,
    which the recipes log."""
    choice = getattr(args, "precision", None)
    if choice is not None and choice not in PRECISIONS:
        raise ValueError(f"precision: {choice!r} is not one of {PRECISIONS} (or leave it unset to use bf16 as given).")
    if choice == "auto":
        args.bf16 = _native_bf16(args)
    elif choice is not None:
        args.bf16 = choice == "bf16"
    return describe_precision(args)


def _on_cpu(args: Any) -> bool:
    return args.use_cpu or not torch.cuda.is_available()


def _native_bf16(args: Any) -> bool:
    return cpu_has_native_bf16() if _on_cpu(args) else torch.cuda.is_bf16_supported()


def describe_precision(args: Any) -> str:
    """What a run with these training arguments computes in, and why (the line model cards show)."""
    device = f"CPU ({torch.backends.cpu.get_cpu_capability()})" if _on_cpu(args) else "GPU"
    where = "runs bfloat16 natively" if _native_bf16(args) else "emulates bfloat16"
    choice = getattr(args, "precision", None)
    return f"{'bf16 autocast' if args.bf16 else 'fp32'} (precision: {choice or 'as given'}; this {device} {where})"


def slow_bf16_message(args: TrainingArguments) -> str | None:
    """Why this run's bf16 setting will be slow, or None when it will not."""
    if not args.bf16 or args.device.type != "cpu" or cpu_has_native_bf16():
        return None
    return (
        f"bf16 autocast is on, but this CPU ({torch.backends.cpu.get_cpu_capability()}) has no native bfloat16 "
        "matmul (AVX512-BF16 or AMX): torch falls back to a slow kernel and training runs many times slower "
        "than in fp32 (bench/RESULTS.md measured ~22x for ViT-B/32). Set `bf16: false` (or pass --bf16 false) "
        "on this machine."
    )


class PrecisionCallback(TrainerCallback):
    """When training starts: warns once if bf16 will run on a CPU that emulates it, and writes the
    precision into the training log (`trainer_state.json`'s log_history), where model cards read it."""

    def on_train_begin(self, args: TrainingArguments, state: Any, control: Any, **kwargs: Any) -> None:
        message = slow_bf16_message(args)
        if message:
            logger.warning(message)
        state.log_history.append({"precision": describe_precision(args), "step": state.global_step})


def logged_precision(trainer_state: dict[str, Any]) -> str | None:
    """The precision a training run logged (the last, for a run resumed on another machine)."""
    entries = [entry["precision"] for entry in trainer_state.get("log_history", []) if "precision" in entry]
    return entries[-1] if entries else None
