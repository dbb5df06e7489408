"""WordNet 3.0 for nltk, offline, from Debian's packages.

nltk normally downloads its WordNet corpus from the web, which machines here cannot reach. Debian
ships the same WordNet 3.0 database files (`wordnet-base`, plus `index.sense` in
`wordnet-sense-index`); nltk reads copies of them in an `nltk_data/corpora/wordnet` folder once it
also finds a `lexnames` file, which Debian does not ship. Its content is fixed and documented in the
lexnames(5WN) manual page, so we write it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # nltk comes with the `eval` extra; CIDEr-D and VQA users need not install it
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")
DEBIAN_PACKAGES = ("wordnet-base", "wordnet-sense-index")
DATABASE_FILES = (
    "cntlist.rev", "index.sense",
    *(f"{kind}.{pos}" for kind in ("index", "data") for pos in ("adj", "adv", "noun", "verb")),
    *(f"{pos}.exc" for pos in ("adj", "adv", "noun", "verb")),
)

# The 45 lexicographer files of WordNet 3.0 in file-number order (lexnames(5WN)). Each line of
# `lexnames` is: two-digit number, name, syntactic category (1 noun, 2 verb, 3 adjective, 4 adverb).
LEXICOGRAPHER_FILES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
    "verb.communication", "verb.competition", "verb.consumption", "verb.contact", "verb.creation",
    "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social", "verb.stative",
    "verb.weather", "adj.ppl",
)
CATEGORY_NUMBERS = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def lexnames_text() -> str:
    """The content of WordNet 3.0's `lexnames` file."""
    return "".join(
        f"{number:02d}\t{name}\t{CATEGORY_NUMBERS[name.split('.')[0]]}\n"
        for number, name in enumerate(LEXICOGRAPHER_FILES)
    )


def default_nltk_data_dir() -> Path:
    """`$HF_LIMBER_NLTK_DATA`, else ~/.cache/hf_limber/nltk_data."""
    configured = os.environ.get("HF_LIMBER_NLTK_DATA")
    return Path(configured) if configured else Path.home() / ".cache" / "hf_limber" / "nltk_data"


def _write_atomically(path: Path, text: str) -> None:
    # Parallel test workers may prepare the folder at once: never leave a half-written file.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)


def _copy(source: Path, target: Path) -> None:
    if target.is_file() and not target.is_symlink() and target.stat().st_size == source.stat().st_size:
        return
    temporary = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def prepare_wordnet(nltk_data: str | Path | None = None, source: str | Path = DEBIAN_WORDNET_DIR) -> Path:
    """Lay out `<nltk_data>/corpora/wordnet` from Debian's WordNet files; return that folder.

    Idempotent and cheap on later calls. The files are copied (36 MB), not linked: nltk refuses to
    read through links that lead outside its data folders. Point nltk at the result with
    `nltk.data.path.append(str(nltk_data))` or `NLTK_DATA`, or use `load_wordnet()`.
    """
    source = Path(source)
    missing = [name for name in DATABASE_FILES if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"WordNet database files are missing from {source}: {', '.join(missing)}. Install them with "
            f"`apt-get install {' '.join(DEBIAN_PACKAGES)}` (Debian/Ubuntu), or pass `source=` a folder "
            "holding the WordNet 3.0 dict files."
        )
    target = Path(nltk_data or default_nltk_data_dir()) / "corpora" / "wordnet"
    target.mkdir(parents=True, exist_ok=True)
    for name in DATABASE_FILES:
        _copy(source / name, target / name)
    lexnames = target / "lexnames"
    if not lexnames.is_file() or lexnames.read_text() != lexnames_text():
        _write_atomically(lexnames, lexnames_text())
    return target


def load_wordnet(nltk_data: str | Path | None = None) -> WordNetCorpusReader:
    """nltk's WordNet reader over the prepared folder (prepared first if needed). English only.

    The nltk_data folder joins `nltk.data.path`: nltk only reads files under the folders listed
    there. Readers are cached per folder; loading takes seconds.
    """
    return _reader(str(Path(nltk_data or default_nltk_data_dir()).resolve()))


@lru_cache(maxsize=4)
def _reader(nltk_data: str) -> WordNetCorpusReader:
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError as error:
        raise ImportError("Reading WordNet needs nltk: pip install 'hf_limber[eval]'.") from error

    class WordNet30Reader(WordNetCorpusReader):
        def map_wn(self, version: str = "wordnet"):
            # For its multilingual data nltk maps its reference WordNet (3.0) onto the loaded one by
            # reading index.sense twice: over half the load time. This is 3.0 and has no such data.
            return None if self.get_version() == "3.0" else super().map_wn(version)

    root = prepare_wordnet(nltk_data)
    if nltk_data not in nltk.data.path:
        nltk.data.path.append(nltk_data)
    with warnings.catch_warnings():
        # Without the Open Multilingual Wordnet nltk warns that other languages are unavailable.
        warnings.filterwarnings("ignore", message="The multilingual functions are not available")
        return WordNet30Reader(str(root), None)
