"""Dataset cards: sources, counts, licences and attributions, and an example grid per style.

The card carries no timestamps or timings, so two builds with the same inputs write the
same card; timings go to ``build_report.json``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from .plan import BuildPlan, staged_output
from .render import TileCache

if TYPE_CHECKING:
    from datasets import DatasetDict

GRID_COLUMNS = 8


def example_grid(images: Sequence[Image.Image], columns: int = GRID_COLUMNS, gap: int = 2) -> Image.Image:
    width, height = images[0].size
    rows = (len(images) + columns - 1) // columns
    grid = Image.new("RGB", (columns * (width + gap) - gap, rows * (height + gap) - gap), (200, 200, 200))
    for i, image in enumerate(images):
        grid.paste(image.convert("RGB"), ((i % columns) * (width + gap), (i // columns) * (height + gap)))
    return grid


def _examples_by_style(dataset: DatasetDict, per_style: int, styles: Sequence[str]) -> dict[str, tuple[str, list[int]]]:
    """style -> (split, row indices): the first rows of each style, from the first split that has it."""
    chosen: dict[str, tuple[str, list[int]]] = {}
    for split, rows in dataset.items():
        positions: dict[str, list[int]] = {}
        for i, style in enumerate(rows["style"]):
            if style not in chosen and len(positions.setdefault(style, [])) < per_style:
                positions[style].append(i)
        for style, indices in positions.items():
            chosen.setdefault(style, (split, indices))
    return {style: chosen[style] for style in styles if style in chosen}


def write_example_grids(
    out: Path, dataset: DatasetDict, per_style: int, styles: Sequence[str]
) -> dict[str, tuple[str, list[int]]]:
    (out / "examples").mkdir(exist_ok=True)
    chosen = _examples_by_style(dataset, per_style, styles)
    for style, (split, indices) in chosen.items():
        images = dataset[split].select(indices)["image"]
        example_grid(images, columns=min(GRID_COLUMNS, len(images))).save(out / "examples" / f"{style}.png")
    return chosen


def build_report(
    plan: BuildPlan,
    indexes: dict[str, dict[str, str]],
    dataset: DatasetDict,
    cache: TileCache,
    concepts_considered: int,
) -> dict[str, Any]:
    """Counts for the card and for callers: per style, per split, and what each source gave."""
    per_split = {split: dict(sorted(Counter(rows["style"]).items())) for split, rows in dataset.items()}
    images: Counter[str] = Counter()
    for split_counts in per_split.values():
        images.update(split_counts)
    return {
        "concepts": concepts_considered,
        "metadata_sources": plan.catalog.metadata_sources,
        "styles": {
            style: {
                "source": source.label,
                "registry": source.registry,
                "licence": source.licence.spdx,
                "role": "held out" if style in plan.held_out_styles else "training",
                "artwork_found": len(indexes[style]) - cache.absent[style],
                "images": images[style],
                "unreadable_skipped": cache.unreadable[style],
            }
            for style, source in plan.report.found.items()
        },
        "not_used": [
            {"source": source.label, "style": source.style, "why": why} for source, why in plan.report.not_used
        ],
        "splits": per_split,
        "cache": {"root": str(cache.root), "tiles_reused": cache.hits, "tiles_rendered": cache.misses},
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _front_matter(plan: BuildPlan, pretty_name: str, tasks: Sequence[str], total: int) -> str:
    licences = sorted({source.licence.spdx for source in plan.report.found.values()})
    size = "n<1K" if total < 1000 else "1K<n<10K" if total < 10_000 else "10K<n<100K"
    lines = ["---", f"pretty_name: {pretty_name}", "license:"] + [f"- {spdx}" for spdx in licences]
    lines += ["task_categories:"] + [f"- {task}" for task in tasks]
    lines += ["language:", "- en", "size_categories:", f"- {size}", "---"]
    return "\n".join(lines)


EMOJI_SPLITS = (
    "`train` and `validation` hold the training styles; validation holds whole concepts that train never "
    "shows (in every training style). Each `test_<style>` split holds one held-out style, unseen in training, "
    "for zero-shot and robustness evaluation."
)
SCENE_SPLITS = (
    "`train` holds scenes of the seen concepts in the training styles. `validation` holds new scenes of the "
    "same concepts and styles (the paper's setting: the objects were named in training, the pictures are "
    "new). `test_novel_concepts` holds scenes of concepts that no training caption names. Each "
    "`test_<style>` split holds scenes of the seen concepts in a held-out style, unseen in training."
)


def _common_sections(plan: BuildPlan, report: dict[str, Any], dataset: DatasetDict, changes: str,
                     splits_text: str) -> list[str]:
    styles = list(plan.report.found)
    source_rows = [
        [
            style,
            info["role"],
            info["source"],
            info["licence"],
            info["artwork_found"],
            info["images"],
            info["unreadable_skipped"],
        ]
        for style, info in report["styles"].items()
    ]
    split_rows = [
        [split] + [report["splits"][split].get(style, 0) for style in styles] + [dataset[split].num_rows]
        for split in dataset
    ]
    not_used = [f"- {entry['source']} (style `{entry['style']}`): {entry['why']}" for entry in report["not_used"]]
    licence_groups: dict[str, list[str]] = {}
    for style, source in plan.report.found.items():
        licence_groups.setdefault(source.licence.attribution + f" ({source.licence.url})", []).append(style)
    attributions = [f"- **{', '.join(group)}**: {text}" for text, group in licence_groups.items()]
    version = _version()
    return [
        "## Sources",
        f"Artwork comes from packages on public registries; built with hf_limber {version}.",
        _table(["style", "role", "source", "licence", "artwork found", "images", "unreadable (skipped)"], source_rows),
        "Sources looked for but not used:\n\n" + ("\n".join(not_used) if not_used else "- none"),
        "Concept metadata: " + "; ".join(report["metadata_sources"]) + ".",
        "## Splits",
        splits_text,
        _table(["split"] + styles + ["total"], split_rows),
        "## Licences and attributions",
        "Each image is a derivative of the artwork named below; CC-BY and CC-BY-SA require this credit. "
        f"Changes made: {changes}",
        "\n".join(attributions),
        "Images derived from CC BY-SA 4.0 artwork (OpenMoji) are shared under CC BY-SA 4.0 as well. "
        "Apple and Facebook emoji sets are left out: they carry no licence that permits this use.",
    ]


def _version() -> str:
    try:
        return metadata.version("hf_limber")
    except metadata.PackageNotFoundError:
        return "(source tree)"


def _parameters(report: dict[str, Any]) -> str:
    return "\n".join(f"- `{key}`: {value}" for key, value in report["parameters"].items())


def save_build(out_dir: str | Path, dataset: DatasetDict, plan: BuildPlan, indexes: dict[str, dict[str, str]],
               cache: TileCache, concepts_considered: int, parameters: dict[str, Any],
               write_card: Callable[[Path, DatasetDict, BuildPlan, dict[str, Any]], None], started: float) -> None:
    """Save a build with its card and build_report.json, staged: ``out_dir`` changes only when all is written."""
    with staged_output(out_dir) as out:
        dataset.save_to_disk(str(out))
        report = build_report(plan, indexes, dataset, cache, concepts_considered=concepts_considered)
        report["parameters"] = {"styles": list(plan.report.found), "held_out_styles": plan.held_out_styles,
                                **parameters}
        write_card(out, dataset, plan, report)
        report["build_seconds"] = round(time.perf_counter() - started, 1)
        (out / "build_report.json").write_text(json.dumps(report, indent=2) + "\n")


def write_emoji_card(out: Path, dataset: DatasetDict, plan: BuildPlan, report: dict[str, Any]) -> None:
    chosen = write_example_grids(out, dataset, 32, list(plan.report.found))
    total = sum(split.num_rows for split in dataset.values())
    size = report["parameters"]["image_size"]
    sections = [
        _front_matter(
            plan, "Emoji concepts in many styles", ["zero-shot-image-classification", "image-to-text"], total
        ),
        f"# Emoji concepts in {len(plan.report.found)} styles",
        f"{report['concepts']} emoji concepts (CLDR names, {len({c.category for c in plan.catalog.concepts})} "
        f"categories, subcategories, keywords), each drawn in every style that has it: {total} images of "
        f"{size}x{size} px. Skin-tone variants are "
        + (
            "included as their own rows (column `skin_tone`)."
            if report["parameters"]["include_skin_tones"]
            else "left out."
        ),
        *_common_sections(
            plan,
            report,
            dataset,
            f"rasterised (SVG, font) or resampled (PNG) to {size}x{size} px and composited on an opaque "
            "background; no other changes.",
            EMOJI_SPLITS,
        ),
        "## Columns",
        "- `image`: RGB PNG\n- `style`: artwork set\n- `codepoints`: fully qualified sequence, hex, `-`-joined\n"
        "- `emoji`: the character sequence\n- `name`: CLDR short name\n- `category`: one of the 10 CLDR groups "
        "(class label)\n- `subcategory`: CLDR subgroup\n- `keywords`: CLDR keywords\n"
        "- `skin_tone`: null for base concepts\n- `caption`: an English sentence built from the above",
        "## Build parameters",
        _parameters(report),
        "## Examples",
        "\n\n".join(
            f"**{style}** (`{split}`)\n\n![{style}](examples/{style}.png)" for style, (split, _) in chosen.items()
        ),
    ]
    (out / "README.md").write_text("\n\n".join(sections) + "\n", encoding="utf-8")


def write_scenes_card(out: Path, dataset: DatasetDict, plan: BuildPlan, report: dict[str, Any]) -> None:
    chosen = write_example_grids(out, dataset, 8, list(plan.report.found))
    total = sum(split.num_rows for split in dataset.values())
    params = report["parameters"]
    share = params["patch_probability"]  # written by build_emoji_scenes, just before this card
    squares = f"{share:.0%} of them on a coloured square" if share else "none on a coloured square"
    samples = []
    for style, (split, indices) in chosen.items():
        row = dataset[split][indices[0]]
        questions = "\n".join(
            f"  - {q['question']} → {q['multiple_choice_answer']} ({q['question_type']})" for q in row["questions"]
        )
        samples.append(
            f"**{style}** (`{split}`)\n\n![{style}](examples/{style}.png)\n\nFirst image's captions:\n\n"
            + "\n".join(f"- {caption}" for caption in row["captions"])
            + f"\n\nIts questions:\n\n{questions}"
        )
    sections = [
        _front_matter(plan, "Emoji scenes", ["image-to-text", "visual-question-answering"], total),
        "# Emoji scenes for captioning and question answering",
        f"{total} canvases of {params['image_size']}x{params['image_size']} px, each with 1-3 emoji of one style "
        f"placed in a {params['grid']}x{params['grid']} grid, small or large, {squares}. Each "
        f"scene has {params['captions_per_scene']} reference captions (as COCO has) naming the emoji, their sizes, "
        "colours and spatial relations, and question-answer pairs (what / where / how many / yes-no) with ten "
        "answers each, as VQA has.",
        *_common_sections(
            plan,
            report,
            dataset,
            "rasterised (SVG, font) or resampled (PNG), scaled, and placed on a plain canvas, "
            f"{squares}; no other changes.",
            SCENE_SPLITS,
        ),
        "## Columns",
        "- `image`: RGB PNG\n- `scene_id`\n- `style`\n- `captions`: reference captions\n"
        "- `summary`: the objects in reading order, row by row (\"Two emoji: grapes and a candy.\")\n"
        "- `objects`: name, codepoints, category, size, patch colour, grid row/column and pixel box of each emoji\n"
        "- `questions`: question, question_type, answer_type (yes/no, number, other), ten `answers` and "
        "`multiple_choice_answer` (the most common answer), as in VQA v2",
        "## Build parameters",
        _parameters(report),
        "## Examples",
        "\n\n".join(samples),
    ]
    (out / "README.md").write_text("\n\n".join(sections) + "\n", encoding="utf-8")
