"""EmbeddingGallery (issue 20): exact search, faiss's flat index and its inverted file, the automatic choice."""

import builtins

import pytest
import torch

from hf_limber.evaluation import EmbeddingGallery, top_matches

faiss = pytest.importorskip("faiss")


def clustered(count: int, seed: int, dim: int = 32, concepts: int = 20) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(concepts, dim, generator=torch.Generator().manual_seed(99)), dim=1)
    rows = centres[torch.randint(concepts, (count,), generator=generator)] + 0.1 * torch.randn(count, dim, generator=generator)
    return torch.nn.functional.normalize(rows, dim=1)


def test_exact_and_flat_indexes_find_the_brute_force_neighbours():
    embeds, queries = clustered(500, 0), clustered(20, 1)
    scores, indices = (queries @ embeds.T).topk(7, dim=-1)
    for kind in ("exact", "flat"):
        gallery = EmbeddingGallery(embeds, index=kind)
        found_scores, found = gallery.search(queries, 7)
        assert gallery.kind == kind and found.shape == (20, 7)
        assert torch.equal(found, indices)
        torch.testing.assert_close(found_scores, scores, atol=1e-5, rtol=0)
    assert torch.equal(EmbeddingGallery(embeds, index="exact").search(queries, 7)[1], top_matches(queries, embeds, 7)[1])


def test_inverted_file_is_exact_when_it_searches_every_cluster_and_close_when_it_searches_a_few():
    embeds, queries = clustered(4000, 0), clustered(50, 1)
    truth = (queries @ embeds.T).topk(10, dim=-1).indices
    everything = EmbeddingGallery(embeds, index="ivf", nlist=16, nprobe=16)
    assert torch.equal(everything.search(queries, 10)[1], truth)
    few = EmbeddingGallery(embeds, index="ivf", nlist=64, nprobe=8)
    found = few.search(queries, 10)[1]
    recall = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth)) / truth.numel()
    assert 0.8 <= recall <= 1.0
    # 64 clusters of 32-d centroids beside the vectors and their ids.
    assert few.nbytes > 4000 * 32 * 4 + 64 * 32 * 4


def test_auto_searches_small_galleries_exactly_and_large_ones_with_an_inverted_file(monkeypatch):
    embeds = clustered(3000, 0)
    assert EmbeddingGallery(embeds).kind == "exact"
    assert EmbeddingGallery(embeds, approximate_from=1000).kind == "ivf"
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss":
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    with pytest.warns(UserWarning, match=r"3,000 vectors searched exactly.*hf_limber\[retrieval\]"):
        assert EmbeddingGallery(embeds, approximate_from=1000).kind == "exact"
    with pytest.raises(ImportError, match=r"hf_limber\[retrieval\]"):
        EmbeddingGallery(embeds, index="flat")


def test_bad_input_says_what_was_wrong():
    embeds = clustered(10, 0)
    with pytest.raises(ValueError, match="index: one of"):
        EmbeddingGallery(embeds, index="hnsw")
    with pytest.raises(ValueError, match="non-empty"):
        EmbeddingGallery(embeds[:0])
    with pytest.raises(ValueError, match=r"\(queries, 32\)"):
        EmbeddingGallery(embeds).search(torch.ones(2, 16))
    assert EmbeddingGallery(embeds).search(embeds[:1], k=50)[1].shape == (1, 10)
