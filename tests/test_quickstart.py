"""The quickstart end to end at toy size: the run file's stages (hf-limber commands, recipes plus
overrides) all run, models get cards, REPORT.md has the tables and intervals, and a second run reuses
every finished stage; a changed stage runs again with the stages after it. The same commands typed one
by one give bit-identical losses, metrics and weights (the runner adds nothing to what they do)."""

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from limber_parts import language_model, word_tokenizer

from hf_limber.app.quickstart import RUN_FILE, run_quickstart
from hf_limber.app.quickstart_report import missing_styles_warning
from hf_limber.app.stages import load_stages
from hf_limber.cli import build_parser, main
from hf_limber.data.sources import STYLES

SCENES = ["--vocabulary", "common-nouns", "--limit", "40", "--validation-fraction", "0.25", "--no-progress"]


def toy_run_file(path: Path, lm: Path, clip_epochs: str = "1") -> Path:
    """recipes/quickstart.yaml's stages with toy sizes: the same commands and recipes, other overrides."""
    recipes = RUN_FILE.parent
    limber = ["--image_encoder", "{out}/clip", "--language_model", str(lm), "--dataset", "{out}/data/emoji-scenes"]
    evaluate = ["--num-examples", "4", "--vqa-shots", "0", "--max-new-tokens", "4"]
    stages = [
        {"name": "data", "description": "toy data", "commands": [
            ["data", "emoji", "{out}/data/emoji", "--image-size", "32", *SCENES],
            ["data", "emoji-scenes", "{out}/data/emoji-scenes", "--image-size", "64", "--num-scenes", "24",
             "--num-test-scenes", "4", *SCENES]]},
        {"name": "clip", "description": "toy CLIP", "resumes": ["{out}/clip"], "commands": [
            ["train-clip", f"{recipes}/clip/emoji-small.yaml", "--model", "tiny-vit", "--vocab_size", "300",
             "--dataset", "{out}/data/emoji", "--output_dir", "{out}/clip", "--num_train_epochs", clip_epochs,
             "--per_device_train_batch_size", "32", "--eval_strategy", "no", "--disable_tqdm", "true",
             "--logging_steps", "1"]]},
        {"name": "eval-clip", "description": "toy zero-shot", "commands": [
            ["eval-clip", "{out}/clip", "{out}/data/emoji", "--label-columns", "name", "--shots", "1",
             "--out", "{out}/clip/eval-test_openmoji", "--card"]]},
        {"name": "features", "description": "toy features", "commands": [
            ["cache-features", f"{recipes}/limber/emoji-smollm2.yaml", "{out}/scenes-features", *limber]]},
        {"name": "limber", "description": "toy LiMBeR", "resumes": ["{out}/limber"], "commands": [
            ["train-limber", f"{recipes}/limber/emoji-smollm2.yaml", *limber, "--cached_features",
             "{out}/scenes-features", "--output_dir", "{out}/limber", "--max_steps", "3",
             "--per_device_train_batch_size", "4", "--disable_tqdm", "true", "--logging_steps", "1"]]},
        {"name": "eval-limber", "description": "toy captions", "commands": [
            ["eval-limber", "{out}/limber", "{out}/data/emoji-scenes", "--split", split, *evaluate,
             "--out", f"{{out}}/limber/eval-{split}"] + (["--card"] if split == "validation" else [])
            for split in ("validation", "test_openmoji", "test_novel_concepts")]},
    ]
    path.write_text(yaml.safe_dump({"stages": stages}))
    return path


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    # One thread for the module: with two, torch's parallel reductions may sum in another order from run
    # to run (seen here in the CLIP's grad norms), and bit-identical comparisons below would be luck.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield from _toy_run(tmp_path_factory)
    torch.set_num_threads(threads)


def _toy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("quickstart")
    language_model("llama").save_pretrained(root / "lm")
    word_tokenizer().save_pretrained(root / "lm")
    run_file = toy_run_file(root / "toy.yaml", root / "lm")
    logs: list[str] = []
    state = run_quickstart(root / "run", run_file, log=logs.append)
    yield root, run_file, state, logs, outcome(root / "run")  # before later tests change the run folder


# Keys that hold where and when, not what was measured.
NOT_MEASURED = {"model", "dataset", "scorer", "seconds", "train_runtime", "train_samples_per_second",
                "train_steps_per_second"}


def outcome(out: Path) -> dict[str, Any]:
    """What a run measured: every logged training loss, every evaluation report (paths and timings left
    out) and the trained weights' bytes."""
    measured: dict[str, Any] = {}
    for path in sorted(out.glob("*/trainer_state.json")):
        history = json.loads(path.read_text())["log_history"]
        measured[str(path.relative_to(out))] = [{k: v for k, v in entry.items() if k not in NOT_MEASURED}
                                                for entry in history]
    for path in sorted(out.glob("*/eval-*/report.json")):
        report = json.loads(path.read_text())
        measured[str(path.relative_to(out))] = {k: v for k, v in report.items() if k not in NOT_MEASURED}
    for path in sorted(out.glob("*/model.safetensors")):
        measured[str(path.relative_to(out))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return measured


def test_the_run_file_names_real_commands_and_recipes():
    stages = load_stages(RUN_FILE, {"out": "/tmp/run", "recipes": str(RUN_FILE.parent)})
    assert [stage.name for stage in stages] == ["data", "clip", "eval-clip", "language-model", "features", "limber",
                                                "eval-limber"]
    parser = build_parser()
    for stage in stages:
        for command in stage.commands:
            parser.parse_args(command)  # every command line parses as the CLI's
            assert all(Path(arg).is_file() for arg in command if arg.endswith(".yaml"))


def test_every_stage_runs_and_leaves_models_cards_and_a_report(toy_run):
    root, _, state, logs, _ = toy_run
    out = root / "run"
    assert list(state["stages"]) == ["data", "clip", "eval-clip", "features", "limber", "eval-limber"]
    assert all(stage["seconds"] >= 0 for stage in state["stages"].values())
    for folder in (out / "clip", out / "limber"):
        card = (folder / "README.md").read_text()
        assert "model-index" in card and "## Citation" in card
    assert (out / "clip" / "model.safetensors").is_file() and (out / "limber" / "model.safetensors").is_file()
    report = (out / "REPORT.md").read_text()
    assert "| data |" in report and "| eval-limber |" in report and "**total**" in report
    assert "| name (" in report and "### Goals (issue 16)" in report and "95% interval" in report
    for split in ("validation", "test_openmoji", "test_novel_concepts"):
        assert f"### {split}:" in report and (out / "limber" / f"eval-{split}" / "examples.png").is_file()
    assert "](limber/eval-validation/examples.png)" in report
    for model in ("clip", "limber"):  # the cards say what the training computed in, and why
        assert re.search(r"- Precision: (fp32|bf16 autocast) \(precision: auto; this CPU \(\w+\)",
                         (out / model / "README.md").read_text())
    assert f"Artwork styles: {', '.join(sorted(STYLES))}." in report and "WARNING" not in report
    assert "HF_LIMBER_CLIP=" in logs[-1] and "spaces/demo/app.py" in logs[-1]


def test_the_same_commands_typed_one_by_one_give_bit_identical_losses_and_metrics(toy_run):
    root, run_file, _, _, by_runner = toy_run
    by_hand = root / "by-hand"
    for stage in yaml.safe_load(run_file.read_text())["stages"]:
        for command in stage["commands"]:
            assert main([arg.format(out=by_hand, recipes=RUN_FILE.parent) for arg in command]) == 0
    measured = outcome(by_hand)
    assert {"clip/trainer_state.json", "limber/trainer_state.json", "clip/eval-test_openmoji/report.json",
            "limber/eval-validation/report.json", "limber/model.safetensors"} <= set(measured)
    # The precision it ran in (model cards show it), a loss per step, then the summary.
    assert len(measured["limber/trainer_state.json"]) == 5 and "precision" in measured["limber/trainer_state.json"][0]
    assert measured == by_runner


def test_a_second_run_reuses_finished_stages_and_a_changed_one_reruns_with_what_follows(toy_run):
    root, run_file, _, _, _ = toy_run
    out = root / "run"
    weights = out / "limber" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    logs: list[str] = []
    again = run_quickstart(out, run_file, log=logs.append)
    assert sum("reused" in line for line in logs) == len(again["stages"])
    assert weights.stat().st_mtime_ns == before
    assert again["stages"] == json.loads((out / "stages.json").read_text())["stages"]

    changed = toy_run_file(root / "changed.yaml", root / "lm")
    spec = yaml.safe_load(changed.read_text())
    spec["stages"] = [stage for stage in spec["stages"] if stage["name"] != "clip" and stage["name"] != "eval-clip"
                      and stage["name"] != "features" and stage["name"] != "data"]
    spec["stages"][0]["commands"][0] = [arg if arg != "3" else "4" for arg in spec["stages"][0]["commands"][0]]
    spec["stages"][0]["commands"][0] += ["--overwrite_output_dir", "true"]
    changed.write_text(yaml.safe_dump(spec))
    logs = []
    run_quickstart(out, changed, log=logs.append)
    assert not any("reused" in line for line in logs)  # limber changed: it and eval-limber ran again
    assert json.loads((out / "limber" / "trainer_state.json").read_text())["global_step"] == 4


def test_fewer_styles_warn_in_the_terminal_and_the_report(tmp_path):
    (tmp_path / "data" / "emoji").mkdir(parents=True)
    (tmp_path / "data" / "emoji" / "build_report.json").write_text(json.dumps({"styles": {"twemoji": {}, "openmoji": {}}}))
    warning = missing_styles_warning(tmp_path)
    assert f"2 of {len(STYLES)} artwork styles" in warning and "missing: fluent-flat" in warning
    assert "scripts/setup quickstart" in warning


def test_quickstart_command_is_registered():
    args = build_parser().parse_args(["quickstart", "--out", "somewhere", "--fresh"])
    assert str(args.out) == "somewhere" and args.fresh and args.run_file == RUN_FILE


def test_an_edited_recipe_makes_its_stage_and_the_ones_after_it_run_again(tmp_path):
    from hf_limber.app.stages import Stage, run_stages

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("learning_rate: 0.001\n")
    stages = [Stage("first", "untouched", [["data", "x"]]), Stage("second", "reads the recipe", [["train", str(recipe)]]),
              Stage("third", "after it", [["eval", "y"]])]
    ran: list[str] = []
    run = lambda: run_stages(stages, tmp_path / "out", lambda command: ran.append(command[0]) or 0, log=lambda _: None)
    run()
    run()
    assert ran == ["data", "train", "eval"]  # the second run reused all three
    recipe.write_text("learning_rate: 0.01\n")
    run()
    assert ran[3:] == ["train", "eval"]


def test_every_command_of_the_real_run_file_parses():
    """recipes/quickstart.yaml's own command lines (the tests above run toy ones) are valid hf-limber commands."""
    from hf_limber.cli import build_parser

    parser = build_parser()
    for stage in load_stages(RUN_FILE, {"out": "runs/quickstart", "recipes": str(RUN_FILE.parent)}):
        for command in stage.commands:
            parser.parse_args(command)  # argparse exits on an unknown option or a bad value
