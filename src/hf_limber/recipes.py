"""Recipes: YAML files of dataclass fields that `HfArgumentParser` reads, with command-line overrides."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from transformers import HfArgumentParser


def _as_arguments(values: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            args += [f"--{key}", *map(str, value)]
        elif isinstance(value, dict):
            raise ValueError(f"Recipe field {key!r} is a mapping; recipes hold flat fields only.")
        else:
            args += [f"--{key}", str(value)]
    return args


def parse_recipe(path: str | Path, dataclass_types: Sequence[type], overrides: Sequence[str] = ()) -> tuple[Any, ...]:
    """Fill the dataclasses from a YAML recipe; `overrides` such as `--max_steps 10` win over the file.

    The recipe goes through the same argument parser as the command line, so values are typed and
    checked one way, and unknown fields are an error that names them.
    """
    values = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a recipe is a mapping of field names to values.")
    # No abbreviations: a misspelt field must be an error, not a prefix match of another field.
    parser = HfArgumentParser(dataclass_types, allow_abbrev=False)
    return parser.parse_args_into_dataclasses(args=_as_arguments(values) + list(overrides))
