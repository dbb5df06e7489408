"""`hf-limber push LOCAL_DIR REPO_ID`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    push = subparsers.add_parser("push", help="push a saved model folder or a datasets folder to the Hub")
    push.add_argument("local_dir", type=Path, help="folder written by save_pretrained or save_to_disk")
    push.add_argument("repo_id", help="namespace/name on the Hub (created if needed)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--repo-type", choices=["model", "dataset"], default=None,
                      help="default: read from the folder (save_to_disk folders are datasets)")
    push.add_argument("--message", default=None, help="commit message")
    push.set_defaults(run=run_push)


def add_card_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of an evaluation command that also writes the model's card."""
    parser.add_argument("--card", action="store_true", help="write MODEL/README.md, the model card, with these results and plots")
    parser.add_argument("--recipe", type=Path, default=None, help="for the card: the recipe that trained MODEL")
    parser.add_argument("--train-minutes", type=float, default=None, help="for the card: how long training took")


def run_push(args: argparse.Namespace) -> int:
    from .push import push_folder

    url = push_folder(args.local_dir, args.repo_id, private=args.private, repo_type=args.repo_type,
                      commit_message=args.message)
    print(f"Pushed {args.local_dir} to {url}")
    return 0
