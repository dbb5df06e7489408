"""CLI errors that say what is wrong (issue 17 #15): a missing local model path, `eval_split: null`,
a typo in a shard path, a negative max_steps."""

from __future__ import annotations

import pytest

from hf_limber.cli import main
from hf_limber.data import load_image_text_pairs
from hf_limber.recipes import parse_recipe
from hf_limber.training.clip_recipe import ClipRecipeArguments
from hf_limber.training.contrastive_trainer import ContrastiveTrainingArguments
from hf_limber.training.limber_recipe import LimberArguments, LimberTrainingArguments


def test_a_missing_model_folder_is_named_as_missing(tmp_path):
    missing = tmp_path / "runs" / "no-such-model"
    image = tmp_path / "red.png"
    image.write_bytes(b"")
    for command in (["caption", str(missing), str(image)], ["eval-limber", str(missing), str(tmp_path)]):
        with pytest.raises(FileNotFoundError, match=f"{missing} does not exist") as error:
            main(command)
        assert "Repo id" not in str(error.value)
    recipe = tmp_path / "limber.yaml"
    recipe.write_text(f"image_encoder: {tmp_path}/encoder\nlanguage_model: ./lm-typo\ndataset: {tmp_path}\n")
    with pytest.raises(FileNotFoundError, match="lm-typo does not exist"):
        main(["train-limber", str(recipe), "--output_dir", str(tmp_path / "out")])


def test_eval_split_null_turns_evaluation_off(tmp_path):
    recipe = tmp_path / "clip.yaml"
    recipe.write_text("dataset: data\neval_split: null\neval_strategy: epoch\n")
    args, _ = parse_recipe(recipe, (ClipRecipeArguments, ContrastiveTrainingArguments), ["--output_dir", str(tmp_path)])
    assert args.eval_split is None
    args, _ = parse_recipe(recipe, (ClipRecipeArguments, ContrastiveTrainingArguments),
                           ["--output_dir", str(tmp_path), "--eval_split", "test"])
    assert args.eval_split == "test"  # the command line wins over the file
    recipe.write_text("image_encoder: e\nlanguage_model: l\ndataset: d\neval_split: null\n")
    args, _ = parse_recipe(recipe, (LimberArguments, LimberTrainingArguments), ["--output_dir", str(tmp_path)])
    assert args.eval_split is None
    recipe.write_text("image_encoder: e\nlanguage_model: l\ndataset: d\nprompt: null\n")
    with pytest.raises(ValueError, match="prompt: null is not allowed"):
        parse_recipe(recipe, (LimberArguments, LimberTrainingArguments), ["--output_dir", str(tmp_path)])


def test_eval_split_null_trains_clip_without_evaluation(tmp_path):
    from hf_limber.training.clip_recipe import train_clip

    recipe = tmp_path / "clip.yaml"
    recipe.write_text(f"dataset: {tmp_path / 'shard.tar'}\neval_split: null\neval_strategy: epoch\n")
    args, training = parse_recipe(recipe, (ClipRecipeArguments, ContrastiveTrainingArguments),
                                  ["--output_dir", str(tmp_path / "out")])
    with pytest.raises(FileNotFoundError, match="shard.tar"):
        train_clip(args, training)
    assert training.eval_strategy == "no"


def test_a_typo_in_a_shard_path_is_named(tmp_path):
    (tmp_path / "00000.tar").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="00001.tar"):
        load_image_text_pairs([str(tmp_path / "00000.tar"), str(tmp_path / "00001.tar")])
    with pytest.raises(FileNotFoundError, match="shards-typo"):
        load_image_text_pairs(str(tmp_path / "shards-typo" / "*.tar"))
    with pytest.raises(FileNotFoundError, match="0000.tar"):
        load_image_text_pairs(str(tmp_path / "0000.tar"), streaming=False)


@pytest.mark.parametrize("steps", ["-5", "-2"])
def test_a_negative_max_steps_says_what_it_takes(tmp_path, steps):
    recipe = tmp_path / "clip.yaml"
    recipe.write_text("dataset: data\n")
    with pytest.raises(ValueError, match=f"max_steps: {steps} is not a number of steps.*-1"):
        parse_recipe(recipe, (ClipRecipeArguments, ContrastiveTrainingArguments),
                     ["--output_dir", str(tmp_path), "--max_steps", steps])
    _, training = parse_recipe(recipe, (ClipRecipeArguments, ContrastiveTrainingArguments),
                               ["--output_dir", str(tmp_path), "--max_steps", "-1"])
    assert training.max_steps == -1
