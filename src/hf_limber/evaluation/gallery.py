"""Nearest neighbours in a gallery of unit embeddings: text-to-image search and the Space's gallery tab.

A few thousand vectors are searched exactly by one matrix product. Large galleries go to faiss
(`pip install "hf_limber[retrieval]"`): "flat" is its exact inner-product index, "ivf" an inverted file
that clusters the gallery once and searches only the `nprobe` clusters nearest each query. The bench
(`python -m bench.retrieval`) measures query latency, memory and the approximate index's recall@10
against exact search from 10^3 to 10^6 vectors; `index="auto"` follows it.
"""

from __future__ import annotations

import math
import warnings

import torch

from .retrieval import top_matches

INDEXES = ("auto", "exact", "flat", "ivf")
# Below this many vectors one matrix product answers a query in ~20 ms or less on one CPU thread, and an
# inverted file as accurate as needed is not much faster (bench/RESULTS_retrieval.md).
APPROXIMATE_FROM = 100_000


def _faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError('Large galleries are searched with faiss: pip install "hf_limber[retrieval]" '
                          "(or choose index='exact').") from error
    return faiss


class EmbeddingGallery:
    """Search ``embeds`` (gallery, dim; unit rows: inner product is cosine) for each query's ``k`` best.

    ``index``: "exact" (torch), "flat" (faiss, exact), "ivf" (faiss, approximate: ``nlist`` clusters,
    sqrt(N) by default, ``nprobe`` of them searched per query: an eighth by default, which found 95% of the exact
    top 10 at 11x exact search's speed on 10^6 vectors in the bench), or "auto": exact below
    ``approximate_from`` vectors, "ivf" above (exact, with a warning, when faiss is not installed)."""

    def __init__(self, embeds: torch.Tensor, index: str = "auto", nlist: int | None = None,
                 nprobe: int | None = None, approximate_from: int = APPROXIMATE_FROM, seed: int = 0) -> None:
        if index not in INDEXES:
            raise ValueError(f"index: one of {', '.join(INDEXES)}; got {index!r}.")
        if embeds.ndim != 2 or len(embeds) == 0:
            raise ValueError(f"embeds: a non-empty (gallery, dim) matrix; got shape {tuple(embeds.shape)}.")
        self.embeds = embeds.detach().float().contiguous()
        if index == "auto":
            index = "exact" if len(embeds) < approximate_from else "ivf"
            if index == "ivf":
                try:
                    _faiss()
                except ImportError as error:
                    warnings.warn(f"{len(embeds):,} vectors searched exactly: {error}", stacklevel=2)
                    index = "exact"
        self.kind = index
        self._index = None
        if index == "flat":
            faiss = _faiss()
            self._index = faiss.IndexFlatIP(self.embeds.shape[1])
            self._index.add(self.embeds.numpy())
        elif index == "ivf":
            faiss = _faiss()
            # faiss wants >= 39 training points per cluster; k-means on 64 per cluster is as good and fast.
            nlist = nlist or max(1, min(len(embeds) // 39, round(math.sqrt(len(embeds)))))
            quantizer = faiss.IndexFlatIP(self.embeds.shape[1])
            self._index = faiss.IndexIVFFlat(quantizer, self.embeds.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
            self._index.cp.seed = seed
            self._index.cp.max_points_per_centroid = 64
            self._index.train(self.embeds.numpy())
            self._index.add(self.embeds.numpy())
            self._index.nprobe = min(nprobe or max(1, nlist // 8), nlist)
            self._quantizer = quantizer  # the IVF index does not own it: keep it alive

    def __len__(self) -> int:
        return len(self.embeds)

    @property
    def nbytes(self) -> int:
        """Memory the search structure holds (the exact search's is the embedding matrix itself)."""
        if self._index is None:
            return self.embeds.numel() * self.embeds.element_size()
        return int(_faiss().serialize_index(self._index).nbytes)

    def search(self, queries: torch.Tensor, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, indices), each (queries, min(k, gallery)), best first."""
        if queries.ndim != 2 or queries.shape[1] != self.embeds.shape[1]:
            raise ValueError(f"queries: a (queries, {self.embeds.shape[1]}) matrix; got {tuple(queries.shape)}.")
        k = min(k, len(self))
        queries = queries.detach().float().contiguous()
        if self._index is None:
            return top_matches(queries, self.embeds, k)
        scores, indices = self._index.search(queries.numpy(), k)
        return torch.from_numpy(scores), torch.from_numpy(indices)
