"""Image-text pairs at scale: datasets folders, imagefolders, Hub ids and webdataset shards.

Every source becomes a stream of ``{"image": PIL RGB image, "text": str}``. Sharding
across processes is `datasets.distributed.split_dataset_by_node`; sharding across
DataLoader workers is the `datasets.IterableDataset` default (shards are dealt out to
workers). What `datasets` lacks is tolerance: a corrupt image, a caption that is not
UTF-8 or a truncated tar ends its stream with an exception. Here they are skipped and
counted in a `SkipCounter` that DataLoader workers share with the main process, and
`SkippedSamplesCallback` puts the count in the Trainer's logs.

Tar shards are read by `tars.iter_tar_samples` (the `webdataset` library, with unreadable
shards and malformed samples as error records), wrapped in datasets' `from_generator`, which
deals out the shard list in ``gen_kwargs``; ``resampled=True`` draws shards with replacement
from weighted sources instead (`resampled`: an endless stream).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from collections.abc import Sequence
from multiprocessing import context as mp_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image
from transformers import TrainerCallback

from ..images import open_image, to_rgb  # one rule everywhere: transparency on white
from .resampled import iter_resampled_samples, resolve_sources
from .tars import iter_tar_samples, shard_versions, tar_shards

if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset

logger = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "caption", "captions", "txt")
STREAM_SHARDS = 64  # shards made from a map-style dataset: divisible by common world sizes and worker counts


class SkipCounter:
    """How many samples a stream skipped, shared by the process that made it and its workers.

    The count lives in shared memory, so DataLoader workers (forked or spawned) add to the
    number the main process reads. Copies of a dataset share one counter.
    """

    def __init__(self) -> None:
        self._shared = multiprocessing.Value("q", 0)

    @property
    def value(self) -> int:
        return int(self._shared.value)

    def add(self, count: int = 1) -> None:
        with self._shared.get_lock():
            self._shared.value += count

    def __deepcopy__(self, memo: dict) -> SkipCounter:
        return self

    def __reduce__(self) -> tuple:
        if mp_context.get_spawning_popen() is not None:  # handing over to a spawned worker: share
            return (_shared_counter, (self._shared,))
        # Other pickles (datasets hashes transforms) cannot carry shared memory; they get a copy.
        return (_detached_counter, (self.value,))

    def __repr__(self) -> str:
        return f"SkipCounter(value={self.value})"


def _shared_counter(shared: Any) -> SkipCounter:
    counter = SkipCounter.__new__(SkipCounter)
    counter._shared = shared
    return counter


def _detached_counter(value: int) -> SkipCounter:
    counter = SkipCounter()
    counter.add(value)
    return counter


class SkippedSamplesCallback(TrainerCallback):
    """Adds ``counter.value`` to every Trainer log entry, under ``key``.

    Counts are per process (each rank reads its own part of the stream). Passed with
    ``Trainer(callbacks=[...])`` it reaches the printed logs and ``state.log_history``;
    insert it first (``trainer.callback_handler.callbacks.insert(0, cb)``) if reporting
    integrations such as TensorBoard should see the number too, since they run before
    user callbacks.
    """

    def __init__(self, counter: SkipCounter, key: str = "skipped_samples") -> None:
        self.counter, self.key = counter, key

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None:
            logs[self.key] = self.counter.value
        if state.log_history:
            state.log_history[-1][self.key] = self.counter.value


def _check(example: dict[str, Any]) -> tuple[str | None, Image.Image | None, str | None]:
    """(why the sample is unusable or None, decoded image, caption)."""
    reason, image = example.get("error"), None
    text = example.get("text")
    if isinstance(text, list):  # several reference captions: train on the first
        text = text[0] if text else None
    if not reason:
        try:
            image = _open_image(example["image"])
        except Exception as error:  # PIL raises many types for bad bytes
            reason = f"image cannot be decoded: {error}"
    if not reason and not (isinstance(text, str) and text.strip()):
        reason = "no caption"
    return reason, image, text


class DecodeOrSkip:
    """Decodes one sample's image; flags any sample that cannot be used and counts it.

    When ranks split a stream by examples (fewer shards than ranks), every rank reads
    every sample, so a bad sample is counted only by the rank whose turn its raw
    position is: the counts of all ranks then add up to the true number.
    """

    def __init__(self, counter: SkipCounter, rank: int = 0, count_every: int = 1) -> None:
        self.counter, self.rank, self.count_every = counter, rank, count_every

    def __call__(self, example: dict[str, Any], index: int = 0) -> dict[str, Any]:
        reason, image, text = _check(example)
        if reason:
            if index % self.count_every == self.rank % self.count_every:
                self.counter.add()
                logger.warning(
                    "Skipping sample %s: %s", example.get("key") or _image_path(example.get("image")), reason
                )
            return {"image": None, "text": None}
        return {"image": image, "text": text}


def _image_path(image: Any) -> str | None:
    return image.get("path") if isinstance(image, dict) else None


def _open_image(image: Any) -> Image.Image:
    if image is None:
        raise ValueError("no image")
    if isinstance(image, Image.Image):
        return to_rgb(image)
    data = image.get("bytes")
    return to_rgb(open_image(data if data is not None else image["path"]))


def _is_usable(example: dict[str, Any]) -> bool:
    return example["image"] is not None


def _node(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """This process's rank and the world size: explicit, torch.distributed, or the launcher's env."""
    if rank is not None and world_size is not None:
        return rank, world_size
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def _columns(features: Any, image_column: str | None, text_column: str | None) -> tuple[str, str]:
    from datasets import Image as ImageFeature

    names = list(features or {})
    image = image_column or next((n for n in names if isinstance(features[n], ImageFeature)), None)
    text = text_column or next((n for n in TEXT_COLUMNS if n in names), None)
    if image is None or text is None:
        raise ValueError(f"Cannot tell the image and text columns among {names}; pass image_column= and text_column=.")
    return image, text


def _read_metadata(metadata: Path, counter: SkipCounter) -> list[dict[str, Any]]:
    """The rows of an imagefolder's metadata.jsonl, line by line: a line that is not UTF-8 JSON is
    skipped and counted (datasets' reader stops the whole stream at it)."""
    rows = []
    for number, line in enumerate(metadata.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
            if not isinstance(row, dict) or "file_name" not in row:
                raise ValueError("not an object with a file_name")
        except (UnicodeDecodeError, ValueError) as error:
            counter.add()
            logger.warning("Skipping line %d of %s: %s", number, metadata, error)
            continue
        file_name = row.pop("file_name")
        rows.append({"image": {"path": str(metadata.parent / file_name), "bytes": None}, **row})
    return rows


def _open_imagefolder(path: Path, split: str, counter: SkipCounter) -> Dataset:
    from datasets import Dataset, Image

    if split != "train":
        raise ValueError(f"{path} is an imagefolder with one metadata.jsonl: its one split is 'train', not {split!r}.")
    rows = _read_metadata(path / "metadata.jsonl", counter)
    if not rows:
        raise ValueError(f"{path / 'metadata.jsonl'} holds no readable rows.")
    return Dataset.from_list(rows).cast_column("image", Image(decode=False))


def _open_source(source: str, split: str, streaming: bool, counter: SkipCounter) -> Dataset | IterableDataset:
    from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

    path = Path(source).expanduser()
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        loaded = load_from_disk(str(path))
        if isinstance(loaded, DatasetDict):
            if split not in loaded:
                raise ValueError(f"{path} has splits {list(loaded)}, not {split!r}; pass split=.")
            loaded = loaded[split]
        assert isinstance(loaded, Dataset)
        return loaded.to_iterable_dataset(num_shards=max(1, min(STREAM_SHARDS, len(loaded)))) if streaming else loaded
    if (path / "metadata.jsonl").is_file():
        folder = _open_imagefolder(path, split, counter)
        return folder.to_iterable_dataset(num_shards=max(1, min(STREAM_SHARDS, len(folder)))) if streaming else folder
    if path.is_dir():
        if not any((path / name).is_file() for name in ("metadata.jsonl", "metadata.csv", "metadata.parquet")):
            raise ValueError(
                f"{path} is neither a saved dataset (save_to_disk) nor an imagefolder with metadata.jsonl, "
                "nor a folder of .tar shards."
            )
        return load_dataset("imagefolder", data_dir=str(path), split=split, streaming=streaming)
    return load_dataset(source, split=split, streaming=streaming)  # a Hub id, or a loading script


def load_image_text_pairs(
    source: str | os.PathLike[str] | Sequence[str],
    split: str = "train",
    *,
    streaming: bool = True,
    image_column: str | None = None,
    text_column: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    counter: SkipCounter | None = None,
    resampled: bool = False,
    weights: Sequence[float] | None = None,
    seed: int = 0,
) -> IterableDataset | Dataset:
    """Image-text pairs as ``{"image": PIL.Image (RGB), "text": str}`` from any supported source.

    ``source``: a folder written by ``save_to_disk`` (e.g. ``hf-limber data emoji``), an
    imagefolder with ``metadata.jsonl``, webdataset tar shards (a path, glob, folder or
    list), or a Hub dataset id. Streams are split across processes by ``rank`` /
    ``world_size`` (default: torch.distributed, else ``RANK`` / ``WORLD_SIZE``) and across
    DataLoader workers by shard; with accelerate, keep ``dispatch_batches=False`` so each
    process reads its own part. Unusable samples are skipped and added to ``counter``,
    which is also set as the result's ``skip_counter`` attribute. With ``streaming=False``
    a map-style dataset is returned after one checking pass (no per-process split:
    the Trainer's sampler does that).

    ``resampled=True`` (tar shards, streaming; open_clip's ``--dataset-resampled``): an endless
    stream that draws shards with replacement, each sample from one of several sources (a
    ``"::"``-separated string or a list of sources) with probability proportional to ``weights``;
    every rank and worker draws its own stream, seeded by ``seed``. Train on it with ``max_steps``.
    """
    from datasets import Dataset, Features, Image, IterableDataset, Value

    counter = counter if counter is not None else SkipCounter()
    features = Features(
        {"key": Value("string"), "image": Image(decode=False), "text": Value("string"), "error": Value("string")}
    )
    shards = None if resampled else tar_shards(source)
    if resampled:
        if not streaming:
            raise ValueError("resampled=True draws an endless stream: pass streaming=True (and train with max_steps).")
        sources, weights = resolve_sources(source, weights)
        # The one list argument is what datasets deals to ranks and workers: stream ids, each seeding a draw.
        raw = IterableDataset.from_generator(iter_resampled_samples, features=features, gen_kwargs={
            "streams": list(range(STREAM_SHARDS)), "sources": sources, "weights": weights, "seed": seed})
    elif shards is not None and streaming:
        raw = IterableDataset.from_generator(iter_tar_samples, gen_kwargs={"shards": shards}, features=features)
    elif shards is not None:
        raw = Dataset.from_generator(iter_tar_samples, features=features,
                                     gen_kwargs={"shards": shards, "versions": shard_versions(shards)})
    else:
        raw = _open_source(str(source), split, streaming, counter)
    if resampled or shards is not None:
        image_column, text_column = "image", "text"
    else:
        image_column, text_column = _columns(raw.features, image_column, text_column)
        raw = raw.select_columns([image_column, text_column]).cast_column(image_column, Image(decode=False))
        if image_column != "image" or text_column != "text":
            raw = raw.rename_columns({image_column: "image", text_column: "text"})

    if streaming:
        rank, world_size = _node(rank, world_size)
        # datasets deals whole shards to ranks when they divide evenly, else every rank
        # reads everything and keeps every world_size-th example.
        by_examples = world_size > 1 and raw.num_shards % world_size != 0
        if world_size > 1:
            from datasets.distributed import split_dataset_by_node

            raw = split_dataset_by_node(raw, rank=rank, world_size=world_size)
        decode = DecodeOrSkip(counter, rank, world_size if by_examples else 1)
        extra = [name for name in ("key", "error") if name in (raw.column_names or [])]
        pairs = raw.map(decode, with_indices=True, remove_columns=extra).filter(_is_usable)
    else:
        checked = raw.filter(_is_decodable)
        counter.add(len(raw) - len(checked))
        pairs = checked.select_columns(["image", "text"]).cast_column("image", Image())
        if not isinstance(pairs.features["text"], Value):
            pairs = pairs.map(_first_caption)
        pairs = pairs.with_transform(_rgb_rows)  # datasets decodes in the file's own mode
    pairs.skip_counter = counter
    return pairs


def _is_decodable(example: dict[str, Any]) -> bool:
    return _check(example)[0] is None


def _rgb_rows(batch: dict[str, list]) -> dict[str, list]:
    if "image" in batch:
        batch["image"] = [to_rgb(image) if image is not None else None for image in batch["image"]]
    return batch


def _first_caption(example: dict[str, Any]) -> dict[str, Any]:
    return {"text": example["text"][0]}
