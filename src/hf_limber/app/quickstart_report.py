"""REPORT.md of a quickstart run, read from what its stages left in the run folder: the data builds'
reports, the trainers' states, the evaluation reports (with their intervals and plots)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data.sources import STYLES
from ..evaluation.clip_report import markdown_table
from ..evaluation.limber_report import comparison_table, interval_table, summary_row

LIMBER_SPLITS = {
    "validation": "seen concepts, new scenes (the paper's setting)",
    "test_openmoji": "seen concepts, held-out artwork style",
    "test_novel_concepts": "concepts no training caption names",
}
# Issue 16's goals, judged by the pessimistic end of each 95% interval: (metric, bound, at least?).
GOALS = {
    "validation": [("object_recall", 0.6, True), ("cider_d", 0.6, True), ("chair_i", 0.2, False),
                   ("loops", 0.05, False)],
    "test_openmoji": [("object_recall", 0.3, True), ("cider_d", 0.3, True), ("chair_i", 0.4, False)],
}


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def missing_styles_warning(out: Path) -> str | None:
    """The warning a run on fewer than all artwork styles carries, in the terminal and in REPORT.md."""
    styles = sorted(_json(out / "data" / "emoji" / "build_report.json").get("styles", {}))
    missing = sorted(set(STYLES) - set(styles))
    if not styles or not missing:
        return None
    return (f"WARNING: the data has {len(styles)} of {len(STYLES)} artwork styles ({', '.join(styles)}); "
            f"missing: {', '.join(missing)}. With fewer styles the CLIP sees less variety and its held-out-style "
            "results are far weaker. Run `scripts/setup quickstart` (apt and npm artwork), then "
            "`hf-limber quickstart --fresh`.")


def _training(folder: Path) -> str:
    state = _json(folder / "trainer_state.json")
    losses = [entry["loss"] for entry in state.get("log_history", []) if "loss" in entry]
    steps = state.get("global_step")
    if not losses:
        return ""
    return f"{steps} steps; training loss {losses[0]:.3f} at the first log, {losses[-1]:.3f} at the last."


def _goals(reports: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| split | metric | goal | 95% interval | met |", "|---|---|---|---|---|"]
    for split, goals in GOALS.items():
        intervals = reports.get(split, {}).get("intervals", {})
        for metric, bound, at_least in goals:
            if metric not in intervals:
                continue
            i = intervals[metric]
            pessimistic = i["low"] if at_least else i["high"]
            met = pessimistic >= bound if at_least else pessimistic <= bound
            lines.append(f"| {split} | {metric} | {'≥' if at_least else '≤'} {bound} | [{i['low']:.3f}, "
                         f"{i['high']:.3f}] | {'yes' if met else 'no'} |")
    vqa = reports.get("validation", {}).get("vqa", {}).get("0", {}).get("gain_over_shuffled")
    if vqa:
        lines.append(f"| validation | VQA 0-shot gain over shuffled images (points) | ≥ 15 | [{vqa['low']:.1f}, "
                     f"{vqa['high']:.1f}] | {'yes' if vqa['low'] >= 15 else 'no'} |")
    return lines


def write_report(out: Path, state: dict[str, Any]) -> Path:
    stages = state["stages"]
    total = sum(stage["seconds"] for stage in stages.values())
    lines = ["# hf_limber quickstart", "", "| stage | wall time |", "|---|---|"]
    lines += [f"| {name} | {stage['seconds'] / 60:.1f} min |" for name, stage in stages.items()]
    lines += [f"| **total** | **{total / 60:.1f} min** |", ""]
    styles = sorted(_json(out / "data" / "emoji" / "build_report.json").get("styles", {}))
    lines += [f"Artwork styles: {', '.join(styles)}.", ""]
    if warning := missing_styles_warning(out):
        lines += [f"> **{warning}**", ""]

    clip_eval = out / "clip" / "eval-test_openmoji"
    clip_report = _json(clip_eval / "report.json")
    if clip_report:
        lines += ["## CLIP (trained here) on the held-out emoji style", "", _training(out / "clip"), "",
                  markdown_table(clip_report)]
        lines += [f"![{plot}](clip/eval-test_openmoji/{plot})" for plot in clip_report.get("plots", [])]

    reports = {split: _json(out / "limber" / f"eval-{split}" / "report.json") for split in LIMBER_SPLITS}
    reports = {split: report for split, report in reports.items() if report}
    if reports:
        lines += ["", "## LiMBeR (frozen CLIP image tower -> one linear layer -> frozen SmolLM2-135M)", "",
                  _training(out / "limber"), "", "### Goals (issue 16), by the pessimistic end of each interval", "",
                  *_goals(reports), "", "### All splits", "",
                  comparison_table({f"{split}: {LIMBER_SPLITS[split]}": summary_row(report)
                                    for split, report in reports.items()})]
        for split, report in reports.items():
            lines += [f"### {split}: {LIMBER_SPLITS[split]} ({report['num_examples']} scenes)", "",
                      interval_table(report)]
            lines += [f"- generated: “{e['generated']}” — reference: “{e['references'][0]}”"
                      for e in report["examples"][:4]]
            lines += ["", *[f"![{plot}](limber/eval-{split}/{plot})" for plot in report.get("plots", [])
                            if plot == "examples.png" or split == "validation"], ""]
    lines += ["", f"Models (with their cards): `{out / 'clip'}`, `{out / 'limber'}`."]
    path = out / "REPORT.md"
    path.write_text("\n".join(lines) + "\n")
    return path
