"""`hf-limber data emoji-scenes`: canvases with 1-3 emoji, COCO-style captions and VQA-style questions."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from .catalog import Concept
from .plan import (
    DEFAULT_HELD_OUT_STYLES,
    check_image_size,
    check_output_dir,
    check_splits,
    plan_build,
    rows_to_dataset,
    test_split_name,
)
from .render import TileCache, parse_colour, png_bytes
from .scene_text import Placed, captions, questions, summary
from .vocabulary import scene_noun
from .sources import ArtworkSource

if TYPE_CHECKING:
    from datasets import DatasetDict, Features

# Well separated hues, so a colour name is never in doubt at low resolution.
PATCH_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 38, 38),
    "green": (22, 163, 74),
    "blue": (37, 99, 235),
    "yellow": (250, 204, 21),
    "purple": (147, 51, 234),
    "orange": (249, 115, 22),
}
# Of a grid cell's side (small, large); a large emoji still leaves a rim of its coloured square visible.
OBJECT_SIZES = (0.45, 0.75)
PATCH_PROBABILITY = 0.4
PATCH_INSET = 0.04  # leaves a background gap between neighbouring patches
PATCH_RADIUS = 0.08  # of a cell's side: the patches' rounded corners
NOVEL_SPLIT = "test_novel_concepts"


def scene_features() -> Features:
    from datasets import Features, Image, Sequence, Value

    return Features(
        {
            "image": Image(),
            "scene_id": Value("string"),
            "style": Value("string"),
            "captions": Sequence(Value("string")),
            "summary": Value("string"),
            "objects": [
                {
                    "name": Value("string"),
                    "noun": Value("string"),
                    "codepoints": Value("string"),
                    "category": Value("string"),
                    "size": Value("string"),
                    "patch_color": Value("string"),
                    "row": Value("int32"),
                    "col": Value("int32"),
                    "box": Sequence(Value("int32"), length=4),
                }
            ],
            "questions": [
                {
                    "question": Value("string"),
                    "question_type": Value("string"),
                    "answer_type": Value("string"),
                    "answers": Sequence(Value("string"), length=10),
                    "multiple_choice_answer": Value("string"),
                }
            ],
        }
    )


class SceneComposer:
    """Draws one scene: distinct cells, sizes and patches chosen by the scene's own RNG."""

    def __init__(self, cache: TileCache, image_size: int, grid: int, background: tuple[int, int, int],
                 patch_probability: float = PATCH_PROBABILITY, object_sizes: Sequence[float] = OBJECT_SIZES) -> None:
        if grid not in (2, 3):
            raise ValueError(f"grid must be 2 or 3 cells a side (positions are named for those), got {grid}")
        if not 0 <= patch_probability <= 1:
            raise ValueError(f"patch_probability is a share of the objects, in [0, 1]; got {patch_probability}")
        self.cache, self.image_size, self.grid, self.background = cache, image_size, grid, background
        small, large = object_sizes if len(object_sizes) == 2 else (0, 0)
        if not 0 < small < large <= 1:
            raise ValueError(f"object_sizes is (small, large), shares of a cell's side with 0 < small < large <= 1; "
                             f"got {tuple(object_sizes)}")
        self.patch_probability, self.sizes = patch_probability, {"small": small, "large": large}
        self.cell = image_size / grid

    def compose(
        self, source: ArtworkSource, index: dict[str, str], pool: list[Concept], rng: random.Random
    ) -> tuple[Image.Image, list[Placed]]:
        count = rng.randint(1, 3)
        cells = rng.sample([(r, c) for r in range(self.grid) for c in range(self.grid)], count)
        colours = rng.sample(list(PATCH_COLOURS), count)  # distinct, so "the red square" names one emoji
        canvas = Image.new("RGB", (self.image_size, self.image_size), self.background)
        draw = ImageDraw.Draw(canvas)
        placed: list[Placed] = []
        used: set[str] = set()
        for (row, col), colour in zip(cells, colours, strict=True):
            size = rng.choice(list(self.sizes))
            pixels = round(self.sizes[size] * self.cell)
            concept, tile = self._draw_concept(source, index, pool, used, pixels, rng)
            patch = colour if rng.random() < self.patch_probability else None
            left, top = col * self.cell, row * self.cell
            if patch:
                inset = PATCH_INSET * self.cell
                box = (
                    round(left + inset),
                    round(top + inset),
                    round(left + self.cell - inset) - 1,
                    round(top + self.cell - inset) - 1,
                )
                draw.rounded_rectangle(box, radius=round(self.cell * PATCH_RADIUS), fill=PATCH_COLOURS[patch])
            if patch:  # centred, so the colour shows on every side
                x, y = round(left + (self.cell - pixels) / 2), round(top + (self.cell - pixels) / 2)
            else:  # jitter inside the cell varies layouts while relations between cells stay exact
                x, y = round(left + rng.uniform(0, self.cell - pixels)), round(top + rng.uniform(0, self.cell - pixels))
            canvas.paste(tile, (x, y), tile)
            placed.append(
                Placed(
                    noun=scene_noun(concept),
                    name=concept.name,
                    codepoints=concept.codepoints,
                    category=concept.category,
                    size=size,
                    patch=patch,
                    row=row,
                    col=col,
                    box=(x, y, x + pixels, y + pixels),
                )
            )
        return canvas, placed

    def _draw_concept(
        self,
        source: ArtworkSource,
        index: dict[str, str],
        pool: list[Concept],
        used: set[str],
        pixels: int,
        rng: random.Random,
    ) -> tuple[Concept, Image.Image]:
        # Retry on the rare unreadable file: the cache counts it, the scene takes another concept.
        for _ in range(20):
            concept = rng.choice(pool)
            if concept.key in used:
                continue
            tile = self.cache.tile(source, concept.key, index[concept.key], pixels)
            if tile is not None:
                used.add(concept.key)
                return concept, tile
        raise RuntimeError(
            f"No readable artwork left in style {source.style!r} after 20 tries; check the source files."
        )


def build_emoji_scenes(
    out_dir: str | os.PathLike[str],
    styles: Sequence[str] | None = None,
    held_out_styles: Sequence[str] = DEFAULT_HELD_OUT_STYLES,
    num_scenes: int = 4000,
    num_test_scenes: int = 500,
    image_size: int = 128,
    grid: int = 2,
    background: str | tuple[int, int, int] = "white",
    captions_per_scene: int = 5,
    seed: int = 0,
    limit: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    npm_dir: str | os.PathLike[str] | None = None,
    validation_fraction: float = 0.1,
    vocabulary: str = "all",
    patch_probability: float = PATCH_PROBABILITY,
    object_sizes: Sequence[float] = OBJECT_SIZES,
    progress: bool = True,
) -> DatasetDict:
    """Build and save the scene dataset; returns the saved ``DatasetDict``.

    Concepts are split (seeded, ``validation_fraction`` held back) into seen and novel ones. Splits:
    ``train`` (``num_scenes`` scenes of seen concepts in the training styles); ``validation`` (new
    scenes of the same seen concepts and styles: the paper's setting, where the objects of the test
    images were named in training); ``test_novel_concepts`` (training styles, only concepts no
    training caption names); one ``test_<style>`` per held-out style (seen concepts, an artwork style
    never trained on). Each evaluation split has ``num_test_scenes``. ``patch_probability`` is the share
    of objects drawn on a coloured square (the colour questions need some; 0 draws none);
    ``object_sizes`` the sides of small and large objects as shares of a cell's side. ``vocabulary`` chooses the
    concepts (`data.vocabulary`). Every scene is drawn from its own seeded RNG, so a scene does not
    change when other parameters change the number of scenes.
    """
    from datasets import DatasetDict

    started = time.perf_counter()
    plan = plan_build(styles, held_out_styles, npm_dir, False, limit, seed, validation_fraction, vocabulary)
    check_output_dir(out_dir)
    check_image_size(image_size)
    fill = parse_colour(background)
    # Captions may name the background only when it has a plain colour name.
    named = isinstance(background, str) and not background.startswith("#")
    background_words = f"plain {background}" if named else "plain"
    cache = TileCache(cache_dir)
    composer = SceneComposer(cache, image_size, grid, fill, patch_probability, object_sizes)
    indexes = {style: source.index(plan.catalog) for style, source in plan.report.found.items()}
    candidates = [c for c in plan.catalog.concepts if scene_noun(c)]
    all_nouns = sorted({scene_noun(c) for c in candidates})

    held_out = {test_split_name(style): [style] for style in plan.held_out_styles}
    # split -> (styles drawn in, whether its concepts are the seen ones)
    layout = {"train": (plan.training_styles, True), "validation": (plan.training_styles, True),
              NOVEL_SPLIT: (plan.training_styles, False), **{split: (styles_here, True)
                                                             for split, styles_here in held_out.items()}}
    counts = {split: num_scenes if split == "train" else num_test_scenes for split in layout}
    check_splits({split: range(total) for split, total in counts.items()}, list(counts))
    pools = {
        (split, style): [c for c in candidates if c.key in indexes[style] and plan.is_seen(c) == seen]
        for split, (styles_here, seen) in layout.items()
        for style in styles_here
    }
    splits = {}
    for split, total in counts.items():
        styles_here = layout[split][0]
        rows = []
        for i in tqdm(range(total), desc=f"scenes {split}", disable=not progress, unit="scene"):
            rng = random.Random(f"{seed}/{split}/{i}")
            style = rng.choice(styles_here)
            pool = pools[split, style]
            if len(pool) < 3:
                raise ValueError(
                    f"Style {style!r} has only {len(pool)} usable concepts for split {split!r}; "
                    "raise --limit or lower --validation-fraction."
                )
            image, placed = composer.compose(plan.report.found[style], indexes[style], pool, rng)
            present = {o.noun for o in placed}
            absent = rng.choice([noun for noun in all_nouns if noun not in present])
            rows.append(
                {
                    "image": {"bytes": png_bytes(image), "path": None},
                    "scene_id": f"{split}-{i:06d}",
                    "style": style,
                    "captions": captions(placed, grid, background_words, rng, captions_per_scene),
                    "summary": summary(placed),
                    "objects": [
                        {
                            "name": o.name,
                            "noun": o.noun,
                            "codepoints": o.codepoints,
                            "category": o.category,
                            "size": o.size,
                            "patch_color": o.patch,
                            "row": o.row,
                            "col": o.col,
                            "box": list(o.box),
                        }
                        for o in placed
                    ],
                    "questions": questions(placed, absent, grid, rng),
                }
            )
        splits[split] = rows_to_dataset(rows, scene_features())
    dataset = DatasetDict(splits)
    from .card import save_build, write_scenes_card

    parameters = {"num_scenes": num_scenes, "num_test_scenes": num_test_scenes, "image_size": image_size,
                  "grid": grid, "background": list(fill), "captions_per_scene": captions_per_scene, "seed": seed,
                  "limit": limit, "validation_fraction": validation_fraction, "vocabulary": vocabulary,
                  "patch_probability": patch_probability, "object_sizes": list(object_sizes)}
    save_build(out_dir, dataset, plan, indexes, cache, len(candidates), parameters, write_scenes_card, started)
    return dataset
