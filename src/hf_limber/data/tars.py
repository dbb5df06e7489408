"""Webdataset tar shards: which shards a source names, and their samples as records.

img2dataset-style shards (members ``KEY.jpg`` + ``KEY.txt`` next to each other) are read and grouped
into samples by the `webdataset` library (``load_dataset("webdataset")`` raises on a bad member
mid-shard); around it, an unreadable shard or a malformed sample becomes one error record that the
streams downstream skip and count (`streaming.DecodeOrSkip`).
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator, Sequence
from glob import glob
from pathlib import Path
from typing import Any

from webdataset.tariterators import base_plus_ext, group_by_keys, tar_file_iterator

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "gif")
TEXT_EXTENSIONS = ("txt", "text", "caption")


def _is_remote(path: str) -> bool:
    return "://" in path


def tar_shards(source: str | os.PathLike[str] | Sequence[str]) -> list[str] | None:
    """The tar shards a source names (a .tar path, a glob, a folder of .tar files, a list), or None.
    A local shard that does not exist, or a shard pattern that matches nothing, is an error naming it
    (a typo would otherwise become a stream of skipped samples and an empty first batch)."""
    if isinstance(source, (list, tuple)):
        shards = [str(path) for path in source]
    else:
        text = str(source)
        if any(mark in text for mark in "*?["):
            shards = [] if _is_remote(text) else sorted(glob(os.path.expanduser(text)))
            if not shards and ".tar" in text and not _is_remote(text):
                raise FileNotFoundError(f"No tar shard matches {text}: check the path and the pattern.")
            return shards or None
        if text.endswith(".tar"):
            shards = [text]
        elif Path(text).is_dir():
            return sorted(str(path) for path in Path(text).glob("*.tar")) or None
        else:
            return None
    missing = [shard for shard in shards if not _is_remote(shard) and not Path(shard).expanduser().is_file()]
    if missing:
        raise FileNotFoundError(f"Tar shard(s) not found: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}. "
                                "Check the paths.")
    return shards


def _sample(key: str, fields: dict[str, bytes]) -> dict[str, Any]:
    image_ext = next((ext for ext in IMAGE_EXTENSIONS if ext in fields), None)
    text_ext = next((ext for ext in TEXT_EXTENSIONS if ext in fields), None)
    error, text = None, None
    if image_ext is None:
        error = f"no image file ({', '.join(IMAGE_EXTENSIONS)})"
    elif text_ext is None:
        error = f"no caption file ({', '.join(TEXT_EXTENSIONS)})"
    else:
        try:
            text = fields[text_ext].decode("utf-8")
        except UnicodeDecodeError as exc:
            error = f"caption is not UTF-8: {exc}"
    image = {"bytes": fields[image_ext], "path": f"{key}.{image_ext}"} if image_ext and not error else None
    return {"key": key, "image": image, "text": text, "error": error}


def shard_versions(shards: list[str]) -> list[str]:
    """Size and modification time of each local shard: `from_generator` caches its table by its
    arguments, so these make a rewritten shard a new table instead of stale rows."""
    versions = []
    for shard in shards:
        stat = None if _is_remote(shard) else Path(shard).expanduser().stat()
        versions.append(f"{stat.st_size}:{stat.st_mtime_ns}" if stat else "")
    return versions


def _key_and_extension(name: str) -> tuple[str | None, str | None]:
    """``dir/KEY.seg.jpg`` -> (``dir/KEY``, ``jpg``): webdataset's grouping key, and the extension alone
    (webdataset's own suffix would be ``seg.jpg``)."""
    key, suffix = base_plus_ext(name)
    return key, suffix and suffix.rsplit(".", 1)[-1]


def iter_tar_samples(shards: list[str], versions: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Samples of img2dataset-style shards (members ``KEY.jpg`` + ``KEY.txt`` next to each other), read
    and grouped by the `webdataset` library; opened with fsspec, so any URL fsspec knows works.

    A shard that cannot be read on (truncated, not a tar) yields one error record, its partial last
    sample is dropped, and the stream moves to the next shard; a sample with two files of one
    extension yields an error record too. `versions` (`shard_versions`) only key datasets' cache.
    """
    import fsspec

    for shard in shards:
        key, duplicates = None, []

        def duplicate_errors() -> Iterator[dict[str, Any]]:
            while duplicates:
                yield _error(f"{shard}:{key}", f"two files of one kind in a sample: {duplicates.pop(0)}")

        def note_duplicate(error: Exception) -> bool:
            if not isinstance(error, ValueError):  # group_by_keys raises ValueError only for a duplicate
                raise error
            duplicates.append(error)
            return True  # keep grouping the shard

        try:
            with fsspec.open(shard, "rb") as raw:
                files = ({**member, "__url__": shard} for member in tar_file_iterator(raw))
                for sample in group_by_keys(files, keys=_key_and_extension, handler=note_duplicate):
                    yield from duplicate_errors()
                    key = sample["__key__"]
                    yield _sample(key, {ext: data for ext, data in sample.items() if not ext.startswith("__")})
        except (tarfile.TarError, OSError, EOFError) as error:
            yield _error(f"{shard}:{key}", f"unreadable shard {shard}: {error}")
        yield from duplicate_errors()


def _error(key: str, reason: str) -> dict[str, Any]:
    return {"key": key, "image": None, "text": None, "error": reason}
