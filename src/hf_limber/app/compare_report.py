"""The results page of `hf-limber compare-encoders`: tables, the paper's ordering checked, plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..evaluation.clip_plots import _pyplot
from ..evaluation.limber_report import comparison_table, summary_row
from .compare_plan import ENCODER_ROLES, CompareArguments

BAR_METRICS = ("CIDEr-D", "CLIP-S", "RefCLIP-S", "nouns R", "modifiers R", "relations R", "noun Wu-Palmer R")


def plot_encoders(rows: dict[str, dict[str, float | None]], path: Path) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(rows)
    for index, (name, row) in enumerate(rows.items()):
        values = [row.get(metric) or 0.0 for metric in BAR_METRICS]
        axes.bar([i + index * width for i in range(len(BAR_METRICS))], values, width, label=name)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(BAR_METRICS))], BAR_METRICS, fontsize=9)
    axes.set_title("LiMBeR with three image encoders of one architecture (same frozen LM, same training)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_k_study(points: list[tuple[str, int, dict[str, Any]]], path: Path) -> Path:
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, metric in zip(axes, ("CIDEr-D", "nouns R")):
        for setting, marker in (("pooled", "o-"), ("grid", "s--")):
            chosen = sorted((k, row[metric]) for kind, k, row in points if kind == setting)
            if chosen:
                axis.plot([k for k, _ in chosen], [v for _, v in chosen], marker, label=f"{setting} features")
        axis.set_xscale("log", base=2)
        axis.set_xlabel("k (soft-prompt tokens per image)")
        axis.set_title(metric)
        axis.legend(fontsize=8)
    figure.suptitle("Prompt length k: pooled vector split into k tokens, or the token grid (all / average-pooled)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _ordering(rows: dict[str, dict[str, float | None]]) -> str:
    lines = []
    for metric in ("nouns R", "modifiers R", "relations R", "CIDEr-D"):
        ranked = sorted(rows, key=lambda name: -(rows[name].get(metric) or 0.0))
        values = ", ".join(f"{name} {rows[name].get(metric) or 0.0:.3f}" for name in ranked)
        verdict = "holds" if ranked[0] == "clip" else "does not hold"
        lines.append(f"- {metric}: {values} — language supervision first: {verdict}.")
    return "\n".join(lines)


def _k_trends(points: list[tuple[str, int, dict[str, Any]]]) -> str:
    """Pooled: each metric from the smallest to the largest k and its rank correlation with k.
    Grid: the average-pooled grid against all tokens."""
    from scipy.stats import spearmanr

    lines = []
    pooled = sorted((k, row) for kind, k, row in points if kind == "pooled")
    grid = sorted((k, row) for kind, k, row in points if kind == "grid")
    for metric in ("CIDEr-D", "nouns R", "modifiers R"):
        parts = []
        if len(pooled) > 2:
            values = [row[metric] or 0.0 for _, row in pooled]
            rho = spearmanr([k for k, _ in pooled], values).statistic
            parts.append(f"pooled k={pooled[0][0]}→{pooled[-1][0]}: {values[0]:.3f}→{values[-1]:.3f} "
                         f"(Spearman ρ with k = {rho:+.2f} over {len(values)} runs)")
        if len(grid) == 2:
            (fewer, small), (k_all, full) = grid
            parts.append(f"grid: {fewer} pooled tokens {small[metric] or 0.0:.3f} vs all {k_all} "
                         f"{full[metric] or 0.0:.3f}")
        if parts:
            lines.append(f"- {metric}: " + "; ".join(parts) + ".")
    return "\n".join(lines)


def write_comparison(args: CompareArguments, results: dict[str, Any]) -> Path:
    docs = Path(args.docs)
    assets = docs.with_suffix("")
    assets.mkdir(parents=True, exist_ok=True)
    encoder_rows = {name: summary_row(results[name]["report"]) for name in ENCODER_ROLES if name in results}
    points = []
    for name, result in results.items():
        if name.startswith("_"):
            continue
        k = result["report"]["k"]
        # The encoder study's CLIP run is the all-tokens point only when trained as long as the k study.
        if result["study"] != "k" and (name != "clip" or args.k_study_has_own_baseline):
            continue
        kind = "pooled" if name.startswith("clip-pooled") else "grid"
        points.append((kind, k, summary_row(result["report"])))
    plots = [plot_encoders(encoder_rows, assets / "encoders.png")] if encoder_rows else []
    if points:
        plots.append(plot_k_study(points, assets / "k_study.png"))
    times = ", ".join(f"{name} {result['seconds'] / 60:.1f} min" for name, result in results.items()
                      if not name.startswith("_"))
    k_rows = {f"{kind} k={k}": {key: row[key] for key in ("CIDEr-D", "CLIP-S", "nouns R", "modifiers R")}
              for kind, k, row in sorted(points, key=lambda p: (p[0], p[1]))}
    text = [
        "# LiMBeR: which image encoder transfers best to a frozen LM — reproduced small",
        "",
        "Merullo et al. (ICLR 2023) map a frozen image encoder into a frozen LM's input space with one linear layer "
        "and find that encoders trained with language supervision (CLIP) transfer lexical categories better than "
        "vision-only ones (NF-ResNet on ImageNet labels, BEiT). Here the three encoders share one architecture, "
        "trained on the same emoji images:",
        "",
        *[f"- **{name}**: {role}" for name, role in ENCODER_ROLES.items()],
        "",
        f"Each joins the same frozen LM (`{Path(args.language_model).name}`) through a projection trained for "
        f"{args.limber_steps} steps x {args.batch_size} captions on the emoji scenes (cached features, fp32, 2-core "
        f"CPU). Evaluation on the first {args.eval_examples} validation scenes (greedy captions; CLIPScore by the "
        f"CLIP trained here; VQA on one question per scene, solved examples from the training scenes).",
        "",
        "## Encoders",
        "",
        comparison_table(encoder_rows) if encoder_rows else "(not run yet)\n",
        "The paper's ordering (language supervision transfers lexical concepts best):",
        "",
        _ordering(encoder_rows) if len(encoder_rows) > 1 else "(needs all three encoders)",
        "",
        f"Read these with the budget in mind: {args.limber_steps} steps is well under one epoch, and "
        f"{args.eval_examples} scenes (one question each) make one VQA answer worth {100 / args.eval_examples:.1f} "
        "points; few-shot VQA rises for every encoder, the random one included, because the solved examples teach "
        "the answer format and the scenes' answer priors (yes/no, counts, corners).",
        "",
        "## Prompt length k (the paper's untested limitation)",
        "",
        f"Pooled: the CLIP tower's pooled vector projected to k x d and split into k tokens. Grid: every token of "
        f"the tower (k = all) or the grid average-pooled {args.token_pool}x{args.token_pool}. "
        f"{args.k_steps} training steps each; evaluated on "
        f"{args.k_eval_examples} validation scenes, captions only.",
        "",
        comparison_table(k_rows) if k_rows else "(not run yet)\n",
        _k_trends(points),
        "",
        f"One seed per setting and {args.k_eval_examples} scenes: single points move by a caption's worth, so read "
        "the trends, not the points.",
        "",
        f"Run times: {times}.",
        "",
        *[f"![{plot.stem}]({assets.name}/{plot.name})" for plot in plots],
    ]
    docs.write_text("\n".join(text) + "\n")
    return docs
