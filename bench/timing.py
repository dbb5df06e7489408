"""Side-by-side timing: every case of a comparison runs in the same process, interleaved, after warm-up.

Timings on a shared 2-core machine drift with whatever else runs; interleaving the cases round by
round exposes all of them to the same drift, so their ratio stays meaningful even when the absolute
seconds do not.
"""

from __future__ import annotations

import gc
import signal
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from .contrastive_loss_memory import peak_of_allocation_events


@dataclass
class Case:
    """One contender: `run` does one unit of work (a training step, one embedding batch, ...).

    `items` is how many things one run handles (images, texts, tokens) for a rate column; `flops`
    the model FLOPs of one run for the FLOP/s and MFU columns.
    """

    name: str
    run: Callable[[], object]
    items: int | None = None
    flops: float | None = None
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def release(self) -> None:
        """Drop the work, and with it the models and optimiser state it holds; the figures stay."""
        self.run = _released


def _released() -> None:
    raise RuntimeError("this case was measured and released; build it again to rerun it")


_resumes = 0  # SIGCONTs received: this process was stopped and continued


def _count_resume(signum: int, frame: object) -> None:
    global _resumes
    _resumes += 1


def compare(cases: list[Case], repeats: int, warmup: int = 1, max_retries: int = 3) -> list[Case]:
    """Run every case `warmup` times, then `repeats` timed rounds; fills each case's `seconds`.

    Odd rounds go in reverse order so no case always follows the same neighbour (whose freed
    memory or cache contents it would inherit). Other jobs on this machine sometimes stop and later
    continue every busy process: a timed run during which that happened is run again.
    """
    signal.signal(signal.SIGCONT, _count_resume)
    for _ in range(warmup):
        for case in cases:
            case.run()
    for index in range(repeats):
        for case in cases if index % 2 == 0 else reversed(cases):
            for _ in range(max_retries + 1):
                gc.collect()  # a collection triggered inside a timed run would be charged to that case
                resumes, start = _resumes, time.perf_counter()
                case.run()
                seconds = time.perf_counter() - start
                if _resumes == resumes:
                    break
                print(f"  ({case.name}: the process was stopped during this run; timing it again)", flush=True)
            case.seconds.append(seconds)
    return cases


def spread(case: Case) -> str:
    """(max - min) / median of the timed rounds; nothing to show for a single round."""
    if len(case.seconds) < 2:
        return "—"
    return f"{100 * (max(case.seconds) - min(case.seconds)) / case.median:.0f}%"


def _cpu_sdpa(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


# torch's counter knows the CUDA attention kernels only; the CPU one would count as zero FLOPs.
CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward,
}


def count_flops(run: Callable[[], object]) -> float:
    """FLOPs of one call (matmuls, convolutions, attention; forward and any backward it runs)."""
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        run()
    return float(counter.get_total_flops())


def peak_allocated(run: Callable[[], object]) -> int:
    """Largest net size of the tensors `run` allocates (the profiler's alloc/free events replayed).

    Independent of what else the process holds, so it can be measured in the benchmark process.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        run()
    return peak_of_allocation_events(profiler)


def top_ops(run: Callable[[], object], rows: int = 12, by_shape: bool = True) -> str:
    """The profiler's table of the ops taking the most self CPU time in one call (markdown code block),
    one row per op and input shapes, or per op name (`by_shape=False`: each op's total)."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=by_shape) as profiler:
        run()
    table = profiler.key_averages(group_by_input_shape=by_shape).table(
        sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40, max_shapes_column_width=60
    )
    return "```\n" + table.strip() + "\n```"


def best_rate(work: float, run: Callable[[], object], tries: int) -> float:
    """work / the fastest of `tries` timed calls (after one untimed call)."""
    run()
    return work / min(_timed(run) for _ in range(tries))


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
