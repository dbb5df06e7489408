"""What a build covers: which styles train, which are held out, which concepts, which split.

Shared by the single-emoji and the scene builders so both split styles and concepts the
same way for the same seed.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..staging import check_target, replaced_when_complete
from .catalog import Catalog, Concept, assign_split, load_catalog
from .sources import SourceReport, discover_sources
from .vocabulary import select_concepts

if TYPE_CHECKING:
    from datasets import Dataset, Features

DEFAULT_HELD_OUT_STYLES: tuple[str, ...] = ("openmoji",)


def test_split_name(style: str) -> str:
    # Split names must be word characters; style names use hyphens.
    return "test_" + style.replace("-", "_")


@dataclass
class BuildPlan:
    report: SourceReport
    catalog: Catalog
    training_styles: list[str]
    held_out_styles: list[str]
    seed: int
    validation_fraction: float

    def split_of(self, concept: Concept, style: str) -> str:
        if style in self.held_out_styles:
            return test_split_name(style)
        return assign_split(concept.split_key, self.seed, self.validation_fraction)

    def is_seen(self, concept: Concept) -> bool:
        """Whether training data names this concept (not held back as a novel one)."""
        return assign_split(concept.split_key, self.seed, self.validation_fraction) == "train"

    def styles_of(self, split: str) -> list[str]:
        if split in ("train", "validation"):
            return self.training_styles
        return [style for style in self.held_out_styles if test_split_name(style) == split]

    @property
    def split_names(self) -> list[str]:
        return ["train", "validation"] + [test_split_name(style) for style in self.held_out_styles]


def plan_build(
    styles: Sequence[str] | None = None,
    held_out_styles: Sequence[str] = DEFAULT_HELD_OUT_STYLES,
    npm_dir: str | os.PathLike[str] | None = None,
    include_skin_tones: bool = False,
    limit: int | None = None,
    seed: int = 0,
    validation_fraction: float = 0.1,
    vocabulary: str = "all",
) -> BuildPlan:
    """Styles found, held out and trained on; the concepts of ``vocabulary`` (`data.vocabulary`),
    ``limit`` of them when given; and the seeded split of concepts into seen and held-back ones."""
    report = discover_sources(tuple(styles) if styles else None, npm_dir)
    held_out = list(dict.fromkeys(held_out_styles))
    absent = [style for style in held_out if style not in report.found]
    if absent:
        reasons = "; ".join(f"{s.label}: {why}" for s, why in report.not_used if s.style in absent)
        raise ValueError(
            f"Held-out styles {absent} are not available (found: {sorted(report.found)}). "
            f"Install their packages or pick held-out styles among those found. {reasons}"
        )
    training = [style for style in report.found if style not in held_out]
    if not training:
        raise ValueError(
            f"Every available style ({sorted(report.found)}) is held out; leave at least one for training."
        )
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1): the validation split needs concepts, "
                         f"got {validation_fraction}")
    catalog = load_catalog(npm_dir, include_skin_tones=include_skin_tones)
    if vocabulary != "all":
        drawn_by = {style: source.index(catalog) for style, source in report.found.items()}
        catalog = Catalog(select_concepts(catalog.concepts, vocabulary, drawn_by), catalog.metadata_sources)
    if limit is not None:
        catalog = _limited(catalog, limit, seed)
    return BuildPlan(report, catalog, training, held_out, seed, validation_fraction)


def _limited(catalog: Catalog, limit: int, seed: int) -> Catalog:
    """A seeded sample of ``limit`` base concepts (with their skin tones) spread over all categories."""
    bases = [concept for concept in catalog.concepts if concept.base_key is None]
    if limit < 1:
        raise ValueError(f"limit must be a positive number of concepts, got {limit}")
    chosen = {concept.key for concept in random.Random(seed).sample(bases, min(limit, len(bases)))}
    concepts = [concept for concept in catalog.concepts if concept.split_key in chosen]
    return Catalog(concepts=concepts, metadata_sources=catalog.metadata_sources)


def begin_build(out_dir: str | os.PathLike[str], image_size: int, **plan: Any) -> BuildPlan:
    """What a builder does before it draws anything: the plan (`plan_build`'s keyword arguments), then
    the checks that the output folder may be written and that the image size makes sense."""
    build_plan = plan_build(**plan)
    check_output_dir(out_dir)
    check_image_size(image_size)
    return build_plan


def rows_to_dataset(rows: list[dict[str, Any]], features: Features) -> Dataset:
    """A Dataset with ``features`` even when ``rows`` is empty (``from_list`` would drop the columns)."""
    from datasets import Dataset

    return Dataset.from_dict({name: [row[name] for row in rows] for name in features}, features=features)


def _is_build(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file()


def check_output_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``out_dir`` as a Path, if a build may go there: new, empty, or an earlier build (replaced at the end)."""
    return check_target(out_dir, _is_build, "build")


def staged_output(out_dir: str | os.PathLike[str]) -> AbstractContextManager[Path]:
    """A fresh folder beside ``out_dir`` to build into; it takes ``out_dir``'s place only when the build
    is complete and reads back (`staging.replaced_when_complete`)."""
    return replaced_when_complete(out_dir, _is_build, "build", check=_check_reads_back)


def _check_reads_back(folder: Path) -> None:
    from datasets import load_from_disk

    for split, rows in load_from_disk(str(folder)).items():
        rows[0]  # the first row decodes: the build can be used


def check_splits(rows: dict[str, list[Any]], split_names: Sequence[str]) -> None:
    """Refuse a build with an empty split: `load_from_disk` could not read it back."""
    empty = [split for split in split_names if not rows.get(split)]
    if empty:
        raise ValueError(
            f"The build would leave split(s) {empty} empty ({ {s: len(rows.get(s, [])) for s in split_names} } rows); "
            "raise --limit (more concepts), raise --validation-fraction above 0, or check the styles found."
        )


def check_image_size(image_size: int, name: str = "image_size") -> None:
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"{name} must be a whole number of pixels of at least 8, got {image_size!r}.")
