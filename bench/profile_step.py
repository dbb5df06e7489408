"""Where a CLIP training step spends its time: torch.profiler's top ops for ours and each peer.

    .venv/bin/python -m bench.profile_step ViT-B/32 bf16 --batch 2

One warm-up step, then one profiled step per contender; prints markdown (for RESULTS.md's story).
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", help="a ClipConfig preset, e.g. ViT-B/32 or RN50")
    parser.add_argument("dtype", choices=("fp32", "bf16"))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--by-name", action="store_true", help="one row per op name (its total), not per input shape")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch loads
    import torch

    from hf_limber import ClipConfig

    from .clip_models import clip_inputs, contenders
    from .clip_step import training_step
    from .timing import top_ops

    torch.set_num_threads(args.threads)
    pixels, ids = clip_inputs(ClipConfig.from_preset(args.preset), args.batch)
    for player in contenders(args.preset):
        step = training_step(player, pixels, ids, bf16=args.dtype == "bf16")
        step()
        table = top_ops(step, args.rows, by_shape=not args.by_name)
        print(f"#### {player.name}: {args.preset}, {args.dtype}, batch {args.batch}\n\n{table}\n", flush=True)


if __name__ == "__main__":
    main()
