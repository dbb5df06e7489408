"""What the quickstart leaves behind: a model card beside each trained model and REPORT.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .evaluation.clip_report import card_results as clip_card_results
from .evaluation.clip_report import markdown_table
from .evaluation.limber_report import card_results as limber_card_results
from .evaluation.limber_report import comparison_table, summary_row
from .hub.cards import write_model_card

EMOJI = "emoji (hf-limber data emoji)"
SCENES = "emoji scenes (hf-limber data emoji-scenes)"


def _plots(folder: Path, report: dict[str, Any], eval_dir: str) -> list[str]:
    return [f"{eval_dir}/{plot}" for plot in report.get("plots", []) if (folder / eval_dir / plot).is_file()]


def write_cards(config: Any, state: dict[str, Any]) -> None:
    stages = state["stages"]
    clip_report = stages["eval-clip"]["result"]
    clip_eval = f"eval-{clip_report['split']}"
    write_model_card(config.clip, kind="clip", results=clip_card_results(clip_report, EMOJI), plots=_plots(
        config.clip, json_report(config.clip / clip_eval), clip_eval), training={
        "data": str(config.emoji), "train_time": stages["clip"]["seconds"], "preset": config.clip_preset,
        "epochs": config.clip_epochs, "steps": stages["clip"]["result"]["steps"],
        "machine": "2-core CPU, fp32", "eval_loss_per_epoch": stages["clip"]["result"]["eval_loss"]})
    limber_report = stages["eval-limber"]["result"]
    write_model_card(config.limber, kind="limber", results=limber_card_results(limber_report, SCENES), plots=_plots(
        config.limber, json_report(config.limber / "eval-validation"), "eval-validation"), training={
        "data": str(config.scenes), "train_time": stages["limber"]["seconds"], "steps": config.limber_steps,
        "batch_size": config.limber_batch_size, "image_encoder": "the quickstart CLIP (frozen)",
        "language_model": "SmolLM2-135M-Instruct (frozen)" if not config.language_model else config.language_model,
        "machine": "2-core CPU, fp32, cached image features"})


def json_report(folder: Path) -> dict[str, Any]:
    path = folder / "report.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def missing_styles_warning(state: dict[str, Any]) -> str | None:
    """The warning a run on fewer than all artwork styles carries, in the terminal and in REPORT.md."""
    data = state["stages"]["data"]["result"]
    if not data.get("missing_styles"):
        return None
    return (f"WARNING: the data has {len(data['styles'])} of {len(data['styles']) + len(data['missing_styles'])} "
            f"artwork styles ({', '.join(data['styles'])}); missing: {', '.join(data['missing_styles'])}. "
            "With fewer styles the CLIP sees less variety and its held-out-style results are far weaker. "
            "Run `scripts/setup quickstart` (apt and npm artwork), then `hf-limber quickstart --fresh`.")


def write_report(config: Any, state: dict[str, Any]) -> Path:
    stages = state["stages"]
    total = sum(stage["seconds"] for stage in stages.values())
    lines = ["# hf_limber quickstart", "", "| stage | wall time |", "|---|---|"]
    lines += [f"| {name} | {stage['seconds'] / 60:.1f} min |" for name, stage in stages.items()]
    lines += [f"| **total** | **{total / 60:.1f} min** |", ""]
    data = stages["data"]["result"]
    lines += [f"Artwork styles: {', '.join(data.get('styles', []))}.", ""]
    if warning := missing_styles_warning(state):
        lines += [f"> **{warning}**", ""]
    clip_report = stages["eval-clip"]["result"]
    clip_eval = config.clip / f"eval-{clip_report['split']}"
    lines += [f"## CLIP ({config.clip_preset}, trained here) on the held-out emoji style", "",
              f"Trained {stages['clip']['result']['steps']} steps in {stages['clip']['seconds'] / 60:.1f} min; "
              f"eval loss per epoch {stages['clip']['result']['eval_loss']}.", "", markdown_table(clip_report)]
    lines += [f"![{plot}]({clip_eval.relative_to(config.out).as_posix()}/{plot})"
              for plot in json_report(clip_eval).get("plots", [])]
    limber_report = stages["eval-limber"]["result"]
    limber_eval = config.limber / "eval-validation"
    lines += ["", "## LiMBeR (frozen CLIP image tower -> one linear layer -> frozen SmolLM2-135M)", "",
              f"Trained {config.limber_steps} steps x {config.limber_batch_size} captions in "
              f"{stages['limber']['seconds'] / 60:.1f} min from cached features.", "",
              comparison_table({"quickstart LiMBeR": summary_row(limber_report)}), ""]
    lines += [f"- generated: “{e['generated']}” — reference: “{e['references'][0]}”" for e in limber_report["examples"]]
    lines += [""] + [f"![{plot}]({limber_eval.relative_to(config.out).as_posix()}/{plot})"
                     for plot in json_report(limber_eval).get("plots", [])]
    lines += ["", f"Models (with their cards): `{config.clip}`, `{config.limber}`."]
    path = config.out / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    return path
