"""`hf-limber quickstart`: the whole project in one command, sized for a 2-core CPU.

Emoji data -> a small CLIP trained from scratch -> zero-shot / few-shot / retrieval on the held-out
style -> SmolLM2-135M prepared -> image features cached -> a LiMBeR projection trained -> captions
and VQA evaluated on three splits -> REPORT.md, every model saved with its card. The stages are
`hf-limber` commands listed in a run file (recipes/quickstart.yaml: recipes plus overrides), run by
the resumable stage runner: a second run reuses the stages that finished.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[3]
RUN_FILE = REPOSITORY / "recipes" / "quickstart.yaml"


def run_quickstart(out: Path, run_file: Path = RUN_FILE, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage of ``run_file`` not finished yet in ``out``, then write REPORT.md; returns the state."""
    from ..cli import main
    from .quickstart_report import missing_styles_warning, write_report
    from .stages import load_stages, run_stages

    if not run_file.is_file():
        raise SystemExit(f"The run file {run_file} does not exist: the quickstart runs from a clone of the "
                         "repository (recipes/quickstart.yaml), or pass --run-file.")
    out = out.resolve()
    stages = load_stages(run_file, {"out": str(out), "recipes": str(run_file.parent.resolve())})
    state = run_stages(stages, out, main, log)
    report = write_report(out, state)
    log(f"Report: {report}")
    if warning := missing_styles_warning(out):
        log(f"\n{'!' * 100}\n{warning}\n{'!' * 100}\n")
    log(f"Open the demo on what was just trained:\n  HF_LIMBER_CLIP={out / 'clip'} HF_LIMBER_LIMBER={out / 'limber'} "
        f"HF_LIMBER_GALLERY={out / 'data' / 'emoji'} python spaces/demo/app.py\nthen visit http://127.0.0.1:7860")
    return state


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart", help="data -> CLIP -> zero-shot -> LiMBeR -> captions, on this machine (about 25 min on 2 cores)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="run folder (default: runs/quickstart)")
    parser.add_argument("--run-file", type=Path, default=RUN_FILE, help="the stages (default: recipes/quickstart.yaml)")
    parser.add_argument("--fresh", action="store_true", help="delete the run folder first instead of resuming")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    run_quickstart(args.out, args.run_file)
    return 0
