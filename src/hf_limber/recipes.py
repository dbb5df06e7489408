"""Recipes: YAML files of dataclass fields that `HfArgumentParser` reads, with command-line overrides."""

from __future__ import annotations

import dataclasses
import typing
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
    parsed = parser.parse_args_into_dataclasses(args=_as_arguments(values) + list(overrides))
    overridden = {arg[2:].split("=", 1)[0] for arg in overrides if arg.startswith("--")}
    for name in [key for key, value in values.items() if value is None and key not in overridden]:
        _set_none(parsed, name, path)
    for arguments in parsed:
        max_steps = getattr(arguments, "max_steps", -1)
        if isinstance(max_steps, int) and max_steps < -1:
            raise ValueError(f"max_steps: {max_steps} is not a number of steps. Give a positive number of optimizer "
                             "steps, or -1 (the default) to train for num_train_epochs.")
    return parsed


def _set_none(parsed: Sequence[Any], name: str, path: str | Path) -> None:
    """`field: null` in a recipe: the field becomes None (the command line has no way to say it), when
    its type allows None."""
    for arguments in parsed:
        field = next((f for f in dataclasses.fields(arguments) if f.name == name), None)
        if field is None:
            continue
        hint = typing.get_type_hints(type(arguments)).get(name)
        if type(None) not in typing.get_args(hint):
            raise ValueError(f"{path}: {name}: null is not allowed (it takes a {hint}); remove the line to keep the "
                             "default.")
        setattr(arguments, name, None)
