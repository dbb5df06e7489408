"""`hf-limber space build OUT`: the demo Space as a folder a Hugging Face Space can run.

hf_limber is not on PyPI, and a Space installs `requirements.txt` before it copies the rest of the
repository, so neither a git URL of an unknown host nor a wheel inside the Space can serve the
package. The build copies the package source beside `app.py` (Python finds it there, as the app's
folder is on the path) and writes `requirements.txt` from the package's own dependencies and its
`demo` extra, so the Space installs exactly what the package declares, from PyPI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tomllib
from importlib.metadata import version
from pathlib import Path

from ..hub.space import BUILD_MARKER, SPACE_FILES, SPACE_MODELS_FILE
from ..staging import replaced_when_complete


def source_tree() -> Path:
    """The repository the installed package was built from (an editable install or a clone)."""
    root = Path(__file__).resolve().parents[3]  # src/hf_limber/app/space_build.py
    if not (root / "pyproject.toml").is_file() or not (root / "spaces" / "demo" / "app.py").is_file():
        raise FileNotFoundError(
            f"The Space is built from a clone of the hf_limber repository, and {root} is not one: clone it, "
            "install it with `pip install -e .` and run `hf-limber space build` there."
        )
    return root


def space_requirements(root: Path) -> list[str]:
    """The package's dependencies plus its `demo` extra, as requirement lines."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["demo"]]


def build_space(
    out: str | os.PathLike[str], clip: str | None = None, limber: str | None = None, gallery: str | None = None
) -> Path:
    """Write the Space into ``out``; returns it.

    ``clip``, ``limber`` and ``gallery`` are Hub ids (or paths inside the Space) of the models and
    the gallery dataset it serves; unset ones fall back to the environment variables the app reads.
    ``out`` must be new, empty, or an earlier build: the new build is complete before it replaces it.
    """
    out = Path(out)
    root = source_tree()
    with replaced_when_complete(out, _is_space_build, "Space build") as staging:
        for name in SPACE_FILES:
            shutil.copy2(root / "spaces" / "demo" / name, staging / name)
        shutil.copytree(root / "src" / "hf_limber", staging / "hf_limber",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copytree(root / "modeling", staging / "hf_limber" / "modeling")  # as the wheel ships the presets
        requirements = space_requirements(root)
        gradio_pin = _sdk_version(root / "spaces" / "demo" / "README.md")
        requirements = [r for r in requirements if not re.match(r"gradio\b", r)] + [f"gradio=={gradio_pin}"]
        (staging / "requirements.txt").write_text(
            "# Written by `hf-limber space build`: hf_limber's own dependencies and its demo extra; the package\n"
            "# source is in ./hf_limber. gradio is pinned to the README's sdk_version.\n" + "\n".join(requirements) + "\n"
        )
        models = {key: value for key, value in {"HF_LIMBER_CLIP": clip, "HF_LIMBER_LIMBER": limber,
                                                 "HF_LIMBER_GALLERY": gallery}.items() if value}
        (staging / SPACE_MODELS_FILE).write_text(json.dumps(models, indent=2) + "\n")
        (staging / BUILD_MARKER).write_text(f"hf_limber {version('hf_limber')}\n")
    return out


def _is_space_build(folder: Path) -> bool:
    return (folder / BUILD_MARKER).exists()


def _sdk_version(readme: Path) -> str:
    match = re.search(r"^sdk_version:\s*(\S+)", readme.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{readme} has no sdk_version in its front matter: the Space's gradio needs a pin.")
    return match[1]
