"""Run every benchmark against the peers and write bench/RESULTS.md.

    .venv/bin/python -m bench            # the full run (paper sizes), rewrites bench/RESULTS.md
    .venv/bin/python -m bench --quick    # small models, one round each: a smoke run, prints only

The thread count is fixed before torch is imported (OMP_NUM_THREADS and torch.set_num_threads). It is
one by default: on a machine whose other cores are kept busy by other jobs, every parallel op of a
2-thread run waits at OpenMP barriers for a descheduled thread. Measured here with other jobs running:
a ViT-B/32 fp32 forward+backward at batch 4 took 10.7-14.1 s with 2 threads and 4.3-5.0 s with 1; LM
decoding at batch 2, 30-39 s against 3.0-3.4 s. Pass --threads 2 on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

HERE = Path(__file__).resolve().parent
T = TypeVar("T")
SECTIONS = ("clip", "adamw", "embedding", "zero-shot", "onnx", "loss", "limber")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small models, one round: a smoke run (writes nothing)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1: see above)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run only these sections")
    parser.add_argument("--out", type=Path, help="results file (default: bench/RESULTS.md; none for --quick)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # Before torch loads: OpenMP reads this once, at start-up.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch
    import open_clip
    import transformers

    from . import clip_step, embedding, limber, loss_modes, onnx_embedding, peak
    from .goals import goals_table
    from .settings import FULL, QUICK

    torch.set_num_threads(args.threads)
    settings = QUICK if args.quick else FULL
    started, load_before = time.perf_counter(), os.getloadavg()
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}

    section_minutes: dict[str, float] = {}

    def run(name: str, section: Callable[[], T], markdown_of: Callable[[T], str] = str) -> T:
        begin = time.perf_counter()
        result = section()
        section_minutes[name] = (time.perf_counter() - begin) / 60
        # Shown at once, so a long run that dies late still leaves what it measured.
        print(f"[{name}] done in {section_minutes[name]:.1f} min\n{markdown_of(result)}", flush=True)
        return result

    peaks, peak_text = run("peak", lambda: peak.peak_section(
        {dtypes[d]: s for d, s in settings.peak_sizes.items()}, settings.peak_tries), lambda r: r[1])
    parts = ["## Machine peak (square matmuls)", "", peak_text, ""]
    step_results, limber_figures = None, None
    first = settings.clip_presets[0]
    if "clip" in args.only:
        step_results = run("clip", lambda: clip_step.clip_step_section(
            settings.clip_presets, settings.clip_batch, settings.clip_repeats, peaks), lambda r: "\n".join(r.markdown))
        parts += ["## CLIP training step (forward, loss, backward, AdamW)", "", *step_results.markdown]
    if "adamw" in args.only:
        parts += ["## AdamW implementations", "", run("adamw", lambda: clip_step.adamw_section(first, settings.repeats)), ""]
    if "embedding" in args.only:
        parts += ["## Embedding throughput", "", run("embedding", lambda: embedding.embedding_section(
            first, settings.embed_batch, settings.repeats, peaks[torch.float32]))]
    if "zero-shot" in args.only:
        parts += ["## Zero-shot classification", "", run("zero-shot", lambda: embedding.zero_shot_section(
            first, settings.zero_shot_images, settings.repeats)), ""]
    if "onnx" in args.only:
        parts += ["## CLIP embeddings through ONNX Runtime", "", onnx_embedding.__doc__.split("\n\n", 1)[1].strip(), "",
                  run("onnx", lambda: onnx_embedding.onnx_section(settings.onnx)), ""]
    if "loss" in args.only:
        parts += ["## Contrastive loss, one process", "",
                  run("loss", lambda: loss_modes.loss_section(settings.loss_batches, settings.repeats)), ""]
    if "limber" in args.only:
        limber_text, limber_figures = run("limber", lambda: limber.limber_section(settings.limber, peaks[torch.float32]),
                                            lambda r: r[0])
        parts += ["## LiMBeR", "", limber.__doc__.split("\n\n", 1)[1].strip(), "", limber_text, ""]

    minutes = (time.perf_counter() - started) / 60
    header = [
        "# hf_limber vs peers: measured side by side",
        "",
        f"Run: `python -m bench{' --quick' if args.quick else ''}` on {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{minutes:.1f} min wall ({', '.join(f'{k} {v:.1f}' for k, v in section_minutes.items())}). {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{args.threads} thread{'s' if args.threads > 1 else ''} (OMP_NUM_THREADS and torch.set_num_threads); load average "
        f"{load_before[0]:.1f} at start, {os.getloadavg()[0]:.1f} at end (other jobs share the machine). "
        f"torch {torch.__version__} (CPU capability {torch.backends.cpu.get_cpu_capability()}), transformers "
        f"{transformers.__version__}, open_clip {open_clip.__version__}. Python {sys.version.split()[0]}.",
        "",
        "Each comparison runs all its cases in one process, interleaved round by round after a warm-up call "
        "(where FLOPs are counted, the counting call is the warm-up); tables give medians, the spread (max − min) / median, and "
        "*ours ÷ this*, the speed ratio (this case's median time over ours'). MFU = model FLOPs "
        "(torch.utils.flop_counter with CPU attention added; in the CLIP tables ours' count for every row, "
        "elsewhere each case's own) / median time / the measured matmul peak of the dtype on the same threads.",
        "",
        "## Goals",
        "",
        goals_table(step_results, peaks, limber_figures),
        "",
    ]
    generated = "\n".join(header + parts)
    print(generated)
    out = args.out or (None if args.quick else HERE / "RESULTS.md")
    if out is not None:
        from .report import write_results

        write_results(out, generated)
        print(f"written to {out}")


if __name__ == "__main__":
    main()
