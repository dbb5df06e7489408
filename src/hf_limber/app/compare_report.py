"""The results page of `hf-limber compare-encoders`: every setting's metrics over its seeds and the
same scenes with 95% bootstrap intervals, each of the paper's claims judged by a paired bootstrap of
the differences (holds, fails, or cannot be told apart), the k study likewise, and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.bootstrap import Interval, mean_interval, paired_difference, verdict
from ..evaluation.clip_plots import _pyplot
from .compare_plan import CLAIMS, ENCODER_ROLES, CompareArguments

# Per-scene scores compared: (name on the page, higher is better).
METRICS = {"object_recall": ("object recall", True), "cider_d": ("CIDEr-D", True),
           "chair_s": ("CHAIR-s (hallucinating captions)", False), "vqa_0": ("VQA 0-shot", True),
           "loops": ("loops", False)}


def per_scene(report: dict[str, Any], metric: str) -> list[float] | None:
    items = report.get("per_item", {})
    if metric == "chair_s" and "hallucinated" in items:
        return [float(count > 0) for count in items["hallucinated"]]
    if metric == "vqa_0":
        return report.get("vqa", {}).get("0", {}).get("scores")
    return items.get(metric)


def score_matrices(results: dict[str, Any], study: str) -> dict[str, dict[str, np.ndarray]]:
    """setting -> metric -> scenes x seeds (seeds in ascending order; only metrics every seed has)."""
    grouped: dict[str, dict[int, dict[str, Any]]] = {}
    for result in results.values():
        if isinstance(result, dict) and result.get("study") == study:
            grouped.setdefault(result["setting"], {})[result["seed"]] = result["report"]
    matrices: dict[str, dict[str, np.ndarray]] = {}
    for setting, by_seed in grouped.items():
        reports = [by_seed[seed] for seed in sorted(by_seed)]
        for metric in METRICS:
            columns = [per_scene(report, metric) for report in reports]
            if all(column is not None for column in columns) and len({len(c) for c in columns}) == 1:
                matrices.setdefault(setting, {})[metric] = np.array(columns, dtype=np.float64).T
    return matrices


def _cell(interval: Interval) -> str:
    return f"{interval.estimate:.3f} [{interval.low:.3f}, {interval.high:.3f}]"


def settings_table(matrices: dict[str, dict[str, np.ndarray]], order: list[str]) -> str:
    metrics = [m for m in METRICS if any(m in matrices[s] for s in order)]
    lines = ["| setting | seeds | " + " | ".join(METRICS[m][0] for m in metrics) + " |",
             "|---|---:|" + "---|" * len(metrics)]
    for setting in order:
        row = matrices[setting]
        seeds = next(iter(row.values())).shape[1]
        cells = [_cell(mean_interval(row[m])) if m in row else "–" for m in metrics]
        lines.append(f"| {setting} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def claims_table(matrices: dict[str, dict[str, np.ndarray]], claims: list[tuple[str, str, str]]) -> str:
    lines = ["| claim | metric | difference [95%] | verdict |", "|---|---|---|---|"]
    for first, second, says in claims:
        if first not in matrices or second not in matrices:
            continue
        for metric, (name, higher_is_better) in METRICS.items():
            a, b = matrices[first].get(metric), matrices[second].get(metric)
            if a is None or b is None or a.shape != b.shape:
                continue
            difference = paired_difference(a, b)
            lines.append(f"| {first} vs {second}: {says} | {name} | {_cell(difference)} | "
                         f"{verdict(difference, higher_is_better)} |")
    return "\n".join(lines) + "\n"


def plot_settings(matrices: dict[str, dict[str, np.ndarray]], order: list[str], path: Path, title: str) -> Path:
    plt = _pyplot()
    metrics = [m for m in ("object_recall", "cider_d", "chair_s", "vqa_0") if any(m in matrices[s] for s in order)]
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.6), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        intervals = [mean_interval(matrices[s][metric]) if metric in matrices[s] else Interval(0, 0, 0) for s in order]
        axis.bar(range(len(order)), [i.estimate for i in intervals], color="tab:blue",
                 yerr=[[i.estimate - i.low for i in intervals], [i.high - i.estimate for i in intervals]], capsize=3)
        axis.set_xticks(range(len(order)), order, rotation=45, ha="right", fontsize=8)
        axis.set_title(METRICS[metric][0], fontsize=9)
    figure.suptitle(title + " (mean over scenes and seeds, 95% bootstrap intervals)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_comparison(args: CompareArguments, results: dict[str, Any]) -> Path:
    docs = Path(args.docs)
    assets = docs.with_suffix("")
    assets.mkdir(parents=True, exist_ok=True)
    encoders = score_matrices(results, "encoders")
    encoder_order = [role for role in ENCODER_ROLES if role in encoders]
    k_study = score_matrices(results, "k")
    if not args.k_study_has_own_baseline and "clip" in encoders:
        k_study["clip-grid-all"] = encoders["clip"]
    k_order = sorted(k_study, key=lambda s: (not s.startswith("clip-pooled"), int(s.rsplit("k", 1)[-1])
                                             if s.startswith("clip-pooled") else 0, s))
    k_claims = [(setting, "clip-grid-all", "against all grid tokens") for setting in k_order if setting != "clip-grid-all"]
    plots = []
    if encoder_order:
        plots.append(plot_settings(encoders, encoder_order, assets / "encoders.png", "Image encoders"))
    if k_order:
        plots.append(plot_settings(k_study, k_order, assets / "k_study.png", "Prompt length k"))
    minutes = sum(r["seconds"] for r in results.values() if isinstance(r, dict) and "seconds" in r) / 60
    text = [
        "# LiMBeR: which image encoder transfers best to a frozen LM — reproduced small, with seeds and intervals",
        "",
        "Merullo et al. (ICLR 2023) map a frozen image encoder into a frozen LM's input space with one linear layer "
        "and find that encoders trained with language supervision (CLIP) transfer lexical categories better than "
        "vision-only ones (NF-ResNet on ImageNet labels, BEiT), and that fine-tuning the encoder with the map "
        "helps. Here the encoders share one architecture, trained on the same emoji images:",
        "",
        *[f"- **{name}**: {role}" for name, role in ENCODER_ROLES.items() if name in encoders],
        "",
        f"Each joins the same frozen LM (`{Path(args.language_model).name}`) through a projection trained by "
        f"`{args.limber_recipe}` for {args.limber_steps} steps x {args.batch_size} captions, seeds {args.seeds}. "
        f"Every run is evaluated on the same first {args.eval_examples} validation scenes (seen concepts, new "
        "scenes). Intervals: 95% percentile bootstrap over scenes (a scene's seeds averaged); claims: the paired "
        "bootstrap of the differences on the same scenes and seeds.",
        "",
        "## Encoders",
        "",
        settings_table(encoders, encoder_order) if encoder_order else "(not run yet)\n",
        "## The paper's claims",
        "",
        claims_table(encoders, CLAIMS) if len(encoder_order) > 1 else "(needs two encoders)\n",
        "## Prompt length k (the paper's untested limitation)",
        "",
        f"Pooled: the CLIP tower's pooled vector projected to k x d and split into k tokens. Grid: every token of "
        f"the tower (clip-grid-all) or the grid average-pooled {args.token_pool}x{args.token_pool}. {args.k_steps} "
        f"training steps each, captions of the first {args.k_eval_examples} validation scenes.",
        "",
        settings_table(k_study, k_order) if k_order else "(not run yet)\n",
        claims_table(k_study, k_claims) if "clip-grid-all" in k_study and len(k_order) > 1 else "",
        f"Machine time of the finished runs: {minutes:.0f} min.",
        "",
        *[f"![{plot.stem}]({assets.name}/{plot.name})" for plot in plots],
    ]
    docs.write_text("\n".join(text) + "\n")
    return docs
