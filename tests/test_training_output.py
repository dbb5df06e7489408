"""train-limber / train-clip into a folder that holds an earlier run: resume when asked, refuse otherwise
(naming --overwrite_output_dir), never lose the earlier checkpoints unasked (issue 17 #6)."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset, DatasetDict
from limber_parts import image_encoder, language_model, word_tokenizer
from PIL import Image

from hf_limber.cli import main


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    image_encoder("clip-resnet").save_pretrained(root / "encoder")
    language_model("llama").save_pretrained(root / "lm")
    word_tokenizer().save_pretrained(root / "lm")
    rows = [{"image": Image.new("RGB", (40, 40), (40 * i, 20, 20)), "captions": ["a red apple"]} for i in range(8)]
    DatasetDict(train=Dataset.from_list(rows), validation=Dataset.from_list(rows[:2])).save_to_disk(root / "data")
    values = {"image_encoder": str(root / "encoder"), "language_model": str(root / "lm"), "dataset": str(root / "data"),
              "per_device_train_batch_size": 4, "max_steps": 2, "warmup_steps": 0, "bf16": False,
              "dataloader_num_workers": 0, "save_strategy": "steps", "save_steps": 1, "eval_strategy": "no"}
    (root / "recipe.yaml").write_text("\n".join(f"{key}: {json.dumps(value)}" for key, value in values.items()))
    return root / "recipe.yaml"


def steps_done(out) -> int:
    return max(int(path.name.split("-")[1]) for path in out.glob("checkpoint-*"))


def test_train_limber_resumes_or_refuses_an_earlier_run(recipe, tmp_path):
    out = tmp_path / "limber"
    train = ["train-limber", str(recipe), "--output_dir", str(out)]
    assert main(train) == 0
    before = {path.name: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()}
    assert {"checkpoint-1", "checkpoint-2", "model.safetensors"} <= {path.name for path in out.iterdir()}

    with pytest.raises(FileExistsError, match="--overwrite_output_dir") as refused:
        main(train)
    assert "--resume_from_checkpoint" in str(refused.value) and "checkpoint-2" in str(refused.value)
    assert {path.name: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()} == before

    assert main(train + ["--resume_from_checkpoint", "true", "--max_steps", "3"]) == 0
    assert steps_done(out) == 3 and (out / "checkpoint-1").is_dir()  # the earlier checkpoints are still there

    assert main(train + ["--overwrite_output_dir", "true", "--max_steps", "1"]) == 0


def test_resume_needs_a_checkpoint(recipe, tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        main(["train-limber", str(recipe), "--output_dir", str(tmp_path / "new"), "--resume_from_checkpoint", "true"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        main(["train-limber", str(recipe), "--output_dir", str(tmp_path / "new"),
              "--resume_from_checkpoint", str(tmp_path / "checkpoint-9")])


def test_train_clip_checks_the_output_folder_before_anything_else(tmp_path):
    out = tmp_path / "clip"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"an earlier model")
    (tmp_path / "recipe.yaml").write_text(f"dataset: {tmp_path / 'no-such-data'}\nmodel: tiny-vit\n")
    with pytest.raises(FileExistsError, match="--overwrite_output_dir"):
        main(["train-clip", str(tmp_path / "recipe.yaml"), "--output_dir", str(out)])
    assert (out / "model.safetensors").read_bytes() == b"an earlier model"
