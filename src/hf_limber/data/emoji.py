"""`hf-limber data emoji`: one image per (concept, style), split by style and concept."""

from __future__ import annotations

import os
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from .catalog import CATEGORIES
from .language import concept_caption
from .plan import DEFAULT_HELD_OUT_STYLES, begin_build, check_splits, rows_to_dataset
from .render import TileCache, on_background, parse_colour, png_bytes

if TYPE_CHECKING:
    from datasets import DatasetDict, Features


def emoji_features() -> Features:
    from datasets import ClassLabel, Features, Image, Sequence, Value

    return Features(
        {
            "image": Image(),
            "style": Value("string"),
            "codepoints": Value("string"),
            "emoji": Value("string"),
            "name": Value("string"),
            "category": ClassLabel(names=list(CATEGORIES)),
            "subcategory": Value("string"),
            "keywords": Sequence(Value("string")),
            "skin_tone": Value("string"),
            "caption": Value("string"),
        }
    )


def build_emoji_dataset(
    out_dir: str | os.PathLike[str],
    styles: Sequence[str] | None = None,
    held_out_styles: Sequence[str] = DEFAULT_HELD_OUT_STYLES,
    image_size: int = 64,
    background: str | tuple[int, int, int] = "white",
    include_skin_tones: bool = False,
    seed: int = 0,
    limit: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    npm_dir: str | os.PathLike[str] | None = None,
    validation_fraction: float = 0.1,
    common_concepts_only: bool = False,
    vocabulary: str = "all",
    progress: bool = True,
) -> DatasetDict:
    """Build and save the emoji concept dataset; returns the saved ``DatasetDict``.

    Splits: ``train`` and ``validation`` (whole concepts, in every training style) and one
    ``test_<style>`` per held-out style with every concept that style draws. With
    ``common_concepts_only`` only concepts drawn by every found style are kept, so each
    split has the same label set in every style. ``vocabulary`` chooses the concepts
    (`data.vocabulary`: "all", or "common-nouns", the scenes' vocabulary for a CLIP that LiMBeR uses). ``out_dir`` also receives ``README.md``
    (the dataset card), ``examples/<style>.png`` and ``build_report.json``.
    """
    from datasets import DatasetDict

    started = time.perf_counter()
    plan = begin_build(out_dir, image_size, styles=styles, held_out_styles=held_out_styles, npm_dir=npm_dir,
                       include_skin_tones=include_skin_tones, limit=limit, seed=seed,
                       validation_fraction=validation_fraction, vocabulary=vocabulary)
    fill = parse_colour(background)
    cache = TileCache(cache_dir)
    indexes = {style: source.index(plan.catalog) for style, source in plan.report.found.items()}
    concepts = plan.catalog.concepts
    if common_concepts_only:
        common = set.intersection(*(set(index) for index in indexes.values()))
        concepts = [concept for concept in concepts if concept.key in common]

    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for style, source in plan.report.found.items():
        index = indexes[style]
        for concept in tqdm(concepts, desc=f"emoji {style}", disable=not progress, unit="img"):
            if concept.key not in index:
                continue
            tile = cache.tile(source, concept.key, index[concept.key], image_size)
            if tile is None:
                continue
            rows[plan.split_of(concept, style)].append(
                {
                    "image": {"bytes": png_bytes(on_background(tile, fill)), "path": None},
                    "style": style,
                    "codepoints": concept.codepoints,
                    "emoji": concept.emoji,
                    "name": concept.name,
                    "category": CATEGORIES.index(concept.category),
                    "subcategory": concept.subcategory,
                    "keywords": list(concept.keywords),
                    "skin_tone": concept.skin_tone,
                    "caption": concept_caption(concept),
                }
            )
    # Styles come in blocks above; a seeded shuffle mixes them for readers that stream in order.
    random.Random(seed).shuffle(rows["train"])

    check_splits(rows, plan.split_names)
    features = emoji_features()
    dataset = DatasetDict({split: rows_to_dataset(rows.get(split, []), features) for split in plan.split_names})
    from .card import save_build, write_emoji_card

    parameters = {"image_size": image_size, "background": list(fill), "include_skin_tones": include_skin_tones,
                  "seed": seed, "limit": limit, "validation_fraction": validation_fraction,
                  "common_concepts_only": common_concepts_only, "vocabulary": vocabulary}
    save_build(out_dir, dataset, plan, indexes, cache, len(concepts), parameters, write_emoji_card, started)
    return dataset
