"""Does packing q, k and v in one matmul cost anything on this CPU? The projection alone, forward and
backward, packed (ours: one width→3·width Linear) against three width→width matmuls on row blocks of
the same weight (transformers' layout), at ViT-B/32 and text-tower sizes of a batch-8 training step.

    .venv/bin/python -m bench.qkv_packing [--threads 1] [--repeats 15]

Prints a markdown table (for RESULTS.md's story).
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch loads
    import torch
    import torch.nn.functional as F

    from .report import comparison_table
    from .timing import Case, compare

    torch.set_num_threads(args.threads)
    # (tokens in the step, width): 8 images x 50 ViT-B/32 tokens; 8 texts x 77 tokens
    for rows, width in ((400, 768), (616, 512)):
        projection = torch.nn.Linear(width, 3 * width)
        x = torch.randn(rows, width, requires_grad=True)
        grads = list(torch.randn(rows, 3 * width).chunk(3, dim=-1))

        def packed() -> list[torch.Tensor]:
            return list(projection(x).chunk(3, dim=-1))

        def split() -> list[torch.Tensor]:
            return [F.linear(x, w, b) for w, b in zip(projection.weight.chunk(3), projection.bias.chunk(3))]

        def step(forward=packed) -> None:
            torch.autograd.backward(forward(), grads)
            projection.zero_grad(set_to_none=True)
            x.grad = None

        cases = [Case("packed qkv (ours)", step, items=1), Case("q, k, v apart", lambda: step(split), items=1)]
        compare(cases, repeats=args.repeats, warmup=3)
        print(f"### {rows} tokens x {width} wide, forward + backward\n\n"
              f"{comparison_table(cases, 'packed qkv (ours)', unit='steps/s')}\n", flush=True)


if __name__ == "__main__":
    main()
