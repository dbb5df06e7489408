"""Resampled tar streams (issue 19): endless, weighted by source, seeded per rank and worker, still skipping
corrupt samples; and a CLIP recipe trained on one."""

from __future__ import annotations

import io
import itertools
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from hf_limber.data import load_image_text_pairs
from hf_limber.data.resampled import MAX_EMPTY_DRAWS, resolve_sources

PER_SHARD = 3


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _source(folder: Path, prefix: str, shards: int = 2, corrupt: tuple[int, int] | None = None) -> Path:
    """`shards` tar files of PER_SHARD samples captioned "{prefix} {shard} {i}"; `corrupt` = (shard, i) breaks one image."""
    folder.mkdir(parents=True)
    for shard in range(shards):
        with tarfile.open(folder / f"{shard:05d}.tar", "w") as tar:
            for i in range(PER_SHARD):
                buffer = io.BytesIO()
                Image.new("RGB", (8, 8), (shard * 80, i * 60, 30)).save(buffer, format="PNG")
                image = buffer.getvalue()
                _add(tar, f"{shard}{i:03d}.png", image[:20] if (shard, i) == corrupt else image)
                _add(tar, f"{shard}{i:03d}.txt", f"{prefix} {shard} {i}".encode())
    return folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resampled")
    return _source(root / "small", "small"), _source(root / "large", "large", shards=3, corrupt=(1, 1))


def _captions(pairs, count: int) -> list[str]:
    return [row["text"] for row in itertools.islice(pairs, count)]


def test_the_stream_is_endless_and_mixes_sources_by_weight(sources):
    small, large = sources
    pairs = load_image_text_pairs(f"{small}::{large}", resampled=True, weights=[1, 3], rank=0, world_size=1)
    captions = _captions(pairs, 800)  # 15 samples exist: every one is drawn many times
    assert len(captions) == 800
    share_small = sum(caption.startswith("small") for caption in captions) / len(captions)
    # 800 draws at p = 0.25: standard error 0.015, so +-0.06 is four of them.
    assert abs(share_small - 0.25) < 0.06, share_small
    assert len(set(captions)) == 2 * PER_SHARD + 3 * PER_SHARD - 1  # every usable sample, never the corrupt one
    assert "large 1 1" not in captions and pairs.skip_counter.value > 0


def test_a_seed_repeats_its_stream_and_ranks_read_different_ones(sources):
    small, large = sources

    def stream(seed: int, rank: int = 0, world_size: int = 1) -> list[str]:
        pairs = load_image_text_pairs([str(small), str(large)], resampled=True, seed=seed, rank=rank,
                                      world_size=world_size)
        return _captions(pairs, 60)

    assert stream(0) == stream(0)
    assert stream(0) != stream(1)
    assert stream(0, rank=0, world_size=2) != stream(0, rank=1, world_size=2)


def test_dataloader_workers_draw_streams_of_their_own(sources):
    small, large = sources
    pairs = load_image_text_pairs(f"{small}::{large}", resampled=True, rank=0, world_size=1)
    loader = torch.utils.data.DataLoader(pairs, batch_size=None, num_workers=2, collate_fn=lambda row: row["text"])
    captions = list(itertools.islice(loader, 120))
    # The loader alternates workers: had both drawn the same stream, each even item would repeat the odd one.
    first, second = captions[0::2], captions[1::2]
    assert first != second and sum(a == b for a, b in zip(first, second)) < len(first) // 2


def test_bad_sources_and_weights_say_what_is_wrong(sources, tmp_path):
    small, large = sources
    with pytest.raises(ValueError, match="2 weights for 1 sources"):
        resolve_sources(str(small), [1, 2])
    with pytest.raises(ValueError, match="must be positive"):
        resolve_sources([str(small), str(large)], [1, 0])
    with pytest.raises(ValueError, match="names no tar shards"):
        resolve_sources(str(tmp_path))
    with pytest.raises(ValueError, match="streaming=True"):
        load_image_text_pairs(str(small), resampled=True, streaming=False)


def test_a_source_with_no_samples_fails_instead_of_spinning(tmp_path):
    (tmp_path / "empty").mkdir()
    with tarfile.open(tmp_path / "empty" / "00000.tar", "w"):
        pass
    pairs = load_image_text_pairs(str(tmp_path / "empty"), resampled=True, rank=0, world_size=1)
    with pytest.raises(ValueError, match=f"{MAX_EMPTY_DRAWS} shards drawn in a row"):
        next(iter(pairs))


def test_train_clip_on_a_weighted_resampled_stream(sources, tmp_path):
    from hf_limber.training.clip_recipe import ClipRecipeArguments, train_clip
    from hf_limber.training.contrastive_trainer import ContrastiveTrainingArguments

    small, large = sources

    def training(out: str, steps: int) -> ContrastiveTrainingArguments:
        return ContrastiveTrainingArguments(output_dir=str(tmp_path / out), max_steps=steps, logging_steps=1,
                                            per_device_train_batch_size=4, use_cpu=True, report_to="none",
                                            save_strategy="no")

    # A tokenizer first: a BPE trained on one pass of a source (a resampled stream has no end to read).
    start = train_clip(ClipRecipeArguments(dataset=str(small), model="tiny-vit", eval_split=None, vocab_size=300),
                       training("start", 1))
    start.save_model()
    with pytest.raises(ValueError, match="tokenizer: train"):
        train_clip(ClipRecipeArguments(dataset=str(small), model="tiny-vit", eval_split=None, streaming=True,
                                       dataset_resampled=True), training("refused", 2))
    args = ClipRecipeArguments(dataset=f"{small}::{large}", model=str(tmp_path / "start"), eval_split=None,
                               streaming=True, dataset_resampled=True, dataset_weights=[1.0, 3.0])
    trainer = train_clip(args, training("resampled", 6))  # 24 samples from 15 that exist
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert trainer.state.global_step == 6 and len(losses) == 6 and all(loss == loss for loss in losses)
