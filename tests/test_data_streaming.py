"""Image-text streams: tar shards, imagefolders, saved datasets; sharding, workers, corrupt samples."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import datasets
import pytest
import torch
from PIL import Image

from hf_limber.data import SkipCounter, SkippedSamplesCallback, load_image_text_pairs

SHARDS = 4
PER_SHARD = 6
# (shard, sample) positions of bad samples, and what is wrong with each.
CORRUPT_IMAGE, BAD_CAPTION, NO_CAPTION = (1, 2), (2, 3), (3, 5)
BAD = 3


def _png(colour: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format=fmt)
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory) -> Path:
    """img2dataset layout: 0000k.tar with KEY.jpg|png + KEY.txt + KEY.json, some samples broken."""
    root = tmp_path_factory.mktemp("shards")
    for shard in range(SHARDS):
        with tarfile.open(root / f"{shard:05d}.tar", "w") as tar:
            for i in range(PER_SHARD):
                key = f"{shard:05d}{i:04d}"
                ext = "png" if i % 2 else "jpg"
                image = _png((shard * 60, i * 40, 90), "PNG" if ext == "png" else "JPEG")
                if (shard, i) == CORRUPT_IMAGE:
                    image = image[:25]
                _add(tar, f"{key}.{ext}", image)
                caption = f"caption {key}".encode()
                if (shard, i) == BAD_CAPTION:
                    caption = b"\xff\xfe not utf-8"
                if (shard, i) != NO_CAPTION:
                    _add(tar, f"{key}.txt", caption)
                _add(tar, f"{key}.json", json.dumps({"key": key}).encode())
    return root


def _good_captions() -> set[str]:
    bad = {CORRUPT_IMAGE, BAD_CAPTION, NO_CAPTION}
    return {f"caption {s:05d}{i:04d}" for s in range(SHARDS) for i in range(PER_SHARD) if (s, i) not in bad}


def test_tar_shards_stream_pairs_and_count_corrupt_samples(shard_dir):
    pairs = load_image_text_pairs(shard_dir, rank=0, world_size=1)
    rows = list(pairs)
    assert {row["text"] for row in rows} == _good_captions()
    assert len(rows) == SHARDS * PER_SHARD - BAD
    assert all(row["image"].mode == "RGB" and row["image"].size == (8, 8) for row in rows)
    assert pairs.skip_counter.value == BAD


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_read_disjoint_parts_that_cover_everything(shard_dir, world_size):
    counter = SkipCounter()
    seen: list[str] = []
    for rank in range(world_size):
        seen += [
            row["text"]
            for row in load_image_text_pairs(
                str(shard_dir / "*.tar"), rank=rank, world_size=world_size, counter=counter
            )
        ]
    assert len(seen) == len(set(seen)) and set(seen) == _good_captions()
    assert counter.value == BAD


@pytest.mark.parametrize("world_size", [1, 3])
def test_dataloader_workers_share_shards_and_the_skip_count(shard_dir, world_size):
    counter = SkipCounter()
    shards = sorted(str(p) for p in shard_dir.glob("*.tar"))
    texts: list[str] = []
    for rank in range(world_size):
        pairs = load_image_text_pairs(shards, rank=rank, world_size=world_size, counter=counter)
        loader = torch.utils.data.DataLoader(pairs, batch_size=None, num_workers=2, collate_fn=lambda row: row["text"])
        texts += list(loader)
    assert len(texts) == len(set(texts)) and set(texts) == _good_captions()
    assert counter.value == BAD  # counted in the workers, read in this process


def test_truncated_shard_is_skipped_not_fatal(shard_dir, tmp_path):
    data = (shard_dir / "00000.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[:1000])  # ends inside the first image
    pairs = load_image_text_pairs([str(tmp_path / "cut.tar"), str(shard_dir / "00001.tar")], rank=0, world_size=1)
    texts = [row["text"] for row in pairs]
    assert len(texts) == PER_SHARD - 1  # shard 1 minus its corrupt image
    assert pairs.skip_counter.value == 2


def test_webdataset_grouping_keys_on_the_name_before_its_first_dot(tmp_path):
    """webdataset groups ``KEY.seg.png`` with ``KEY.txt``; a sample holding two captions is one counted skip
    and the shard reads on."""
    with tarfile.open(tmp_path / "00000.tar", "w") as tar:
        _add(tar, "a.seg.png", _png((200, 0, 0)))
        _add(tar, "a.txt", b"two dots")
        _add(tar, "b.png", _png((0, 200, 0)))
        _add(tar, "b.txt", b"first caption")
        _add(tar, "b.txt", b"second caption")
        _add(tar, "c.png", _png((0, 0, 200)))
        _add(tar, "c.txt", b"after the duplicate")
    pairs = load_image_text_pairs(str(tmp_path / "00000.tar"), rank=0, world_size=1)
    assert sorted(row["text"] for row in pairs) == ["after the duplicate", "first caption", "two dots"]
    assert pairs.skip_counter.value == 1


def test_imagefolder_with_metadata_jsonl(tmp_path):
    lines = []
    for i in range(5):
        name = f"img{i}.png"
        (tmp_path / name).write_bytes(_png((i * 50, 0, 0)) if i != 3 else b"not an image")
        lines.append(json.dumps({"file_name": name, "text": f"red level {i}"}))
    (tmp_path / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    pairs = load_image_text_pairs(tmp_path, rank=0, world_size=1)
    assert sorted(row["text"] for row in pairs) == [f"red level {i}" for i in (0, 1, 2, 4)]
    assert pairs.skip_counter.value == 1


def test_saved_dataset_streams_and_loads_map_style(tmp_path):
    images = [Image.new("RGB", (6, 6), (i * 20, 0, 0)) for i in range(10)]
    table = datasets.Dataset.from_dict(
        {"picture": images, "caption": [f"shade {i}" for i in range(10)], "other": list(range(10))},
        features=datasets.Features(
            {"picture": datasets.Image(), "caption": datasets.Value("string"), "other": datasets.Value("int64")}
        ),
    )
    datasets.DatasetDict({"train": table, "validation": table.select(range(2))}).save_to_disk(str(tmp_path / "saved"))
    streamed = load_image_text_pairs(tmp_path / "saved", rank=1, world_size=2)
    other = load_image_text_pairs(tmp_path / "saved", rank=0, world_size=2)
    texts = [row["text"] for row in streamed] + [row["text"] for row in other]
    assert sorted(texts) == sorted(f"shade {i}" for i in range(10))
    mapped = load_image_text_pairs(tmp_path / "saved", split="validation", streaming=False)
    assert mapped.column_names == ["image", "text"] and mapped[1]["text"] == "shade 1"
    assert mapped[0]["image"].size == (6, 6)


def test_unknown_layout_says_what_is_expected(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="imagefolder"):
        load_image_text_pairs(tmp_path)


def test_trainer_callback_logs_the_skip_count():
    from transformers import TrainerControl, TrainerState, TrainingArguments

    counter = SkipCounter()
    counter.add(4)
    callback = SkippedSamplesCallback(counter)
    state = TrainerState()
    logs = {"loss": 1.0}
    state.log_history.append(dict(logs))
    callback.on_log(TrainingArguments(output_dir="unused", report_to=[]), state, TrainerControl(), logs=logs)
    assert logs["skipped_samples"] == 4 and state.log_history[-1]["skipped_samples"] == 4


# -- issue 17 #9: no stale rows, RGB map-style rows, a bad metadata line skipped, skips in train-clip's logs ----


def _shard(path: Path, captions: list[str], mode: str = "RGB", corrupt: int | None = None) -> None:
    with tarfile.open(path, "w") as tar:
        for i, caption in enumerate(captions):
            buffer = io.BytesIO()
            Image.new(mode, (8, 8), 120).save(buffer, format="PNG")
            _add(tar, f"{i:04d}.png", buffer.getvalue()[:25] if i == corrupt else buffer.getvalue())
            _add(tar, f"{i:04d}.txt", caption.encode())


def test_map_style_tar_rows_follow_a_rewritten_shard(tmp_path):
    shard = tmp_path / "00000.tar"
    _shard(shard, ["an old caption", "another old one"])
    before = load_image_text_pairs(str(shard), streaming=False)
    assert sorted(before["text"]) == ["an old caption", "another old one"]
    _shard(shard, ["new", "newer", "newest"])
    after = load_image_text_pairs(str(shard), streaming=False)
    assert sorted(after["text"]) == ["new", "newer", "newest"]


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_map_style_rows_are_rgb(tmp_path, mode):
    _shard(tmp_path / "00000.tar", ["grey", "grey too"], mode=mode)
    pairs = load_image_text_pairs(str(tmp_path / "00000.tar"), streaming=False)
    assert {row["image"].mode for row in pairs} == {"RGB"} and pairs[0]["image"].mode == "RGB"


@pytest.mark.parametrize("streaming", [True, False])
def test_a_non_utf8_metadata_line_is_skipped_and_counted(tmp_path, streaming):
    lines = []
    for i in range(4):
        (tmp_path / f"img{i}.png").write_bytes(_png((i * 50, 0, 0)))
        lines.append(json.dumps({"file_name": f"img{i}.png", "text": f"red level {i}"}).encode())
    lines[2] = b'{"file_name": "img2.png", "text": "caf\xe9 latin-1"}'
    (tmp_path / "metadata.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    pairs = load_image_text_pairs(tmp_path, streaming=streaming, rank=0, world_size=1)
    assert sorted(row["text"] for row in pairs) == ["red level 0", "red level 1", "red level 3"]
    assert pairs.skip_counter.value == 1


def test_train_clip_logs_the_skipped_samples(tmp_path):
    from hf_limber.training.clip_recipe import ClipRecipeArguments, train_clip
    from hf_limber.training.contrastive_trainer import ContrastiveTrainingArguments

    _shard(tmp_path / "00000.tar", [f"a red square number {i}" for i in range(9)], corrupt=4)
    args = ClipRecipeArguments(dataset=str(tmp_path / "00000.tar"), model="tiny-vit", eval_split=None, vocab_size=300)
    training = ContrastiveTrainingArguments(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=4,
                                            logging_steps=1, use_cpu=True, report_to="none", save_strategy="no")
    trainer = train_clip(args, training)
    assert [entry["skipped_samples"] for entry in trainer.state.log_history if "loss" in entry] == [1]
