"""The quickstart end to end at toy size: every stage runs, models get cards, REPORT.md has the
tables, and a second run reuses every finished stage instead of redoing it."""

import json

import pytest
from limber_parts import language_model, word_tokenizer

from hf_limber.cli import build_parser
from hf_limber.data.sources import STYLES
from hf_limber.quickstart import STAGES, QuickstartConfig, run_quickstart
from hf_limber.quickstart_report import missing_styles_warning


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("quickstart")
    language_model("llama").save_pretrained(root / "lm")
    word_tokenizer().save_pretrained(root / "lm")
    config = QuickstartConfig(
        out=root / "run", clip_preset="tiny-vit", clip_epochs=1, clip_batch_size=32, clip_vocab_size=300,
        emoji_limit=100, num_scenes=40, num_test_scenes=8, language_model=str(root / "lm"), limber_steps=3,
        limber_batch_size=4, eval_captions=4, vqa_shots=(0,), probe_shots=(1,),
    )
    logs: list[str] = []
    state = run_quickstart(config, log=logs.append)
    return config, state, logs


def test_every_stage_runs_and_leaves_models_cards_and_a_report(toy_run):
    config, state, logs = toy_run
    assert list(state["stages"]) == list(STAGES)
    assert all(stage["seconds"] >= 0 for stage in state["stages"].values())
    for folder in (config.clip, config.limber):
        card = (folder / "README.md").read_text()
        assert "model-index" in card and "## Citation" in card
    assert (config.clip / "model.safetensors").is_file() and (config.limber / "model.safetensors").is_file()
    report = (config.out / "REPORT.md").read_text()
    assert "| data |" in report and "| eval-limber |" in report and "**total**" in report
    assert "| subcategory (" in report and "| quickstart LiMBeR |" in report
    for plot in ("clip/eval-test_openmoji/few_shot.png", "limber/eval-validation/concept_recall.png"):
        assert f"]({plot})" in report and (config.out / plot).is_file()
    assert "HF_LIMBER_CLIP=" in logs[-1] and "spaces/demo/app.py" in logs[-1]


def test_a_second_run_reuses_finished_stages(toy_run):
    config, state, _ = toy_run
    weights = config.limber / "model.safetensors"
    before = weights.stat().st_mtime_ns
    logs: list[str] = []
    again = run_quickstart(config, log=logs.append)
    assert sum("reused" in line for line in logs) == len(STAGES)
    assert again["stages"] == json.loads((config.out / "stages.json").read_text())["stages"]
    assert weights.stat().st_mtime_ns == before
    changed = QuickstartConfig(**{**config.__dict__, "limber_steps": 4})
    with pytest.raises(SystemExit, match="other settings"):
        run_quickstart(changed, log=logs.append)


def test_quickstart_command_is_registered():
    args = build_parser().parse_args(["quickstart", "--out", "somewhere", "--fresh"])
    assert str(args.out) == "somewhere" and args.fresh


def test_the_report_names_the_styles_and_warns_when_some_are_missing(toy_run):
    config, state, logs = toy_run
    report = (config.out / "REPORT.md").read_text()
    assert f"Artwork styles: {', '.join(sorted(STYLES))}." in report  # the set-up installed all of them
    assert "WARNING" not in report and not any("WARNING" in line for line in logs)
    fewer = {"stages": {"data": {"result": {"styles": ["openmoji", "twemoji"],
                                            "missing_styles": ["fluent-flat", "noto"]}}}}
    warning = missing_styles_warning(fewer)
    assert "2 of 4 artwork styles" in warning and "missing: fluent-flat, noto" in warning
    assert "scripts/setup quickstart" in warning
