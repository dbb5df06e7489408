"""Command-line options read from where their settings live.

A settings dataclass's fields (or a builder function's keyword arguments) hold each setting's default
and type; a command names the fields it exposes and says what each one means, and the option's
default, type and number of values come from the field. So a default is written once, where the
library reads it, and the command line cannot drift from it. The evaluation commands share one shape
(`add_evaluation_command`).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .hub_commands import add_card_arguments


@dataclass(frozen=True)
class Option:
    """How one field appears on the command line."""

    help: str
    flag: str | None = None  # default: --field-name (underscores as hyphens)
    # Parses the whole value (e.g. a comma-separated list); without it the field's type decides, and a
    # sequence field takes several values.
    type: Callable[[str], Any] | None = None
    nargs: str | int = "*"  # for sequence fields: "+" where an empty list makes no sense, or a count
    choices: Sequence[Any] | None = None


def _fields(source: type | Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
    """name -> (default, annotation) of a dataclass's fields or a function's keyword arguments."""
    if dataclasses.is_dataclass(source):
        return {field.name: (field.default if field.default is not dataclasses.MISSING
                             else field.default_factory() if field.default_factory is not dataclasses.MISSING
                             else inspect.Parameter.empty, field.type)
                for field in dataclasses.fields(source)}
    return {name: (parameter.default, parameter.annotation)
            for name, parameter in inspect.signature(source).parameters.items()}


def _type_hint(source: type | Callable[..., Any], annotation: Any) -> Any:
    """An annotation written as text (``from __future__ import annotations``) evaluated where it was written;
    one field at a time, as other annotations may name types imported only for type checkers."""
    if not isinstance(annotation, str):
        return annotation
    return eval(annotation, vars(sys.modules[source.__module__]))  # noqa: S307 - our own annotations


def _optional_text(text: str) -> str | None:
    return text or None  # '' on the command line: the setting is off


def _argument_type(hint: Any) -> tuple[Any, bool, bool]:
    """(type of one value, whether the field holds a sequence, whether it may be None)."""
    arguments = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = [argument for argument in arguments if argument is not type(None)]
        kind, many, _ = _argument_type(kinds[0])
        return kind, many, len(kinds) < len(arguments)
    origin = typing.get_origin(hint)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Sequence) and origin is not str:
        return (arguments[0] if arguments else str), True, False
    return hint, False, False


def _shown(value: Any, separator: str) -> str:
    if isinstance(value, (list, tuple)):
        return separator.join(map(str, value)) or "none"
    return str(value)


def add_options(parser: argparse.ArgumentParser, source: type | Callable[..., Any],
                options: Mapping[str, Option]) -> None:
    """Add one option per entry of ``options`` (field name -> Option), its default and type read from
    ``source``; the parsed value lands in ``args.<field name>``."""
    fields = _fields(source)
    for name, option in options.items():
        if name not in fields:
            raise ValueError(f"{getattr(source, '__name__', source)} has no field {name!r}; fields: {sorted(fields)}")
        default, annotation = fields[name]
        hint = _type_hint(source, annotation)
        if default is inspect.Parameter.empty:
            raise ValueError(f"{name} has no default in {source.__name__}: give the command its own option.")
        flag = option.flag or "--" + name.replace("_", "-")
        kind, many, optional = _argument_type(hint)
        help_text = option.help.replace("%", "%%")
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default,
                                help=f"{help_text} (default: %(default)s)")
            continue
        if option.type is not None:
            kind, many = option.type, False
        elif kind is str and optional:
            kind = _optional_text
        elif not callable(kind) or kind is typing.Any:
            kind = str
        # An option with its own parser reads one comma-separated value; a sequence field, several values.
        shown = "" if default is None else f" (default: {_shown(default, ',' if option.type else ' ')})"
        parser.add_argument(flag, dest=name, type=kind,
                            default=list(default) if isinstance(default, (list, tuple)) else default,
                            nargs=option.nargs if many else None, choices=option.choices,
                            help=help_text + shown.replace("%", "%%"))


def values(source: type | Callable[..., Any], args: argparse.Namespace) -> dict[str, Any]:
    """The parsed values of ``source``'s fields that the command line offers."""
    return {name: getattr(args, name) for name in _fields(source) if hasattr(args, name)}


def add_evaluation_command(subparsers: argparse._SubParsersAction, name: str, settings_type: type,
                           options: Mapping[str, Option], split_default: str, run: Callable[..., int],
                           **parser_kwargs: Any) -> argparse.ArgumentParser:
    """`hf-limber NAME MODEL DATASET [--split] [settings] [--out] [card options]`, the shape of every
    evaluation command; returns the parser for the command's own options."""
    parser = subparsers.add_parser(name, **parser_kwargs)
    parser.add_argument("model")
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--split", default=None, help=f"split to evaluate (default: {split_default})")
    add_options(parser, settings_type, options)
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: MODEL/eval-SPLIT)")
    add_card_arguments(parser)
    parser.set_defaults(run=run)
    return parser
