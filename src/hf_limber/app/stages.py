"""A small resumable stage runner: a run is a YAML list of `hf-limber` commands (each a recipe plus
overrides, or a command's own options), grouped in named stages.

Each finished stage is recorded in `OUT/stages.json` with its command lines, a digest of the recipe
files they name, and wall time. A second run skips the stages that finished with the same command lines
and recipes; a stage that runs (new, interrupted, or with a changed command line or recipe) is followed
by every stage after it that reads its outputs: by default every later stage, or those naming it in
`needs` (compare-encoders: a run needs only its features). A training command whose
output folder holds a checkpoint of an interrupted run resumes from it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from transformers.trainer_utils import get_last_checkpoint

STATE_FILE = "stages.json"


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    commands: list[list[str]]
    # Training output folders: a checkpoint there means an interrupted run to resume.
    resumes: list[str] = field(default_factory=list)
    # Names of the earlier stages whose outputs this one reads (None: all of them).
    needs: list[str] | None = None


def load_stages(path: str | Path, variables: dict[str, str]) -> list[Stage]:
    """The stages of a run file, with `{name}` in every argument replaced by ``variables[name]``."""
    spec = yaml.safe_load(Path(path).read_text())
    if not isinstance(spec, dict) or not isinstance(spec.get("stages"), list):
        raise ValueError(f"{path}: a run file is a mapping with a `stages` list (name, description, commands).")
    stages = []
    for entry in spec["stages"]:
        missing = {"name", "description", "commands"} - set(entry)
        if missing:
            raise ValueError(f"{path}: stage {entry.get('name', '?')!r} lacks {sorted(missing)}.")
        try:
            commands = [[str(arg).format(**variables) for arg in command] for command in entry["commands"]]
            resumes = [str(folder).format(**variables) for folder in entry.get("resumes", [])]
        except KeyError as error:
            raise ValueError(f"{path}: stage {entry['name']!r} uses {{{error.args[0]}}}, which is not one of "
                             f"{sorted(variables)}.") from None
        stages.append(Stage(entry["name"], entry["description"], commands, resumes))
    return stages


RECIPE_SUFFIXES = (".yaml", ".yml", ".json")


def recipe_digest(commands: list[list[str]]) -> str:
    """sha256 over the recipe files the commands name: an edited recipe makes its stage run again."""
    digest = hashlib.sha256()
    for argument in (arg for command in commands for arg in command):
        path = Path(argument)
        if path.suffix in RECIPE_SUFFIXES and path.is_file():
            digest.update(argument.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _with_resume(command: list[str], stage: Stage) -> list[str]:
    for folder in stage.resumes:
        if Path(folder).is_dir() and get_last_checkpoint(folder) is not None:
            return [*command, "--resume_from_checkpoint", "true"]
    return command


def run_stages(
    stages: Sequence[Stage], out: Path, run_command: Callable[[list[str]], int], log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every stage not finished yet; returns the state (per stage: commands, seconds)."""
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    finished: dict[str, Any] = state.get("stages", {})
    ran: list[str] = []
    for number, stage in enumerate(stages, 1):
        previous = finished.get(stage.name)
        recipes = recipe_digest(stage.commands)
        upstream_ran = bool(ran) if stage.needs is None else any(name in ran for name in stage.needs)
        if (previous is not None and previous["commands"] == stage.commands and previous.get("recipes") == recipes
                and not upstream_ran):
            log(f"[{number}/{len(stages)}] {stage.name}: done in an earlier run ({previous['seconds']:.0f} s), reused")
            continue
        ran.append(stage.name)  # what this stage writes may differ now: the stages reading it run again too
        log(f"[{number}/{len(stages)}] {stage.name}: {stage.description}")
        started = time.perf_counter()
        for command in stage.commands:
            log("  hf-limber " + " ".join(command))
            status = run_command(_with_resume(command, stage))
            if status:
                raise SystemExit(f"Stage {stage.name!r} failed (exit status {status}): hf-limber {' '.join(command)}")
        finished[stage.name] = {"commands": stage.commands, "recipes": recipes, "seconds": round(time.perf_counter() - started, 1)}
        state["stages"] = finished
        state_path.write_text(json.dumps(state, indent=2) + "\n")
    # Stages dropped from the run file are no longer part of it.
    state["stages"] = {stage.name: finished[stage.name] for stage in stages}
    state_path.write_text(json.dumps(state, indent=2) + "\n")
    return state
