"""What the tests need from outside PyPI, and the one message when it is missing.

`scripts/setup dev` installs all of it (the README's test command runs it first). A test never
skips for want of these: a skipped test would hide a set-up that does not do its job.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SETUP_COMMAND = "scripts/setup dev"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hf_limber"


def require(found: object, what: str) -> None:
    """Fail the calling test, naming the set-up command, unless ``found`` is truthy."""
    if not found:
        pytest.fail(f"{what} is not installed on this machine: run `{SETUP_COMMAND}` from the repository root "
                    "(it installs the system packages, the npm artwork and the virtual environment)", pytrace=False)


def lexnames_manual_page() -> Path | None:
    """lexnames(5WN): Debian's manual page, or the copy the set-up extracts where images drop manuals."""
    for page in (Path("/usr/share/man/man5/lexnames.5WN.gz"), CACHE / "man" / "man5" / "lexnames.5WN.gz"):
        if page.exists():
            return page
    return None
