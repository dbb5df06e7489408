"""`hf-limber space build` and pushing the built Space: the folder a Space runs, with the package
source beside the app, the package's own requirements, and nothing else uploaded."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hub_server import LoopbackHub
from test_hub import hub_env

from hf_limber.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    out = tmp_path_factory.mktemp("space") / "build"
    assert main(["space", "build", str(out), "--clip", "me/clip", "--limber", "me/limber"]) == 0
    return out


def test_the_build_holds_the_app_the_package_and_its_requirements(space):
    assert {"app.py", "serving.py", "README.md", "requirements.txt", "space_models.json"} <= {
        p.name for p in space.iterdir()}
    assert (space / "hf_limber" / "__init__.py").is_file() and (space / "hf_limber" / "modeling" / "RN50.json").is_file()
    assert not list(space.rglob("__pycache__"))
    lines = [line for line in (space / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(project["dependencies"]) <= set(lines)
    assert "gradio==6.31.0" in lines and not [line for line in lines if "OWNER" in line or "git+" in line]
    assert '"HF_LIMBER_CLIP": "me/clip"' in (space / "space_models.json").read_text()


def test_the_app_reads_the_built_models(space, monkeypatch):
    monkeypatch.delenv("HF_LIMBER_CLIP", raising=False)
    script = "import serving; print(serving.source(serving.CLIP_SOURCE), serving.source(serving.GALLERY_SOURCE))"
    env = {**os.environ, "HF_LIMBER_GALLERY": "me/gallery"}
    env.pop("HF_LIMBER_CLIP", None)
    result = subprocess.run([sys.executable, "-c", script], cwd=space, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["me/clip", "me/gallery"]


def test_a_rebuild_replaces_an_earlier_build_but_never_other_files(space, tmp_path):
    assert main(["space", "build", str(space)]) == 0  # an earlier build: replaced
    assert (space / "space_models.json").read_text().strip() == "{}"
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an earlier Space build"):
        main(["space", "build", str(tmp_path)])
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_push_creates_a_gradio_space_with_the_build_only(tmp_path):
    out = tmp_path / "space"
    main(["space", "build", str(out)])
    (out / ".env").write_text("HF_TOKEN=hf_secret")
    (out / "notes.log").write_text("private")
    with LoopbackHub() as hub:
        env = hub_env(hub.url, tmp_path / "home")
        script = f"from hf_limber.hub import push_folder; print(push_folder({str(out)!r}, 'test-user/demo'))"
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        repo = hub.repo("space", "test-user/demo")
        files = hub.files("test-user/demo", "space")
    assert repo.sdk == "gradio" and result.stdout.strip().endswith("spaces/test-user/demo")
    assert {"app.py", "serving.py", "README.md", "requirements.txt", "hf_limber/__init__.py"} <= set(files)
    assert ".env" not in files and "notes.log" not in files and ".hf_limber_space" not in files


@pytest.mark.slow
def test_the_built_space_installs_into_a_fresh_venv_and_imports_the_app(space, tmp_path):
    # As on a Space: a fresh environment, requirements.txt from the package registry, then the app.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"], cwd=space,
                             capture_output=True, text=True, timeout=1500)
    assert install.returncode == 0, install.stderr[-3000:]
    script = "import app, hf_limber; print(hf_limber.__file__)"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    result = subprocess.run([str(python), "-c", script], cwd=space, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Path(result.stdout.strip()).resolve().is_relative_to(space.resolve())


def test_the_build_reads_this_repository():
    from hf_limber.app import space_build

    assert space_build.source_tree() == ROOT
