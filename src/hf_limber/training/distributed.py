"""The few `torch.distributed` helpers the contrastive loss needs.

Everything here degrades to the single-process case when no process group is
initialised, so the same loss code runs alone, under `torchrun` and under `accelerate`.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol
import torch.nn.functional as F
from torch import Tensor

# torch 2.14 renamed the autograd all-gather; older releases only have the first name.
_all_gather_autograd = getattr(funcol, "all_gather_single_autograd", None) or funcol.all_gather_tensor_autograd


def rank_and_world_size(group: dist.ProcessGroup | None = None) -> tuple[int, int]:
    """This process's rank and the group size; `(0, 1)` when torch.distributed is not initialised."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def gather_sizes(rows: int, device: torch.device, group: dist.ProcessGroup | None = None) -> list[int]:
    """The local batch size of every rank, in rank order (a tiny collective, no autograd)."""
    mine = torch.tensor([rows], device=device)
    everyone = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(everyone, mine, group=group)
    return [int(size) for size in everyone]


def all_gather_with_grad(x: Tensor, sizes: list[int], group: dist.ProcessGroup | None = None) -> Tensor:
    """Concatenate the rows of `x` from every rank (rank order), keeping the autograd graph.

    The backward is a reduce-scatter with SUM: each rank receives, for its own rows, the
    sum of the gradients that *all* ranks' losses put on them. That sum is what makes a
    per-rank loss over local rows exact (see `ContrastiveLoss`). A plain `dist.all_gather`
    would cut the graph and silently drop the negatives' gradient.

    Ranks may hold different numbers of rows (`sizes`, from `gather_sizes`): the
    collective needs equal shapes, so rows are padded to the largest and the padding is
    sliced off again; padded rows get no gradient.
    """
    group = group if group is not None else dist.group.WORLD
    longest = max(sizes)
    padded = F.pad(x, (0, 0, 0, longest - x.shape[0])) if x.shape[0] < longest else x
    # Waiting turns the lazy AsyncCollectiveTensor into a plain tensor (still in the graph),
    # so autograd saves, hooks and custom Functions downstream see an ordinary tensor.
    gathered = funcol.wait_tensor(_all_gather_autograd(padded.contiguous(), 0, group))
    if all(size == longest for size in sizes):
        return gathered
    return torch.cat([gathered[r * longest : r * longest + size] for r, size in enumerate(sizes)])
