"""Contrastive loss alone, one process: each ContrastiveLoss mode vs open_clip's ClipLoss, time and memory.

Memory is `peak_allocated` (the allocation-event replay of `contrastive_loss_memory.py`); that script
covers the large batches and two ranks in fresh processes (bench/RESULTS_contrastive_loss.md).
"""

from __future__ import annotations

from collections.abc import Callable

import open_clip
import torch
import torch.nn.functional as F

from hf_limber import ContrastiveLoss

from .timing import Case, compare, peak_allocated, spread

DIM = 512


def forward_backward(loss_fn: Callable[..., torch.Tensor], batch: int) -> Callable[[], None]:
    generator = torch.Generator().manual_seed(0)
    image = F.normalize(torch.randn(batch, DIM, generator=generator), dim=1).requires_grad_()
    text = F.normalize(torch.randn(batch, DIM, generator=generator), dim=1).requires_grad_()
    scale = torch.tensor(100.0, requires_grad=True)

    def run() -> None:
        loss_fn(image, text, scale).backward()
        image.grad = text.grad = scale.grad = None

    return run


def loss_section(batches: list[int], repeats: int) -> str:
    lines = [
        f"Embed dim {DIM}, float32, forward + backward of the loss alone on leaf features. *peak MiB*: largest "
        "net size of the tensors it allocates. *ours ÷ this*: this row's median time over ours-global's.", "",
        "| global B | loss | median ms | spread | peak MiB | ours-global ÷ this (speed) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for batch in batches:
        print(f"[loss] B={batch}", flush=True)
        cases = [Case(f"ours {mode}", forward_backward(ContrastiveLoss(mode), batch)) for mode in ("global", "local", "chunked")]
        cases.append(Case("open_clip ClipLoss", forward_backward(open_clip.ClipLoss(), batch)))
        compare(cases, repeats)
        reference = cases[0].median
        for case in cases:
            lines.append(f"| {batch} | {case.name} | {1e3 * case.median:,.1f} | {spread(case)} "
                         f"| {peak_allocated(case.run) / 2**20:,.0f} | {case.median / reference:.2f} |")
    return "\n".join(lines)
