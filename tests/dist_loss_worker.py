"""Exactness check of `ContrastiveLoss` against a one-process full-batch reference.

`test_contrastive_loss.py` imports it for the one-process helpers and launches it as
`python -m torch.distributed.run --nproc_per_node=N tests/dist_loss_worker.py OUT`: every rank
then runs one forward/backward of two tiny DDP-wrapped towers on its shard of one global batch
and writes `OUT/rank{r}.json` with, per case, the relative error of the loss value and of the
DDP-averaged gradients against the full-batch reference that every rank also computes.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from hf_limber.training import ContrastiveLoss

IN_DIM, EMBED_DIM, GLOBAL_BATCH = 6, 5, 24
CASES = [("global", 1), ("local", 1), ("chunked", 7), ("chunked", 1), ("chunked", 64)]
OBJECTIVES = ("softmax", "sigmoid")


class TwoTowers(nn.Module):
    """A minimal dual encoder: one linear layer per modality and CLIP's learnable temperature; for the
    sigmoid objective also SigLIP's learnable bias (its scale and bias set so that the logits straddle 0)."""

    def __init__(self, objective: str = "softmax") -> None:
        super().__init__()
        self.image, self.text = nn.Linear(IN_DIM, EMBED_DIM), nn.Linear(IN_DIM, EMBED_DIM)
        sigmoid = objective == "sigmoid"
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0) if sigmoid else math.log(1 / 0.07)))
        self.bias = nn.Parameter(torch.tensor(-2.0)) if sigmoid else None

    def forward(self, images: Tensor, texts: Tensor) -> tuple[Tensor, ...]:
        outputs = F.normalize(self.image(images), dim=-1), F.normalize(self.text(texts), dim=-1), self.log_scale.exp()
        return outputs if self.bias is None else (*outputs, self.bias)


def make_problem(dtype: torch.dtype, seed: int = 0, objective: str = "softmax") -> tuple[TwoTowers, Tensor, Tensor]:
    """The same towers and global batch on every rank (seeded)."""
    torch.manual_seed(seed)
    model = TwoTowers(objective).to(dtype)
    return model, torch.randn(GLOBAL_BATCH, IN_DIM, dtype=dtype), torch.randn(GLOBAL_BATCH, IN_DIM, dtype=dtype)


def naive_clip_loss(image: Tensor, text: Tensor, scale: Tensor) -> Tensor:
    """The textbook full-batch loss, written independently of the module under test."""
    logits = scale * image @ text.T
    labels = torch.arange(len(image))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def naive_siglip_loss(image: Tensor, text: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
    """The paper's pseudo-code: −Σ log σ(labels ⊙ logits) / B, labels 2I − 1, over the full batch."""
    logits = scale * image @ text.T + bias
    labels = 2 * torch.eye(len(image), dtype=logits.dtype) - 1
    return -F.logsigmoid(labels * logits).sum() / len(image)


REFERENCE = {"softmax": naive_clip_loss, "sigmoid": naive_siglip_loss}


def loss_and_grads(
    model: nn.Module, images: Tensor, texts: Tensor, loss_fn: Callable[[Tensor, Tensor, Tensor], Tensor]
) -> dict[str, Tensor]:
    """The loss value and every parameter's gradient (names without DDP's `module.` prefix)."""
    model.zero_grad()
    loss = loss_fn(*model(images, texts))
    loss.backward()
    grads = {name.removeprefix("module."): p.grad.detach().clone() for name, p in model.named_parameters()}
    return {"loss": loss.detach()} | grads


def relative_errors(got: dict[str, Tensor], want: dict[str, Tensor]) -> dict[str, float]:
    """max|got − want| / max|want| per entry (normwise, so near-zero entries cannot blow it up)."""
    return {name: float((got[name] - want[name]).abs().max() / want[name].abs().max()) for name in want}


def biased_local_loss(image: Tensor, text: Tensor, scale: Tensor) -> Tensor:
    """Negative control: open_clip's local loss with a gradient-free gather, which ContrastiveLoss forbids.

    The comparison must flag it, otherwise it could not flag a real bug either.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    gathered = [[torch.empty_like(x) for _ in range(world)] for x in (image, text)]
    dist.all_gather(gathered[0], image.detach())
    dist.all_gather(gathered[1], text.detach())
    all_images, all_texts = torch.cat(gathered[0]), torch.cat(gathered[1])
    labels = torch.arange(len(image)) + rank * len(image)
    return (F.cross_entropy(scale * image @ all_texts.T, labels) + F.cross_entropy(scale * text @ all_images.T, labels)) / 2


def run_distributed(out_dir: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    results = {}
    for dtype, objective in [(dtype, objective) for dtype in (torch.float64, torch.float32) for objective in OBJECTIVES]:
        model, images, texts = make_problem(dtype, objective=objective)
        dtype_name = str(dtype).removeprefix("torch.")
        reference = loss_and_grads(model, images, texts, REFERENCE[objective])
        for sharding in ("even", "uneven"):
            # uneven: rank r holds a different number of rows (the last batch of an epoch).
            shift = 3 if sharding == "uneven" else 0
            bounds = [0] + [GLOBAL_BATCH * r // world + (shift if r < world else 0) for r in range(1, world + 1)]
            rows = slice(bounds[rank], bounds[rank + 1])
            for mode, block in CASES:
                ddp = DistributedDataParallel(copy.deepcopy(model))
                loss = ContrastiveLoss(mode, block_size=block, objective=objective)
                got = loss_and_grads(ddp, images[rows], texts[rows], loss)
                key = f"{dtype_name}/{objective}/{sharding}/{mode}" + (f"/block{block}" if mode == "chunked" else "")
                results[key] = relative_errors(got, reference)
            if sharding == "even" and objective == "softmax":
                ddp = DistributedDataParallel(copy.deepcopy(model))
                got = loss_and_grads(ddp, images[rows], texts[rows], biased_local_loss)
                results[f"{dtype_name}/even/control-biased-local"] = relative_errors(got, reference)
    (out_dir / f"rank{rank}.json").write_text(json.dumps(results, indent=1))
    dist.destroy_process_group()


if __name__ == "__main__":
    run_distributed(Path(sys.argv[1]))
