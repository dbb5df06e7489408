"""Writing a folder that replaces an earlier one only when the new one is complete.

Data builds and Space builds write into a staging folder beside the target; the target changes only
once the staging folder is whole (and passes its check), so Ctrl-C or an error mid-way leaves the
earlier output untouched. A target holding anything but an earlier output of the same kind is refused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def check_target(target: str | os.PathLike[str], is_earlier: Callable[[Path], bool], kind: str) -> Path:
    """``target`` as a Path, if it is new, empty, or an earlier ``kind`` (which ``is_earlier`` recognises)."""
    path = Path(target).expanduser()
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not is_earlier(path))):
        raise FileExistsError(f"{path} holds files that are not an earlier {kind}: choose an empty or new folder.")
    return path


@contextmanager
def replaced_when_complete(
    target: str | os.PathLike[str], is_earlier: Callable[[Path], bool], kind: str,
    check: Callable[[Path], None] | None = None,
) -> Iterator[Path]:
    """A fresh folder beside ``target`` to write into; once the block ends without error (and
    ``check`` passes on it) it takes ``target``'s place, an earlier ``kind`` there being removed only
    then. On any error or Ctrl-C the staging folder goes and ``target`` is untouched."""
    path = check_target(target, is_earlier, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.building-", dir=path.parent))
    try:
        yield staging
        if check is not None:
            check(staging)
        if path.exists():
            retired = path.with_name(f".{path.name}.replaced-{os.getpid()}")
            path.rename(retired)
            staging.rename(path)
            shutil.rmtree(retired)
        else:
            staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
