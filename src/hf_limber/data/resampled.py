"""Endless, per-source-weighted streams of tar shards (open_clip's ``--dataset-resampled``).

Large runs draw shards with replacement instead of reading each one once per epoch: there are no
epoch boundaries to align across processes, every rank and DataLoader worker reads a random
stream of its own, and several sources mix at chosen rates (a small curated set upsampled against
a large scrape, say). The shards are drawn by webdataset's `ResampledShards`; the samples of each
drawn shard are read by `tars.iter_tar_samples`, so corrupt samples are still skipped and
counted downstream. Such a stream never ends: train with ``max_steps``.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from webdataset.shardlists import ResampledShards

from .tars import iter_tar_samples, tar_shards

# A source whose shards yield nothing this many draws in a row is empty: fail rather than spin.
MAX_EMPTY_DRAWS = 100
SOURCE_SEPARATOR = "::"  # open_clip's separator of sources (and of their weights) on one command line


def resolve_sources(
    source: str | Sequence[str | Sequence[str]], weights: Sequence[float] | None = None
) -> tuple[tuple[tuple[str, ...], ...], tuple[float, ...]]:
    """The shard lists of a resampled stream and their weights.

    ``source``: one source, a ``"::"``-separated string of sources, or a list of sources; each source is
    what `tar_shards` takes (a .tar path, a glob, a folder of .tar files, or a list of shards).
    ``weights``: one positive number per source (default: equal), the share of samples drawn from it.
    """
    parts = source.split(SOURCE_SEPARATOR) if isinstance(source, str) else list(source)
    sources = []
    for part in parts:
        shards = tar_shards(part)
        if not shards:
            raise ValueError(f"{part!r} names no tar shards: a resampled stream reads webdataset shards "
                             "(a .tar path, a glob, a folder of .tar files or a list of them).")
        sources.append(tuple(shards))
    weights = tuple(float(weight) for weight in weights) if weights is not None else (1.0,) * len(sources)
    if len(weights) != len(sources):
        raise ValueError(f"{len(weights)} weights for {len(sources)} sources: give one weight per source.")
    if not all(weight > 0 for weight in weights):
        raise ValueError(f"Source weights must be positive, got {list(weights)}; leave a source out instead of 0.")
    return tuple(sources), weights


def _samples_of(shards: ResampledShards, source: Sequence[str]) -> Iterator[dict[str, Any]]:
    empty = 0
    for draw in shards:
        read = 0
        for read, sample in enumerate(iter_tar_samples([draw["url"]]), start=1):
            yield sample
        empty = 0 if read else empty + 1
        if empty >= MAX_EMPTY_DRAWS:
            raise ValueError(f"{MAX_EMPTY_DRAWS} shards drawn in a row from {list(source)[:3]}... held no sample: "
                             "check that source's shards.")


def iter_resampled_samples(
    streams: list[int], sources: tuple[tuple[str, ...], ...], weights: tuple[float, ...], seed: int
) -> Iterator[dict[str, Any]]:
    """An endless stream of samples (`iter_tar_samples` records): each from a source drawn by weight, read
    from a shard of that source drawn with replacement.

    `streams` are the ids that datasets deals out to ranks and DataLoader workers (its only list argument):
    a reader's draws are seeded by its ids, so readers read different streams and a rerun repeats them.
    """
    key = f"{seed}/{'-'.join(map(str, streams))}"
    # Our own seeded draw of the source: webdataset's RandomMix draws from the global `random` state.
    pick = random.Random(key)
    readers = [
        _samples_of(ResampledShards(list(shards), seed=seed, deterministic=True,
                                    worker_seed=lambda index=index: zlib.crc32(f"{key}/{index}".encode())), shards)
        for index, shards in enumerate(sources)
    ]
    indices = range(len(readers))
    while True:
        yield next(readers[pick.choices(indices, weights)[0]])
