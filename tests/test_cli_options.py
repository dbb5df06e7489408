"""Command-line options take their defaults and types from the settings they fill (one place each):
`eval-limber` from LimberEvalSettings, `eval-clip` from ClipEvalSettings, `data emoji | emoji-scenes`
from the builders' keyword arguments; the spellings recipes and scripts use keep parsing."""

import argparse
import dataclasses
import inspect

import pytest

from hf_limber.app.options import Option, add_options, values
from hf_limber.cli import build_parser
from hf_limber.data.emoji import build_emoji_dataset
from hf_limber.data.scenes import build_emoji_scenes
from hf_limber.evaluation.clip_report import ClipEvalSettings
from hf_limber.evaluation.limber_report import LimberEvalSettings
from hf_limber.training.limber_recipe import cache_features


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("settings_type, command", [(LimberEvalSettings, "eval-limber"), (ClipEvalSettings, "eval-clip")])
def test_evaluation_options_default_to_the_settings_class(settings_type, command):
    parsed = values(settings_type, parse(command, "model", "data"))
    assert parsed.pop("split") is None  # the command picks the split (validation / the first test*)
    assert parsed, "the command offers settings"
    for name, value in parsed.items():
        default = next(field.default for field in dataclasses.fields(settings_type) if field.name == name)
        assert value == (list(default) if isinstance(default, tuple) else default), name


@pytest.mark.parametrize("builder, command", [(build_emoji_dataset, "emoji"), (build_emoji_scenes, "emoji-scenes")])
def test_data_options_default_to_the_builders_keyword_arguments(builder, command):
    parsed = values(builder, parse("data", command, "out"))
    defaults = {name: p.default for name, p in inspect.signature(builder).parameters.items() if name != "out_dir"}
    assert set(parsed) == set(defaults)  # every keyword argument is on the command line
    for name, value in parsed.items():
        assert value == (list(defaults[name]) if isinstance(defaults[name], tuple) else defaults[name]), name


def test_cache_features_batch_size_defaults_to_the_function():
    assert parse("cache-features", "recipe.yaml", "out").batch_size == \
        inspect.signature(cache_features).parameters["batch_size"].default


def test_the_spellings_in_use_keep_parsing():
    args = parse("eval-limber", "m", "d", "--split", "test", "--num-examples", "4", "--vqa-shots", "--max-new-tokens",
                 "4", "--repetition-penalty", "1.0", "--no-stop-at-sentence-end")
    settings = LimberEvalSettings(**values(LimberEvalSettings, args))
    assert (settings.split, settings.num_examples, list(settings.vqa_shots)) == ("test", 4, [])
    assert settings.max_new_tokens == 4 and settings.repetition_penalty == 1.0 and not settings.stop_at_sentence_end
    assert parse("eval-limber", "m", "d", "--vqa-shots", "0", "2").vqa_shots == [0, 2]

    args = parse("eval-clip", "m", "d", "--label-columns", "name", "--templates", "simple", "--shots", "1", "4",
                 "--caption-column", "", "--probe-column", "")
    settings = ClipEvalSettings(**{**values(ClipEvalSettings, args), "split": "test"})
    assert settings.label_columns == ["name"] and settings.template_sets == ["simple"] and settings.shots == [1, 4]
    assert settings.caption_column is None and settings.probe_column is None  # '' skips retrieval and the probes

    args = parse("data", "emoji-scenes", "out", "--held-out", "openmoji,noto", "--captions", "3", "--no-progress",
                 "--image-size", "64", "--limit", "40")
    assert args.held_out_styles == ["openmoji", "noto"] and args.captions_per_scene == 3 and not args.progress
    assert (args.image_size, args.limit) == (64, 40)
    assert parse("data", "emoji", "out", "--skin-tones").include_skin_tones


def test_an_option_for_a_missing_field_or_one_without_a_default_is_refused():
    parser = argparse.ArgumentParser()
    with pytest.raises(ValueError, match="no field 'num_exampels'"):
        add_options(parser, LimberEvalSettings, {"num_exampels": Option("typo")})
    with pytest.raises(ValueError, match="split has no default"):
        add_options(parser, LimberEvalSettings, {"split": Option("no default")})
