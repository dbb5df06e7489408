"""CLIP training step (forward, loss, backward, AdamW step): ours vs transformers vs open_clip, fp32 and bf16."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from hf_limber import ClipConfig

from .clip_models import Contender, adamw_like, clip_inputs, contenders, ours, ours_trainer_optimizer
from .report import comparison_table, speed_ratio
from .timing import Case, compare, count_flops


@dataclass
class StepResults:
    markdown: list[str] = field(default_factory=list)
    # (preset, dtype name) -> the cases as measured, for the goals table
    cases: dict[tuple[str, str], list[Case]] = field(default_factory=dict)


def fastest_peer(cases: list[Case]) -> Case:
    return min((case for case in cases if case.name != "ours"), key=lambda case: case.median)


def training_step(contender: Contender, pixels: torch.Tensor, ids: torch.Tensor, bf16: bool) -> Callable[[], None]:
    def step() -> None:
        # Autocast covers forward and loss only; backward runs in the dtypes autocast chose.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = contender.loss(pixels, ids)
        loss.backward()
        contender.optimizer.step()
        contender.optimizer.zero_grad(set_to_none=True)

    return step


def step_cases(players: list[Contender], config: ClipConfig, batch: int, bf16: bool) -> list[Case]:
    pixels, ids = clip_inputs(config, batch)
    cases = [Case(p.name, training_step(p, pixels, ids, bf16), items=batch) for p in players]
    # Every row gets ours' count as the model FLOPs: the counter sees the same architecture differently
    # per implementation (open_clip's attention pool computes queries ours skips, its inference attention
    # is a fused op the counter does not know). FLOPs do not depend on the dtype, so they are counted on
    # an fp32 step of the same shapes (a bf16 step is a minute long here); that step is ours' warm-up,
    # and each peer gets the same fp32 step as its own.
    flops = count_flops(training_step(players[0], pixels, ids, bf16=False))
    for player in players[1:]:
        training_step(player, pixels, ids, bf16=False)()
    for case in cases:
        case.flops = flops
    return cases


def clip_step_section(presets: list[str], batch: dict[str, int], repeats: dict[str, int],
                      peaks: dict[torch.dtype, float]) -> StepResults:
    """fp32 then bf16 for each preset; the fp32 rounds are the bf16 warm-up (same models, optimiser state)."""
    results = StepResults()
    for preset in presets:
        config = ClipConfig.from_preset(preset)
        players = contenders(preset)
        for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            print(f"[clip step] {preset} {dtype_name}: {', '.join(p.name for p in players)}", flush=True)
            cases = step_cases(players, config, batch[dtype_name], bf16=dtype_name == "bf16")
            # Warm-up: the FLOP-counting step (fp32), and for bf16 also the fp32 rounds on the same models.
            compare(cases, repeats[dtype_name], warmup=0)
            results.cases[(preset, dtype_name)] = cases
            peer = fastest_peer(cases)
            results.markdown += [
                f"### {preset}, {dtype_name}{' autocast' if dtype_name == 'bf16' else ''}, "
                f"batch {batch[dtype_name]} images + {batch[dtype_name]} texts",
                "",
                comparison_table(cases, "ours", peaks[dtype], unit="images/s"),
                "",
                f"ours vs fastest peer ({peer.name}): **{speed_ratio(cases, 'ours', peer.name):.2f}x**",
                "",
            ]
            for case in cases:
                case.release()
        del players
        gc.collect()
    return results


def adamw_section(preset: str, repeats: int) -> str:
    """One AdamW step over the full parameter set: ContrastiveTrainer's (fused, as transformers' default
    `optim`) vs the for-loop and foreach implementations of the same groups."""
    model = ours(preset).model
    for parameter in model.parameters():
        parameter.grad = torch.randn_like(parameter)
    shipped = ours_trainer_optimizer(model)
    optimizers = {
        "ContrastiveTrainer's (optim adamw_torch_fused, the default)": shipped,
        "for-loop (optim adamw_torch on CPU)": adamw_like(shipped.param_groups, foreach=False),
        "foreach=True": adamw_like(shipped.param_groups, foreach=True),
    }
    cases = compare([Case(name, opt.step) for name, opt in optimizers.items()], repeats)
    rows = [f"| {case.name} | {case.median:.2f} | {cases[0].median / case.median:.2f}x |" for case in cases]
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return "\n".join([
        f"AdamW step alone, {preset} ({params:.0f}M parameters), median of {repeats}:", "",
        "| optimizer | median s | speed vs ContrastiveTrainer's |", "|---|---:|---:|", *rows,
    ])
