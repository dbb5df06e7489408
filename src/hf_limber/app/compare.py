"""LiMBeR's comparison, small: one image-tower architecture trained three ways — with language
(CLIP), with class labels only, not at all (random) — each joined to the same frozen LM by a
trained linear map, plus the CLIP tower trained together with the map; and the prompt length k the
paper left untested (pooled features split into k tokens, and the token grid average-pooled). Every
setting runs with several seeds, trained by the LiMBeR recipe with overrides, and is evaluated on
the same scenes, so the page can judge each claim by a paired bootstrap. `hf-limber compare-encoders
RECIPE` runs it all, reusing every finished run (across sessions), and writes a results page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from datasets import load_from_disk
from transformers import TrainingArguments

from ..clip.configuration_clip import ClipConfig
from ..clip.modeling_clip import ClipVisionModel
from ..clip.processing_clip import clip_image_processor
from ..evaluation.limber_report import card_results
from ..hub.cards import write_model_card
from ..limber.configuration_limber import LimberConfig
from ..training.label_recipe import train_label_tower
from .compare_plan import ENCODER_ROLES, CompareArguments, Run, planned_runs
from .compare_report import write_comparison
from .stages import Stage, run_stages

__all__ = ["ENCODER_ROLES", "CompareArguments", "Run", "compare_encoders", "planned_runs", "prepare_encoders"]


def _recipe_overrides(args: CompareArguments, run: Run, encoder: str) -> list[str]:
    """The LiMBeR recipe's fields this run sets: encoder, LM, data and the features' form (k)."""
    return ["--image_encoder", str(Path(encoder).resolve()), "--language_model", str(Path(args.language_model).resolve()),
            "--dataset", args.dataset, "--features", run.features, "--num_pooled_tokens", str(run.num_pooled_tokens),
            "--token_pool", str(run.token_pool)]


def comparison_stages(args: CompareArguments, encoders: dict[str, str], out: Path) -> list[Stage]:
    """Stages for the shared runner: each encoder's features cached once, then per run its training and
    evaluation, as `hf-limber` commands (the LiMBeR recipe plus this run's overrides). A run needs only
    its own features, so adding seeds or settings reruns nothing that finished."""
    stages: dict[str, Stage] = {}
    for run in planned_runs(args):
        encoder = encoders[run.encoder]
        model_dir, cache = out / "limber" / run.name, out / "features" / run.cache_name
        train = ["train-limber", args.limber_recipe, *_recipe_overrides(args, run, encoder), "--output_dir", str(model_dir),
                 "--max_steps", str(run.steps), "--per_device_train_batch_size", str(args.batch_size),
                 "--seed", str(run.seed), "--eval_split", "null", "--save_strategy", "no", "--disable_tqdm", "true",
                 "--overwrite_output_dir", "true", "--train_image_encoder", str(run.train_image_encoder).lower()]
        needs = []
        if not run.train_image_encoder:  # a trained encoder changes its features every step: from pixels then
            features = f"features-{run.cache_name}"
            stages.setdefault(features, Stage(features, f"cache the {run.encoder} tower's {run.features} features",
                                              [["cache-features", args.limber_recipe, str(cache),
                                                *_recipe_overrides(args, run, encoder)]], needs=[]))
            train += ["--cached_features", str(cache)]
            needs = [features]
        main = run.study == "encoders"
        # The same scenes and questions for every run (evaluation seed 0): the comparisons are paired.
        evaluate = ["eval-limber", str(model_dir), args.dataset, "--split", "validation", "--seed", "0",
                    "--num-examples", str(args.eval_examples if main else args.k_eval_examples),
                    "--vqa-shots", *[str(shots) for shots in (args.vqa_shots if main else ())],
                    "--scorer", args.clip, "--out", str(model_dir / "eval-validation")]
        stages[run.name] = Stage(run.name, f"LiMBeR with the {run.setting} encoder, seed {run.seed}", [train, evaluate],
                                 needs=needs)
    return list(stages.values())


def prepare_encoders(args: CompareArguments, out: Path) -> dict[str, str]:
    """Encoder folders: the CLIP as given, the label-only tower (trained once), the random tower."""
    vision = ClipConfig.from_pretrained(args.clip).vision_config
    labels, random = out / "encoders" / "labels", out / "encoders" / "random"
    if not (labels / "model.safetensors").is_file():
        train = load_from_disk(args.label_dataset)["train"]
        train_label_tower(train, vision, args.label_column, TrainingArguments(
            output_dir=str(labels), per_device_train_batch_size=args.label_batch_size,
            num_train_epochs=args.label_epochs, learning_rate=1e-3, weight_decay=0.2, warmup_steps=30,
            lr_scheduler_type="cosine", use_cpu=True, logging_steps=10, save_strategy="no",
            dataloader_num_workers=0, seed=args.seed, report_to="none", remove_unused_columns=False))
    if not (random / "model.safetensors").is_file():
        torch.manual_seed(args.seed)
        ClipVisionModel(vision).save_pretrained(random)
        clip_image_processor(vision.image_size).save_pretrained(random)
    return {"clip": args.clip, "labels": str(labels), "random": str(random)}


def compare_encoders(args: CompareArguments) -> Path:
    """Every planned run not finished yet (the shared stage runner, OUT/stages.json), then the results
    page and each run's model card; returns the page's path. OUT/results.json gathers the runs' reports."""
    from ..cli import main as cli

    out = Path(args.out)
    encoders = prepare_encoders(args, out)
    state = run_stages(comparison_stages(args, encoders, out), out, cli)
    results = {}
    for run in planned_runs(args):
        model_dir = out / "limber" / run.name
        config = LimberConfig.from_pretrained(model_dir)
        results[run.name] = {"study": run.study, "setting": run.setting, "encoder": run.encoder, "seed": run.seed,
                             "steps": run.steps, "k": config.num_image_tokens,
                             "seconds": state["stages"][run.name]["seconds"],
                             "report": json.loads((model_dir / "eval-validation" / "report.json").read_text())}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    page = write_comparison(args, results)
    for name, result in results.items():
        _write_card(args, out / "limber" / name, result, page)
    return page


def _write_card(args: CompareArguments, model_dir: Path, result: dict[str, Any], page: Path) -> Path:
    """The run's model card: its own results and plots, and the whole comparison's plots."""
    steps = result["steps"]
    plots = sorted((model_dir / "eval-validation").glob("*.png")) + sorted(page.with_suffix("").glob("*.png"))
    return write_model_card(model_dir, kind="limber", results=card_results(result["report"], Path(args.dataset).name),
                            plots=plots, training={
                                "data": args.dataset,
                                "image encoder": ENCODER_ROLES.get(result["setting"], ENCODER_ROLES[result["encoder"]]),
                                "steps": f"{steps} x {args.batch_size} captions, seed {result['seed']}",
                                "comparison": f"{page} (every encoder and k; its plots are below)",
                                "run time (training, evaluation)": f"{result['seconds'] / 60:.1f} min"})
