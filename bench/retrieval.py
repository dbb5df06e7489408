"""Gallery search at scale (issue 20): `hf_limber.evaluation.EmbeddingGallery` exact (one torch matrix
product, what `top_matches` does), faiss's flat exact index and its inverted file ("ivf", approximate), from
10^3 to 10^6 unit vectors. One query at a time (a user typing a search), the cases interleaved query by
query; the approximate index's recall@10 is counted against the exact top 10.

Synthetic embeddings shaped like CLIP's: 512-d, a direction every vector shares (cosine ~0.3 between
unrelated pictures) and a thousand concepts whose vectors sit near one another (~0.75 within a concept).

    .venv/bin/python -m bench.retrieval [--sizes 1000 10000 100000 1000000 --queries 50 --out FILE]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def synthetic(count: int, dim: int, generator, concepts: int = 1000):
    import torch

    common = torch.nn.functional.normalize(torch.randn(dim, generator=generator), dim=0)
    centres = torch.nn.functional.normalize(torch.randn(concepts, dim, generator=generator), dim=1)
    out = torch.empty(count, dim)
    for start in range(0, count, 100_000):  # in chunks: the noise of 10^6 vectors at once is another 2 GB
        n = min(100_000, count - start)
        rows = 0.55 * common + centres[torch.randint(concepts, (n,), generator=generator)]
        rows += torch.randn(n, dim, generator=generator) * (0.6 / dim ** 0.5)
        out[start:start + n] = torch.nn.functional.normalize(rows, dim=1)
    return out


def median_spread(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    middle = ordered[len(ordered) // 2]
    return middle, (ordered[-1] - ordered[0]) / middle if len(ordered) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--out", type=Path, help="write the markdown table here as well as printing it")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import faiss
    import torch

    from hf_limber.evaluation.gallery import EmbeddingGallery

    from .report import cpu_name

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    rows = ["| gallery | index | build s | memory MB | query ms (median, spread) | vs exact (speed) | recall@10 |",
            "|---:|---|---:|---:|---:|---:|---:|"]
    for size in args.sizes:
        embeds = synthetic(size, 512, generator)
        queries = synthetic(args.queries, 512, generator)
        cases = {}
        for name, options in [("exact", {"index": "exact"}), ("faiss flat", {"index": "flat"})] + [
                (f"faiss ivf nprobe {p}", {"index": "ivf", "nprobe": p}) for p in args.nprobe]:
            begin = time.perf_counter()
            cases[name] = (EmbeddingGallery(embeds, **options), time.perf_counter() - begin, [], [])
        for query in queries:  # interleaved: every case answers the same query before the next one
            for gallery, _, times, found in cases.values():
                begin = time.perf_counter()
                _, indices = gallery.search(query[None], 10)
                times.append(time.perf_counter() - begin)
                found.append(set(indices[0].tolist()))
        truth = cases["exact"][3]
        exact_ms = median_spread(cases["exact"][2])[0] * 1e3
        for name, (gallery, build, times, found) in cases.items():
            seconds, spread = median_spread(times)
            recall = sum(len(f & t) for f, t in zip(found, truth)) / (10 * len(truth))
            rows.append(f"| {size:,} | {name} | {build:.1f} | {gallery.nbytes / 2**20:,.1f} | {seconds * 1e3:,.3f} ({spread:.0%}) "
                        f"| {exact_ms / (seconds * 1e3):,.1f}x | {recall:.3f} |")
            print(rows[-1], flush=True)
        del cases, embeds
    header = (f"{cpu_name()}, {args.threads} thread(s), {args.queries} single queries per size, 512-d; "
              f"faiss {faiss.__version__}, torch {torch.__version__}.")
    text = "\n".join([header, "", *rows, ""])
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
