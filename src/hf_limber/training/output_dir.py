"""A training run's output folder: an earlier run in it is resumed when asked and never overwritten unasked.

transformers 5 dropped `overwrite_output_dir`, and the Trainer writes over a folder's model and rotates
its checkpoints away without a word; the recipes check the folder first, before any data is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

# What a finished or interrupted run leaves in its output folder.
RUN_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "trainer_state.json", "training_args.bin")
# `--resume_from_checkpoint` values that mean "the folder's latest checkpoint".
LATEST = ("true", "last", "latest")


def earlier_run(folder: str | os.PathLike) -> list[str]:
    """The names in `folder` that an earlier training run wrote (a saved model, checkpoints)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(path.name for path in folder.iterdir()
                  if path.name in RUN_FILES or path.name.startswith(f"{PREFIX_CHECKPOINT_DIR}-"))


def resume_point(output_dir: str | os.PathLike, resume_from_checkpoint: str | bool | None,
                 overwrite_output_dir: bool = False) -> str | None:
    """The checkpoint to resume from (None: start afresh), or an error when `output_dir` holds an earlier
    run and the caller asked neither to resume it nor to overwrite it."""
    folder = Path(output_dir)
    if resume_from_checkpoint not in (None, False, ""):
        if resume_from_checkpoint is True or str(resume_from_checkpoint).lower() in LATEST:
            latest = get_last_checkpoint(str(folder)) if folder.is_dir() else None
            if latest is None:
                raise FileNotFoundError(
                    f"--resume_from_checkpoint {resume_from_checkpoint}: {folder} holds no {PREFIX_CHECKPOINT_DIR}-* "
                    "folder to resume from (checkpoints are written with --save_strategy steps or epoch). Name a "
                    "checkpoint folder, or leave the option out to start afresh.")
            return latest
        if not Path(resume_from_checkpoint).is_dir():
            raise FileNotFoundError(f"--resume_from_checkpoint: the checkpoint folder {resume_from_checkpoint} does "
                                    "not exist. Use 'true' for the latest checkpoint in --output_dir.")
        return str(resume_from_checkpoint)
    found = earlier_run(folder)
    if found and not overwrite_output_dir:
        shown = ", ".join(found[:6]) + (" ..." if len(found) > 6 else "")
        raise FileExistsError(
            f"{folder} already holds an earlier run ({shown}). Resume it with --resume_from_checkpoint true (its "
            "latest checkpoint) or a checkpoint folder, train into another --output_dir, or train over it with "
            "--overwrite_output_dir true (its model and checkpoints may then be replaced).")
    return None
