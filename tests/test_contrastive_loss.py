"""ContrastiveLoss: every mode equals the one-process full-batch loss and gradients, alone and on 2 ranks."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from hf_limber.training import ContrastiveLoss

WORKER = Path(__file__).with_name("dist_loss_worker.py")
_spec = importlib.util.spec_from_file_location("dist_loss_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

# float64 shows exactness; float32 only reorders sums, so it must stay within a few ulps of the batch.
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def _errors_against_reference(dtype: torch.dtype, objective: str = "softmax") -> dict[str, dict[str, float]]:
    model, images, texts = worker.make_problem(dtype, objective=objective)
    reference = worker.loss_and_grads(model, images, texts, worker.REFERENCE[objective])
    return {
        f"{mode}/block{block}": worker.relative_errors(
            worker.loss_and_grads(model, images, texts, ContrastiveLoss(mode, block_size=block, objective=objective)),
            reference,
        )
        for mode, block in worker.CASES
    }


@pytest.mark.parametrize("objective", worker.OBJECTIVES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_every_mode_matches_the_full_batch_reference_in_one_process(dtype: torch.dtype, objective: str) -> None:
    tolerance = TOLERANCE[str(dtype).removeprefix("torch.")]
    for case, errors in _errors_against_reference(dtype, objective).items():
        assert max(errors.values()) < tolerance, (case, errors)


def test_world_size_one_process_group_is_the_plain_loss() -> None:
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        errors = {f"{objective}/{case}": case_errors for objective in worker.OBJECTIVES
                  for case, case_errors in _errors_against_reference(torch.float64, objective).items()}
    finally:
        dist.destroy_process_group()
    for case, case_errors in errors.items():
        assert max(case_errors.values()) < TOLERANCE["float64"], (case, case_errors)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_under_ddp_match_the_one_process_full_batch(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
               str(WORKER), str(tmp_path)]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for rank in (0, 1):
        results = json.loads((tmp_path / f"rank{rank}.json").read_text())
        # dtypes x objectives x shardings x cases, and one control per dtype
        assert len(results) == 2 * (len(worker.OBJECTIVES) * 2 * len(worker.CASES) + 1)
        for case, errors in results.items():
            if "control" in case:
                # The gradient-free gather must be caught: its tower gradients are visibly off.
                assert max(errors.values()) > 1e-2, (rank, case, errors)
            else:
                assert max(errors.values()) < TOLERANCE[case.split("/")[0]], (rank, case, errors)


@pytest.mark.parametrize("mode", ["Global", "local_loss", "", None, "gather_with_grad"])
def test_invalid_mode_is_rejected(mode: object) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        ContrastiveLoss(mode)  # type: ignore[arg-type]


@pytest.mark.parametrize("block_size", [0, -4, 2.5, True])
def test_invalid_block_size_is_rejected(block_size: object) -> None:
    with pytest.raises(ValueError, match="block_size"):
        ContrastiveLoss("chunked", block_size=block_size)  # type: ignore[arg-type]


def test_mismatched_inputs_are_rejected() -> None:
    loss = ContrastiveLoss("local")
    with pytest.raises(ValueError, match="image_embeds and text_embeds"):
        loss(torch.randn(4, 8), torch.randn(5, 8), torch.tensor(10.0))
    with pytest.raises(ValueError, match="logit_scale"):
        loss(torch.randn(4, 8), torch.randn(4, 8), torch.ones(2))


@pytest.mark.parametrize("mode", ["global", "local", "chunked"])
def test_non_finite_inputs_are_named_not_returned_as_nan(mode: str) -> None:
    loss = ContrastiveLoss(mode, block_size=2)
    image, text = F.normalize(torch.randn(4, 8), dim=1), F.normalize(torch.randn(4, 8), dim=1)
    with pytest.raises(ValueError, match=r"NaN or inf in image_embeds in row\(s\) \[2\]"):
        loss(image.index_fill(0, torch.tensor([2]), float("nan")), text, torch.tensor(10.0))
    with pytest.raises(ValueError, match="NaN or inf in text_embeds"):
        loss(image, text.index_fill(1, torch.tensor([0]), float("inf")), torch.tensor(10.0))
    with pytest.raises(ValueError, match="NaN or inf in logit_scale_multiplier"):
        loss(image, text, torch.tensor(float("nan")))
    assert torch.isfinite(loss(image, text, torch.tensor(10.0)))


@pytest.mark.parametrize("mode", ["global", "local", "chunked"])
def test_an_empty_batch_fails_clearly(mode: str) -> None:
    with pytest.raises(ValueError, match="empty batch"):
        ContrastiveLoss(mode)(torch.zeros(0, 8), torch.zeros(0, 8), torch.tensor(10.0))


class _LargestTensor(TorchDispatchMode):
    """Records the element count of the largest tensor any aten op produces (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def _largest_tensor(mode: str, batch: int, dim: int, block: int, objective: str = "softmax") -> int:
    image = F.normalize(torch.randn(batch, dim), dim=1).requires_grad_()
    text = F.normalize(torch.randn(batch, dim), dim=1).requires_grad_()
    scale = torch.tensor(14.3, requires_grad=True)
    bias = torch.tensor(-10.0, requires_grad=True) if objective == "sigmoid" else None
    with _LargestTensor() as recorder:
        ContrastiveLoss(mode, block_size=block, objective=objective)(image, text, scale, bias).backward()
    return recorder.largest


@pytest.mark.parametrize("objective", ["softmax", "sigmoid"])
def test_chunked_never_materialises_the_rows_by_columns_logits(objective: str) -> None:
    batch, dim, block = 96, 16, 24  # b·block = 2304 > B·D = 1536, b·B = 9216
    assert _largest_tensor("chunked", batch, dim, block, objective) <= batch * block
    # Teeth: the same recorder sees the full logits of the local mode.
    assert _largest_tensor("local", batch, dim, block, objective) >= batch * batch


def test_blockwise_logsumexp_passes_gradcheck() -> None:
    from hf_limber.training.loss import _BlockwiseLogSumExp

    q = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q, k, s: _BlockwiseLogSumExp.apply(q, k, s, 3), (q, k, scale))


def test_blockwise_sigmoid_sum_passes_gradcheck() -> None:
    from hf_limber.training.loss import _BlockwiseSigmoidSum

    q = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-1.5, dtype=torch.float64, requires_grad=True)
    for first in (0, 2, 4):  # the pairs' diagonal starts inside a block, across two blocks, in the last one
        assert torch.autograd.gradcheck(lambda q, k, s, b: _BlockwiseSigmoidSum.apply(q, k, s, b, first, 3),
                                        (q, k, scale, bias))


@pytest.mark.parametrize("mode", ["global", "local", "chunked"])
def test_sigmoid_loss_keeps_its_precision_on_confident_pairs(mode: str) -> None:
    # A trained model: positives at ℓ = s·cos + b ≈ 90, negatives at ≈ −10, so the loss is ~1e-3 and
    # the positives' terms written as softplus(ℓ) − ℓ would lose it to float32 rounding of ℓ.
    text = F.normalize(torch.eye(16, 32, dtype=torch.float64) + 1e-3 * torch.randn(16, 32, dtype=torch.float64), dim=1)
    image = F.normalize(text + 1e-3 * torch.randn_like(text), dim=1)
    scale, bias = torch.tensor(100.0, dtype=torch.float64), torch.tensor(-10.0, dtype=torch.float64)
    exact = worker.naive_siglip_loss(image, text, scale, bias)
    got = ContrastiveLoss(mode, block_size=5, objective="sigmoid")(image.float(), text.float(), scale.float(), bias.float())
    torch.testing.assert_close(got.double(), exact, rtol=1e-4, atol=0)


def test_sigmoid_objective_and_bias_are_checked() -> None:
    with pytest.raises(ValueError, match="objective must be one of"):
        ContrastiveLoss(objective="siglip")  # type: ignore[arg-type]
    image, text = F.normalize(torch.randn(4, 8), dim=1), F.normalize(torch.randn(4, 8), dim=1)
    with pytest.raises(ValueError, match="logit_bias must be None for the softmax objective"):
        ContrastiveLoss()(image, text, torch.tensor(10.0), torch.tensor(-10.0))
    with pytest.raises(ValueError, match="NaN or inf in logit_bias"):
        ContrastiveLoss(objective="sigmoid")(image, text, torch.tensor(10.0), torch.tensor(float("nan")))
    # Without a bias the sigmoid loss is the paper's with b = 0.
    torch.testing.assert_close(ContrastiveLoss(objective="sigmoid")(image, text, torch.tensor(10.0)),
                               worker.naive_siglip_loss(image, text, torch.tensor(10.0), torch.tensor(0.0)))


def test_bfloat16_features_give_the_float32_loss_closely() -> None:
    image = F.normalize(torch.randn(64, 32), dim=1)
    text = F.normalize(torch.randn(64, 32), dim=1)
    scale = torch.tensor(50.0)
    exact = ContrastiveLoss("global")(image, text, scale)
    low = ContrastiveLoss("chunked", block_size=10)(image.bfloat16(), text.bfloat16(), scale)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, exact, rtol=2e-2, atol=0)
