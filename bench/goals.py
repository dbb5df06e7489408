"""The issue's goals, each judged on the figures measured in this run."""

from __future__ import annotations

import torch

from .clip_step import StepResults, fastest_peer

# (dtype, the speed ratio over the fastest peer that ours must reach)
STEP_TARGETS = {"fp32": 1.0, "bf16": 1.1}
BF16_MFU_TARGET = 0.5
LIMBER_OVERHEAD_TARGET = 0.10


def goals_table(steps: StepResults | None, peaks: dict[torch.dtype, float], limber: dict[str, float] | None) -> str:
    rows: list[tuple[str, str, bool]] = []
    if steps is not None:
        for (preset, dtype), cases in steps.cases.items():
            ours, peer = cases[0], fastest_peer(cases)
            ratio = peer.median / ours.median
            rows.append((f"CLIP step {dtype}, {preset}: ours ≥ {STEP_TARGETS[dtype]}x the fastest peer",
                         f"{ratio:.2f}x ({peer.name})", ratio >= STEP_TARGETS[dtype]))
        preset = next(iter(steps.cases))[0]
        ours = steps.cases[(preset, "bf16")][0]
        mfu = ours.flops / ours.median / peaks[torch.bfloat16]
        rows.append((f"CLIP step bf16, {preset}: ≥ {BF16_MFU_TARGET:.0%} of the measured bf16 matmul peak",
                     f"{mfu:.1%} ({ours.flops / ours.median / 1e9:.2f} of {peaks[torch.bfloat16] / 1e9:.2f} GFLOP/s)",
                     mfu >= BF16_MFU_TARGET))
    if limber is not None:
        overhead = limber["cached_over_lm"] - 1
        rows.append((f"LiMBeR step from cached features within {LIMBER_OVERHEAD_TARGET:.0%} of the frozen LM's step",
                     f"{overhead:+.1%}", overhead <= LIMBER_OVERHEAD_TARGET))
    lines = ["| goal | measured | met |", "|---|---:|:---:|"]
    lines += [f"| {goal} | {value} | {'yes' if met else '**no**'} |" for goal, value, met in rows]
    return "\n".join(lines)
