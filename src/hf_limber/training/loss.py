"""CLIP's and SigLIP's contrastive losses, exact under data parallelism, optionally memory-bounded.

For a global batch of B pairs with L2-normalised embeddings x_i (image) and y_i (text)
and the logit-scale multiplier s = exp(logit_scale) (the inverse temperature), CLIP's
("softmax") loss is

    L = 1/B Σ_i ½ (ℓ_i^{i→t} + ℓ_i^{t→i}),
    ℓ_i^{i→t} = LSE_j(s x_i·y_j) − s x_i·y_i,    ℓ_i^{t→i} = LSE_j(s y_i·x_j) − s x_i·y_i,

with every LSE running over all B columns, i.e. over the batches of every rank. SigLIP's
("sigmoid", Zhai et al. 2023) loss scores every pair on its own, with a learnable bias b:

    L = −1/B Σ_i Σ_j log σ(z_ij (s x_i·y_j + b)),    z_ii = +1, z_ij = −1 for i ≠ j,

again over all B² pairs of the global batch. The three modes of `ContrastiveLoss` compute the
same L for either objective; they differ only in memory per rank.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

from .distributed import all_gather_with_grad, gather_sizes, rank_and_world_size

Mode = Literal["global", "local", "chunked"]
MODES: tuple[str, ...] = get_args(Mode)
Objective = Literal["softmax", "sigmoid"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)
# The one default, for `ContrastiveLoss` and `ContrastiveTrainingArguments.loss_mode` alike. "local" is exact,
# needs O(b·B) memory per rank instead of "global"'s O(B²), and at batches that fit it runs ~1.3x faster
# than "chunked" (bench/RESULTS.md, one process, B = 1024 and 4096); "chunked" is for batches whose b × B
# logits do not fit.
DEFAULT_MODE: Mode = "local"


class _BlockwiseLogSumExp(torch.autograd.Function):
    """`lse_i = log Σ_j exp(s · q_i·k_j)` over all rows j of `k`, holding one `len(q) × block` tile at a time.

    Forward merges the tiles' LSEs online (`logaddexp`) and saves only q, k, s and the
    b-vector lse. Backward recomputes each tile as softmax weights `p_ij = exp(s q_i·k_j − lse_i)`
    and accumulates the exact gradients (g = ∂loss/∂lse)

        ∂/∂q_i = s Σ_j g_i p_ij k_j,   ∂/∂k_j = s Σ_i g_i p_ij q_i,   ∂/∂s = Σ_ij g_i p_ij q_i·k_j = Σ_i q_i · G_i,

    where G_i = Σ_j g_i p_ij k_j is the q-gradient before the factor s — so the scale's
    gradient needs no second tile. The same idea as blockwise attention / Inf-CL, in plain
    matmuls instead of a kernel. The exp/log work runs in at least float32 so that
    half-precision features do not lose the LSE.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, q: Tensor, k: Tensor, scale: Tensor, block_size: int) -> Tensor:
        acc_dtype = torch.promote_types(q.dtype, torch.float32)
        lse = q.new_full((q.shape[0],), float("-inf"), dtype=acc_dtype)
        for start in range(0, k.shape[0], block_size):
            tile = (q @ k[start : start + block_size].mT).to(acc_dtype).mul_(scale)
            # logsumexp in place: torch.logsumexp would allocate a second tile.
            tile_max = tile.amax(dim=1)
            tile_lse = tile.sub_(tile_max[:, None]).exp_().sum(dim=1).log_().add_(tile_max)
            lse = torch.logaddexp(lse, tile_lse)
        ctx.save_for_backward(q, k, scale, lse)
        ctx.block_size = block_size
        return lse

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_lse: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        q, k, scale, lse = ctx.saved_tensors
        # G sums over all blocks, so it accumulates in the LSE's precision.
        grad_q_unscaled, grad_k = torch.zeros_like(q, dtype=lse.dtype), torch.empty_like(k)
        for start in range(0, k.shape[0], ctx.block_size):
            k_block = k[start : start + ctx.block_size]
            weight = (q @ k_block.mT).to(lse.dtype).mul_(scale).sub_(lse[:, None]).exp_().mul_(grad_lse[:, None])
            weight = weight.to(q.dtype)  # g_i p_ij
            grad_q_unscaled += weight @ k_block
            grad_k[start : start + ctx.block_size] = weight.mT @ q
        grad_scale = torch.dot(q.to(lse.dtype).reshape(-1), grad_q_unscaled.view(-1))
        return grad_q_unscaled.mul_(scale).to(q.dtype), grad_k.mul_(scale), grad_scale.to(scale.dtype), None


class _BlockwiseSigmoidSum(torch.autograd.Function):
    """`Σ_ij softplus(−z_ij ℓ_ij)` with ℓ_ij = s q_i·k_j + b, holding one `len(q) × block` tile at a time.

    z_ij = +1 on the pairs (q_i, k_{first + i}) and −1 elsewhere, so each term is the pair's
    −log σ(z ℓ): the positives are flipped inside their tile rather than subtracted afterwards
    (softplus(ℓ) − ℓ cancels catastrophically once ℓ is large). Forward saves only q, k, s, b.
    Backward recomputes each tile's weights w_ij = g ∂/∂ℓ_ij = −g z_ij σ(−z_ij ℓ_ij) and accumulates

        ∂/∂q_i = s Σ_j w_ij k_j,   ∂/∂k_j = s Σ_i w_ij q_i,   ∂/∂s = Σ_i q_i · Σ_j w_ij k_j,   ∂/∂b = Σ_ij w_ij,

    the scale's gradient again from the q-gradient before the factor s (no second tile).
    """

    @staticmethod
    def forward(ctx: FunctionCtx, q: Tensor, k: Tensor, scale: Tensor, bias: Tensor, first: int,
                block_size: int) -> Tensor:
        acc_dtype = torch.promote_types(q.dtype, torch.float32)
        total = q.new_zeros((), dtype=acc_dtype)
        for start in range(0, k.shape[0], block_size):
            tile = _sigmoid_tile(q, k, scale, bias, first, start, block_size, acc_dtype)
            total += F.logsigmoid(tile.neg_()).sum().neg()  # softplus(u) = −log σ(−u), exact for any u
        ctx.save_for_backward(q, k, scale, bias)
        ctx.first, ctx.block_size, ctx.acc_dtype = first, block_size, acc_dtype
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_total: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, None, None]:
        q, k, scale, bias = ctx.saved_tensors
        grad_q_unscaled, grad_k = torch.zeros_like(q, dtype=ctx.acc_dtype), torch.empty_like(k)
        grad_bias = q.new_zeros((), dtype=ctx.acc_dtype)
        for start in range(0, k.shape[0], ctx.block_size):
            k_block = k[start : start + ctx.block_size]
            # u = −z ℓ; ∂softplus(u)/∂ℓ = −z σ(u): σ(u) with the positives' sign flipped back.
            weight = _sigmoid_tile(q, k, scale, bias, ctx.first, start, ctx.block_size, ctx.acc_dtype).sigmoid_()
            weight.mul_(grad_total)
            _flip_positives(weight, ctx.first, start)
            grad_bias += weight.sum()
            weight = weight.to(q.dtype)
            grad_q_unscaled += weight @ k_block
            grad_k[start : start + ctx.block_size] = weight.mT @ q
        grad_scale = torch.dot(q.to(ctx.acc_dtype).reshape(-1), grad_q_unscaled.view(-1))
        return (grad_q_unscaled.mul_(scale).to(q.dtype), grad_k.mul_(scale), grad_scale.to(scale.dtype),
                grad_bias.to(bias.dtype), None, None)


def _sigmoid_tile(q: Tensor, k: Tensor, scale: Tensor, bias: Tensor, first: int, start: int, block_size: int,
                  acc_dtype: torch.dtype) -> Tensor:
    """u = −z ℓ (ℓ, the positives negated) for rows q against columns k[start : start + block_size] (the argument of softplus)."""
    tile = (q @ k[start : start + block_size].mT).to(acc_dtype).mul_(scale).add_(bias)
    return _flip_positives(tile, first, start)


def _flip_positives(tile: Tensor, first: int, start: int) -> Tensor:
    """Negate, in place, the entries of the pairs (row i, column first + i) that fall in this tile."""
    rows = torch.arange(tile.shape[0], device=tile.device)
    columns = rows + (first - start)
    inside = (columns >= 0) & (columns < tile.shape[1])
    rows, columns = rows[inside], columns[inside]
    tile[rows, columns] = tile[rows, columns].neg()
    return tile


class ContrastiveLoss(nn.Module):
    """CLIP's symmetric InfoNCE loss or SigLIP's sigmoid loss over the global batch, exact alone and under
    `torch.distributed`.

    Args:
        mode: how the B × B similarity matrix is handled; every mode returns the same loss
            and the same gradients, only memory and speed differ (b = local, B = global batch):

            - ``"global"``: gather all features, build the full B × B logits on every rank.
              O(B²) memory per rank — the reference, and on one rank the fastest (one matrix
              serves both directions).
            - ``"local"``: each rank scores its own b rows against all B columns (softmax: both
              directions, open_clip's ``--local-loss --gather-with-grad``; sigmoid: its image rows
              against every text, which covers each pair once). O(b·B) = O(B²/N).
            - ``"chunked"``: like ``"local"`` but never materialises the b × B logits: the
              columns are visited in blocks (softmax: with an online log-sum-exp), and the backward
              recomputes the blocks. O(b · block_size + B · D) memory for 4/3 of ``"local"``'s
              matmul work: memory no longer limits the batch.

            The default is ``DEFAULT_MODE`` (``"local"``), shared with the trainer's ``loss_mode``.
        block_size: columns per block in ``"chunked"`` mode (ignored otherwise); need not
            divide the batch.
        group: process group to gather over; the default group when None. Without an
            initialised process group the loss is the ordinary single-process loss.
        objective: ``"softmax"`` (CLIP) or ``"sigmoid"`` (SigLIP, Zhai et al. 2023: the sum over all
            B² pairs of −log σ(z_ij (s x_i·y_j + b)), divided by B).

    Inputs are ``image_embeds`` and ``text_embeds`` (b × D, L2-normalised, row i of one
    paired with row i of the other), ``logit_scale_multiplier``, exp(logit_scale), the factor on
    the similarities (a one-element tensor carrying its gradient), and for the sigmoid objective
    ``logit_bias`` (one element; None means 0). Ranks may hold different b.
    Non-finite inputs and an empty batch are errors, not a NaN loss: the check reads one scalar per
    call, a host sync the Trainer's own NaN/inf logging filter already makes every step.

    Gradient convention (why the per-rank loss looks the way it does): DDP/FSDP *average*
    parameter gradients over the N ranks, and the autograd all-gather's backward *sums*
    onto each rank's own rows the gradients every rank's loss puts on them. So if rank r
    backpropagates L_r, the averaged parameter gradient is ∂(Σ_r L_r)/∂θ / N, and it equals
    the single-process full-batch gradient ∂L/∂θ exactly when Σ_r L_r = N·L. ``"global"``
    backpropagates L itself on every rank; ``"local"``/``"chunked"`` backpropagate
    L_r = (N/B) × (the terms of the local rows: ½(ℓ_i^{i→t} + ℓ_i^{t→i}), or the sigmoid terms of
    the pairs (i local, all j)) — for equal shards the mean over the local rows. The same average
    makes the multiplier's and the bias's gradients exact: mean_r ∂L_r/∂s = ∂L/∂s.
    Consequences: (1) the *value* returned on every rank is the global L (the local modes add
    the detached difference, found with one scalar all-reduce), so logs match a one-process
    run; (2) raw gradients on the feature tensors of one rank are N × ∂L/∂features — only
    after DDP's averaging do parameter gradients equal the one-process ones. Summing instead
    of averaging gradients across ranks would make them N × too large.

    There is deliberately no way to select open_clip's "local loss without gradient
    through the gather": it drops the gradient of every sample as a negative and is biased.
    """

    def __init__(self, mode: Mode = DEFAULT_MODE, block_size: int = 1024, group: dist.ProcessGroup | None = None,
                 *, objective: Objective = "softmax") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"ContrastiveLoss mode must be one of {MODES}, got {mode!r}.")
        if objective not in OBJECTIVES:
            raise ValueError(f"ContrastiveLoss objective must be one of {OBJECTIVES}, got {objective!r}.")
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be a positive int (columns per block), got {block_size!r}.")
        self.mode, self.block_size, self.group, self.objective = mode, block_size, group, objective

    def extra_repr(self) -> str:
        return (f"objective={self.objective!r}, mode={self.mode!r}"
                + (f", block_size={self.block_size}" if self.mode == "chunked" else ""))

    def forward(self, image_embeds: Tensor, text_embeds: Tensor, logit_scale_multiplier: Tensor,
                logit_bias: Tensor | None = None) -> Tensor:
        loss = self._loss(image_embeds, text_embeds, logit_scale_multiplier, logit_bias)
        if not torch.isfinite(loss.detach()).item():
            _raise_not_finite(image_embeds=image_embeds, text_embeds=text_embeds,
                              logit_scale_multiplier=logit_scale_multiplier,
                              **({"logit_bias": logit_bias} if logit_bias is not None else {}))
        return loss

    def _loss(self, image_embeds: Tensor, text_embeds: Tensor, logit_scale_multiplier: Tensor,
              logit_bias: Tensor | None) -> Tensor:
        if image_embeds.ndim != 2 or image_embeds.shape != text_embeds.shape:
            raise ValueError(
                "image_embeds and text_embeds must both be (batch, dim) with row i of one paired to row i of "
                f"the other; got {tuple(image_embeds.shape)} and {tuple(text_embeds.shape)}."
            )
        if logit_scale_multiplier.numel() != 1:
            raise ValueError("logit_scale_multiplier must hold one value, exp(logit_scale); got shape "
                             f"{tuple(logit_scale_multiplier.shape)}.")
        if logit_bias is not None and (self.objective == "softmax" or logit_bias.numel() != 1):
            raise ValueError(
                f"logit_bias must be None for the softmax objective (a softmax ignores a shared shift, the bias "
                f"would get no gradient) and one value for the sigmoid objective; got shape "
                f"{tuple(logit_bias.shape)} with objective={self.objective!r}."
            )
        scale = logit_scale_multiplier.reshape(())
        rank, world_size = rank_and_world_size(self.group)
        rows = image_embeds.shape[0]
        sigmoid_local = self.objective == "sigmoid" and self.mode != "global"
        if world_size == 1:
            sizes, all_images, all_texts = [rows], image_embeds, text_embeds
        else:
            sizes = gather_sizes(rows, image_embeds.device, self.group)
            # The local sigmoid loss scores image rows against texts only: no image needs gathering.
            all_images = image_embeds if sigmoid_local else all_gather_with_grad(image_embeds, sizes, self.group)
            all_texts = all_gather_with_grad(text_embeds, sizes, self.group)
        global_batch, first_row = sum(sizes), sum(sizes[:rank])
        if global_batch == 0:
            raise ValueError("ContrastiveLoss got an empty batch (0 image-text pairs): the loss needs at least one "
                             "pair; check that the data loader yields rows (a filter or a wrong split can empty it).")

        if self.objective == "sigmoid":
            bias = logit_bias.reshape(()) if logit_bias is not None else scale.new_zeros(())
            if self.mode == "global":
                return _sigmoid_pairs_loss(scale * all_images @ all_texts.mT + bias, 0) / global_batch
            if self.mode == "local":
                summed = _sigmoid_pairs_loss(scale * image_embeds @ all_texts.mT + bias, first_row)
            else:
                summed = _BlockwiseSigmoidSum.apply(image_embeds, all_texts, scale, bias, first_row, self.block_size)
        elif self.mode == "global":
            logits = scale * all_images @ all_texts.mT
            labels = torch.arange(global_batch, device=logits.device)
            return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.mT, labels)) / 2
        elif self.mode == "local":
            labels = torch.arange(first_row, first_row + rows, device=image_embeds.device)
            image_to_text = F.cross_entropy(scale * image_embeds @ all_texts.mT, labels, reduction="sum")
            text_to_image = F.cross_entropy(scale * text_embeds @ all_images.mT, labels, reduction="sum")
            summed = (image_to_text + text_to_image) / 2
        else:
            lse_image_to_text = _BlockwiseLogSumExp.apply(image_embeds, all_texts, scale, self.block_size)
            lse_text_to_image = _BlockwiseLogSumExp.apply(text_embeds, all_images, scale, self.block_size)
            positives = scale * (image_embeds * text_embeds).sum(dim=1)
            summed = ((lse_image_to_text + lse_text_to_image) / 2 - positives).sum()

        loss = summed * (world_size / global_batch)
        if world_size == 1:
            return loss
        global_value = summed.detach().clone()
        dist.all_reduce(global_value, group=self.group)
        return loss + (global_value / global_batch - loss.detach())


def _sigmoid_pairs_loss(logits: Tensor, first: int) -> Tensor:
    """Σ_ij −log σ(z_ij ℓ_ij) over a rows × columns block whose pairs sit at (i, first + i)."""
    signs = torch.full_like(logits, -1.0)
    rows = torch.arange(logits.shape[0], device=logits.device)
    signs[rows, rows + first] = 1.0
    return -F.logsigmoid((signs * logits).to(torch.promote_types(logits.dtype, torch.float32))).sum()


def _raise_not_finite(**inputs: Tensor) -> None:
    """Name the input that made the loss NaN or infinite (or say that none of this process's did)."""
    for name, value in inputs.items():
        bad = ~torch.isfinite(value.detach())
        if bad.any():
            where = f" in row(s) {bad.nonzero()[:, 0].unique()[:5].tolist()}" if value.ndim == 2 else ""
            raise ValueError(
                f"ContrastiveLoss got NaN or inf in {name}{where}: the loss would be NaN. Usually the model "
                "diverged (lower the learning rate, use bf16 instead of fp16) or an input image or text is corrupt."
            )
    raise ValueError(
        "ContrastiveLoss is not finite although this process's inputs are: another process's features hold NaN "
        "or inf, or logit_scale_multiplier is so large that the logits overflow (clamp_logit_scale_ caps it)."
    )
