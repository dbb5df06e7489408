"""Peak memory and time of `ContrastiveLoss` modes, global batch 1k … 64k, embed dim 512, 1 and 2 ranks.

Usage:  python bench/contrastive_loss_memory.py [--batches 1024 4096 32768] [--worlds 1 2]

Every (world size, global batch, mode) runs in fresh processes (plain python for one rank,
`torch.distributed.run` with gloo for two), so no allocator state leaks between configs. Each
process makes its b = B/N random L2-normalised features (leaf tensors, so only the loss is
measured), warms the kernels up on a small batch, then times one forward + backward.

Memory, per rank (the worst rank is reported), is the extra memory of one forward + backward:
- "peak": on CUDA `torch.cuda.max_memory_allocated()` minus the allocation before the loss; on
  CPU the same quantity rebuilt from the profiler's allocation events (`profile_memory=True`):
  every alloc/free of torch's CPU allocator replayed in order, the largest running total kept.
  This is the number the 5% goal is judged on: all tensors the loss creates (logits, softmax
  buffers, tiles, gathered features, gradients), nothing else.
- "RSS peak" (CPU only): the kernel's resident-set high-water mark, reset through
  `/proc/self/clear_refs` just before, minus VmRSS before. It also sees non-tensor memory
  (BLAS workspaces, gloo buffers). `MALLOC_MMAP_THRESHOLD_` is pinned at 1 MiB and
  `malloc_trim` runs first so freed tensors leave the resident set at once; what malloc
  might still retain can only inflate it.
- "saved": bytes autograd keeps for backward (saved_tensors_hooks, deduplicated by storage).
The loss and ‖∂L/∂image_embeds‖ are printed too, so one can see every mode computing the same thing.
Time is one forward + backward under the profiler (its per-op overhead is microseconds).

Configs are skipped, and listed as such, when their predicted memory (the previous batch
size's peak scaled by the growth of the logits, times the ranks sharing this machine) exceeds
85% of available RAM, or their predicted time (scaled by B²) exceeds --max-seconds. Results: printed and written to bench/RESULTS_contrastive_loss.md.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("global", "local", "chunked")
HERE = Path(__file__).resolve().parent


def _rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("MemAvailable not in /proc/meminfo")


def peak_of_allocation_events(profiler) -> int:
    """Largest net size of all tensors torch allocated since profiling began (replaying alloc/free events in order)."""
    events = sorted((e.start_ns(), e.nbytes()) for e in profiler.profiler.kineto_results.events() if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def measure(mode: str, batch: int, dim: int, block_size: int, out: Path) -> None:
    """One config inside this (possibly distributed) process; rank 0 writes the JSON."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    from hf_limber.training import ContrastiveLoss
    from hf_limber.training.distributed import rank_and_world_size

    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    rank, world = rank_and_world_size()
    device = torch.device("cuda", rank) if torch.cuda.is_available() else torch.device("cpu")
    torch.manual_seed(rank)
    image = F.normalize(torch.randn(batch // world, dim, device=device), dim=1).requires_grad_()
    text = F.normalize(torch.randn(batch // world, dim, device=device), dim=1).requires_grad_()
    scale = torch.tensor(100.0, device=device, requires_grad=True)
    loss_fn = ContrastiveLoss(mode, block_size=block_size)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True):  # warm-up: profiler, kernels, threads, gloo
        loss_fn(image[:256], text[:256], scale).backward()
    image.grad = text.grad = scale.grad = None

    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        before = _rss_bytes("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
    if distributed:
        dist.barrier()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=device.type == "cpu") as profiler:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = loss_fn(image, text, scale)
        loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch_peak, rss_peak = torch.cuda.max_memory_allocated() - before, float("nan")
    else:
        torch_peak, rss_peak = peak_of_allocation_events(profiler), _rss_bytes("VmHWM") - before
    seconds = time.perf_counter() - start

    grad_norm_sq = (image.grad.double() / world).square().sum()
    stats = torch.tensor([torch_peak, rss_peak, sum(saved.values()), seconds], dtype=torch.float64)
    if distributed:
        dist.all_reduce(grad_norm_sq)
        dist.all_reduce(stats, op=dist.ReduceOp.MAX)  # the worst rank is what must fit
        dist.destroy_process_group()
    if rank == 0:
        out.write_text(json.dumps({
            "peak": stats[0].item(), "rss_peak": stats[1].item(), "saved": stats[2].item(), "seconds": stats[3].item(),
            "loss": loss.item(), "grad_norm": grad_norm_sq.sqrt().item(), "device": device.type,
        }))  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_config(mode: str, batch: int, world: int, dim: int, block_size: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        args = [__file__, "--measure", mode, str(batch), str(dim), str(block_size), str(out)]
        launcher = [] if world == 1 else ["-m", "torch.distributed.run", f"--nproc_per_node={world}", f"--master_port={_free_port()}"]
        threads = str(max(1, (os.cpu_count() or 1) // world))
        done = subprocess.run([sys.executable, *launcher, *args], check=False, env=os.environ | {"OMP_NUM_THREADS": threads, "MALLOC_MMAP_THRESHOLD_": str(2**20)},
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"exit status {done.returncode}\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def markdown(rows: list[dict], skipped: list[str], dim: int, block_size: int) -> str:
    def mib(nbytes: float) -> str:
        return "—" if math.isnan(nbytes) else f"{nbytes / 2**20:,.0f}"  # RSS is nan on CUDA

    lines = [
        f"# ContrastiveLoss memory and time (embed dim {dim}, chunked block {block_size}, float32)",
        "",
        (
            "Extra memory per rank (worst rank) during one forward + backward of the loss alone; method in "
            "`bench/contrastive_loss_memory.py`. *peak*: all torch allocations; *% of global*: peak / the global "
            "mode's peak at the same B and ranks († where that config was skipped: vs. the 1-rank global peak, "
            "which is what every rank of the global mode computes); *saved*: kept for backward."
        ),
        "",
        "| ranks | global B | mode | peak MiB | % of global | RSS peak MiB | saved MiB | time s | loss | ‖∂L/∂img‖ |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    global_peak = {(r["world"], r["batch"]): r["peak"] for r in rows if r["mode"] == "global"}
    for r in rows:
        base, mark = global_peak.get((r["world"], r["batch"])), ""
        if base is None and (1, r["batch"]) in global_peak:
            base, mark = global_peak[(1, r["batch"])], " †"
        share = f"{100 * r['peak'] / base:.1f}%{mark}" if base else "—"
        lines.append(
            f"| {r['world']} | {r['batch']} | {r['mode']} | {mib(r['peak'])} | {share} | {mib(r['rss_peak'])} "
            f"| {mib(r['saved'])} | {r['seconds']:.2f} | {r['loss']:.6f} | {r['grad_norm']:.6e} |"
        )
    if skipped:
        lines += ["", "Skipped (predicted to exceed this machine's RAM or the time limit, or failed):", ""]
        lines += [f"- {s}" for s in skipped]
    device = rows[0]["device"] if rows else "cpu"
    lines += ["", f"Device: {device}, {os.cpu_count()} cores; OMP threads = cores / ranks; one timed iteration per config."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1024 * 2**i for i in range(7)])
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--max-seconds", type=float, default=900, help="skip configs predicted to take longer")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS_contrastive_loss.md")
    args = parser.parse_args()

    rows, skipped = [], []
    budget = 0.85 * _available_bytes()
    for world in args.worlds:
        for mode in args.modes:
            previous: dict | None = None
            for batch in sorted(args.batches):
                if previous:
                    # Work grows as B² in every mode; memory as B² (global, local) or B (chunked).
                    growth = batch / previous["batch"]
                    memory = max(previous["peak"], previous["rss_peak"] if previous["device"] == "cpu" else 0)
                    memory *= (growth if mode == "chunked" else growth**2) * world
                    seconds = previous["seconds"] * growth**2
                    if memory > budget or seconds > args.max_seconds:
                        why = (f"{memory / 2**30:.1f} GiB for all ranks > {budget / 2**30:.1f} GiB usable" if memory > budget
                               else f"{seconds / 60:.0f} min > --max-seconds {args.max_seconds:.0f} s")  # fmt: skip
                        skipped.append(f"{mode}, B={batch}, {world} rank(s): predicted {why}")
                        continue
                try:
                    result = run_config(mode, batch, world, args.dim, args.block_size)
                except RuntimeError as error:  # e.g. killed for memory: record it, keep measuring the rest
                    skipped.append(f"{mode}, B={batch}, {world} rank(s): failed ({str(error).splitlines()[0]})")
                    continue
                previous = result | {"mode": mode, "batch": batch, "world": world}
                rows.append(previous)
                print(json.dumps(previous), flush=True)
    rows.sort(key=lambda r: (r["world"], r["batch"], MODES.index(r["mode"])))
    table = markdown(rows, skipped, args.dim, args.block_size)
    print(table)
    args.out.write_text(table)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        mode, batch, dim, block, out = sys.argv[2:7]
        measure(mode, int(batch), int(dim), int(block), Path(out))
    else:
        main()
