"""The machine's measured matmul peak per dtype: the denominator of every MFU figure.

Square matmuls of a few sizes in all four operand layouts (plain or transposed views), the best
rate kept. The layouts matter on CPUs without native bf16: there torch's bf16 GEMM is emulated and
its speed depends strongly on which operand is transposed, so one layout alone would misstate the peak.
"""

from __future__ import annotations

import torch

from .timing import best_rate

LAYOUTS = ("NN", "NT", "TN", "TT")


def _operand(size: int, dtype: torch.dtype, transposed: bool) -> torch.Tensor:
    tensor = torch.randn(size, size).to(dtype)
    return tensor.t().contiguous().t() if transposed else tensor


def matmul_rates(dtype: torch.dtype, sizes: list[int], tries: int) -> dict[tuple[int, str], float]:
    """FLOP/s of `a @ b` for every (size, layout); layout letters say whether a and b are transposed views."""
    rates = {}
    for size in sizes:
        for layout in LAYOUTS:
            a, b = (_operand(size, dtype, letter == "T") for letter in layout)
            rates[(size, layout)] = best_rate(2 * size**3, lambda: a @ b, tries)
    return rates


def peak_section(sizes: dict[torch.dtype, list[int]], tries: int) -> tuple[dict[torch.dtype, float], str]:
    """Best measured FLOP/s per dtype, and the markdown table of every measurement."""
    peaks, lines = {}, []
    header = "| dtype | size | " + " | ".join(f"{layout} GFLOP/s" for layout in LAYOUTS) + " |"
    lines += [header, "|---|---:|" + "---:|" * len(LAYOUTS)]
    for dtype, dtype_sizes in sizes.items():
        rates = matmul_rates(dtype, dtype_sizes, tries)
        peaks[dtype] = max(rates.values())
        for size in dtype_sizes:
            cells = " | ".join(f"{rates[(size, layout)] / 1e9:.1f}" for layout in LAYOUTS)
            lines.append(f"| {str(dtype).removeprefix('torch.')} | {size} | {cells} |")
    summary = ", ".join(f"{str(d).removeprefix('torch.')} **{p / 1e9:.1f} GFLOP/s**" for d, p in peaks.items())
    text = (f"Measured peak (best of {tries} timed calls per cell, best cell per dtype): {summary}. "
            "Layout: N = contiguous operand, T = transposed view (`a @ b`, a and b in that order).\n\n"
            + "\n".join(lines))
    return peaks, text
