"""The `hf-limber` command: each subsystem contributes its subcommands."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

# Each module exposes `add_commands(subparsers)`; it must import nothing heavy at module level
# so that `hf-limber --help` stays fast.
COMMAND_MODULES = (
    "hf_limber.app.clip_commands",
    "hf_limber.app.limber_commands",
    "hf_limber.app.training_commands",
    "hf_limber.app.data_commands",
    "hf_limber.app.quickstart",
    "hf_limber.app.hub_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-limber", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
