"""Reading webdataset tar shards: hf_limber's reader (the `webdataset` library's tar iteration and grouping
under a generator that turns an unreadable shard into one counted record) against the hand-written reader
it replaced (issue 19), webdataset's own `WebDataset` pipeline, and Python's `tarfile` alone (the floor:
every member's bytes, no grouping). Then the whole stream `load_image_text_pairs` gives the Trainer, images
decoded to RGB, read once in order or resampled (shards drawn with replacement, the same number of samples).

    .venv/bin/python -m bench.tar_reader [--shards 8 --per-shard 500 --repeats 5]
"""

from __future__ import annotations

import argparse
import io
import itertools
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import webdataset
from PIL import Image

from hf_limber.data.streaming import load_image_text_pairs
from hf_limber.data.tars import _sample, iter_tar_samples

from .report import comparison_table, cpu_name
from .timing import Case, compare


def write_shards(root: Path, shards: int, per_shard: int) -> list[str]:
    """img2dataset's layout: KEY.png (a 64-px picture, ~1 KB) + KEY.txt + KEY.json per sample."""
    paths = []
    for shard in range(shards):
        path = root / f"{shard:05d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(per_shard):
                buffer = io.BytesIO()
                Image.new("RGB", (64, 64), (shard * 30 % 256, i % 256, 90)).save(buffer, format="PNG")
                for ext, data in (("png", buffer.getvalue()), ("txt", f"caption {shard} {i}".encode()),
                                  ("json", b'{"width": 64}')):
                    info = tarfile.TarInfo(f"{shard:05d}{i:05d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        paths.append(str(path))
    return paths


def hand_written_reader(shards: list[str]) -> Iterator[dict[str, Any]]:
    """The reader before issue 19, kept here only as the 'before' of the comparison (errors left out)."""
    for shard in shards:
        key, fields = None, {}
        with open(shard, "rb") as raw, tarfile.open(fileobj=raw, mode="r|*") as archive:
            for member in archive:
                if not member.isfile() or "." not in Path(member.name).name:
                    continue
                name = member.name
                stem, ext = name[: name.index(".", name.rfind("/") + 1)], name.rsplit(".", 1)[-1].lower()
                if key is not None and stem != key:
                    yield _sample(key, fields)
                    fields = {}
                key = stem
                fields[ext] = archive.extractfile(member).read()
        if key is not None:
            yield _sample(key, fields)


def tarfile_floor(shards: list[str]) -> Iterator[bytes]:
    for shard in shards:
        with tarfile.open(shard, mode="r|*") as archive:
            for member in archive:
                if member.isfile():
                    yield archive.extractfile(member).read()


def count(iterator: Any, expected: int) -> None:
    seen = sum(1 for _ in iterator)
    if seen != expected:
        raise AssertionError(f"read {seen} items, expected {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--per-shard", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    samples = args.shards * args.per_shard
    with tempfile.TemporaryDirectory() as folder:
        shards = write_shards(Path(folder), args.shards, args.per_shard)
        cases = [
            Case("hf_limber (webdataset)", lambda: count(iter_tar_samples(shards), samples), items=samples),
            Case("hand-written (before)", lambda: count(hand_written_reader(shards), samples), items=samples),
            Case("webdataset.WebDataset", lambda: count(webdataset.WebDataset(shards, shardshuffle=False), samples),
                 items=samples),
            Case("tarfile members (floor)", lambda: count(tarfile_floor(shards), 3 * samples), items=samples),
        ]
        compare(cases, args.repeats)
        print(f"Tar shard reading on {cpu_name()}: {args.shards} shards x "
              f"{args.per_shard} samples (64-px PNG + txt + json), {args.repeats} rounds\n")
        print(comparison_table(cases, ours="hf_limber (webdataset)", unit="samples/s"))
        resampled = load_image_text_pairs(shards, rank=0, world_size=1, resampled=True)
        stream = [Case("load_image_text_pairs stream", lambda: count(load_image_text_pairs(shards, rank=0,
                       world_size=1), samples), items=samples),
                  Case("resampled stream", lambda: count(itertools.islice(resampled, samples), samples),
                       items=samples)]
        compare(stream, max(1, args.repeats // 2))
        print("\nThe Trainer's stream (datasets IterableDataset, images decoded to RGB):\n")
        print(comparison_table(stream, ours="load_image_text_pairs stream", unit="samples/s"))


if __name__ == "__main__":
    main()
