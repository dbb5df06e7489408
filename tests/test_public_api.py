"""Every name the README shows still imports, at the place the README shows, without a deprecation
warning (a moved name keeps working through its shim, tested in test_layering; the README shows the new
place): the imports of its Python blocks and every dotted `hf_limber.…` name in its text."""

import ast
import importlib
import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def imported_names() -> list[tuple[str, str | None]]:
    """(module, name) per `from module import name`, (module, None) per `import module`."""
    names: list[tuple[str, str | None]] = []
    for block in python_blocks():
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom):
                names += [(node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                names += [(alias.name, None) for alias in node.names]
    return names


def dotted_names() -> list[str]:
    """`hf_limber.a.b` names anywhere in the README, prose or code."""
    return sorted(set(re.findall(r"\bhf_limber(?:\.[A-Za-z_]\w*)+", README.read_text())))


def resolve(dotted: str) -> object:
    """The longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(dotted)


def test_the_readme_shows_names_to_check():
    assert ("hf_limber", "LimberForCausalLM") in imported_names()
    assert "hf_limber.clip.convert.from_transformers" in dotted_names()


@pytest.mark.parametrize("module, name", sorted(set(imported_names()), key=str))
def test_every_import_in_the_readme_works_without_a_deprecation_warning(module, name):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        imported = importlib.import_module(module)
        if name is not None:
            assert getattr(imported, name) is not None


@pytest.mark.parametrize("dotted", dotted_names())
def test_every_dotted_name_in_the_readme_resolves_without_a_deprecation_warning(dotted):
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert resolve(dotted) is not None


def test_the_design_public_api_imports_from_the_package():
    import hf_limber

    for name in ("ClipConfig", "ClipTextConfig", "ClipVisionConfig", "ClipModel", "ClipTextModelWithProjection",
                 "ClipVisionModelWithProjection", "ClipProcessor", "ContrastiveLoss", "ContrastiveTrainer",
                 "ContrastiveTrainingArguments",
                 "LimberConfig", "LimberForCausalLM", "LimberProcessor", "list_presets"):
        assert getattr(hf_limber, name) is not None, name
    assert hf_limber.ClipConfig.from_preset("RN50").vision_config.tower == "resnet"
    from hf_limber.clip import convert

    assert callable(convert.from_transformers) and callable(convert.from_open_clip)
    assert callable(convert.from_openai_state_dict)
