"""`hf-limber push LOCAL_DIR REPO_ID` and `hf-limber space build OUT`; the card options of evaluation commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    push = subparsers.add_parser("push", help="push a saved model folder, a datasets folder or a built Space to the Hub")
    push.add_argument("local_dir", type=Path, help="folder written by save_pretrained, save_to_disk or space build")
    push.add_argument("repo_id", help="namespace/name on the Hub (created if needed)")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--repo-type", choices=["model", "dataset", "space"], default=None,
                      help="default: read from the folder (save_to_disk folders are datasets, space builds Spaces)")
    push.add_argument("--message", default=None, help="commit message")
    push.add_argument("--dry-run", action="store_true", help="print what would be uploaded and what is left out")
    push.set_defaults(run=run_push)

    space = subparsers.add_parser("space", help="the demo Space").add_subparsers(dest="space_command", required=True)
    build = space.add_parser("build", help="write spaces/demo with the package source and its requirements, "
                             "ready for `hf-limber push`")
    build.add_argument("out", type=Path, help="a new or empty folder, or an earlier build (replaced when done)")
    for part, what in (("clip", "CLIP model"), ("limber", "LiMBeR model"), ("gallery", "gallery dataset")):
        build.add_argument(f"--{part}", default=None, help=f"Hub id of the {what} the Space serves "
                           f"(default: the Space's HF_LIMBER_{part.upper()} variable)")
    build.set_defaults(run=run_space_build)


def add_card_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of an evaluation command that also writes the model's card."""
    parser.add_argument("--card", action="store_true", help="write MODEL/README.md, the model card, with these results and plots")
    parser.add_argument("--recipe", type=Path, default=None, help="for the card: the recipe that trained MODEL")
    parser.add_argument("--train-minutes", type=float, default=None, help="for the card: how long training took")


def run_push(args: argparse.Namespace) -> int:
    from ..hub.push import push_folder, upload_plan

    repo_type, included, left_out = upload_plan(args.local_dir)
    print(f"{args.local_dir} is a {repo_type} folder; uploading {len(included)} file(s):")
    print("".join(f"  {name}\n" for name in included), end="")
    if repo_type == "dataset":
        print("  (and the dataset's rows, as Parquet through datasets)")
    if left_out:
        print(f"left out ({len(left_out)}; not part of a {repo_type}):")
        print("".join(f"  {name}\n" for name in left_out), end="")
    if args.dry_run:
        return 0
    url = push_folder(args.local_dir, args.repo_id, private=args.private, repo_type=args.repo_type,
                      commit_message=args.message)
    print(f"Pushed {args.local_dir} to {url}")
    return 0


def run_space_build(args: argparse.Namespace) -> int:
    from .space_build import build_space

    out = build_space(args.out, clip=args.clip, limber=args.limber, gallery=args.gallery)
    print(f"Built the Space in {out}; push it with: hf-limber push {out} YOUR_NAME/hf-limber-demo")
    return 0
