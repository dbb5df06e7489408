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
import time
from pathlib import Path
from typing import Any

import torch
from datasets import load_from_disk
from transformers import TrainingArguments

from ..clip.configuration_clip import ClipConfig
from ..clip.modeling_clip import ClipVisionModel
from ..clip.processing_clip import clip_image_processor
from ..evaluation.limber_report import (
    LimberEvalSettings,
    card_results,
    evaluate_limber,
    load_scorer,
    write_limber_report,
)
from ..hub.cards import write_model_card
from ..limber.modeling_limber import LimberForCausalLM
from ..limber.processing_limber import LimberProcessor
from ..recipes import parse_recipe
from ..training.label_recipe import train_label_tower
from ..training.limber_recipe import (
    LimberArguments,
    LimberTrainingArguments,
    build_model,
    cache_features,
    train_limber,
)
from .compare_plan import ENCODER_ROLES, CompareArguments, Run, planned_runs
from .compare_report import write_comparison

__all__ = ["ENCODER_ROLES", "CompareArguments", "Run", "compare_encoders", "planned_runs", "prepare_encoders"]


def run_recipe(args: CompareArguments, run: Run, encoder: str, model_dir: Path,
               cache: Path) -> tuple[LimberArguments, LimberTrainingArguments]:
    """The LiMBeR recipe with this run's overrides: encoder, data, k, steps, seed, output."""
    overrides = [
        "--image_encoder", str(Path(encoder).resolve()), "--language_model", str(Path(args.language_model).resolve()),
        "--dataset", args.dataset, "--features", run.features, "--num_pooled_tokens", str(run.num_pooled_tokens),
        "--token_pool", str(run.token_pool), "--output_dir", str(model_dir), "--max_steps", str(run.steps),
        "--per_device_train_batch_size", str(args.batch_size), "--seed", str(run.seed), "--eval_split", "null",
        "--save_strategy", "no", "--disable_tqdm", "true", "--overwrite_output_dir", "true",
        "--train_image_encoder", str(run.train_image_encoder).lower(),
    ]
    if not run.train_image_encoder:  # a trained encoder changes its features every step: from pixels then
        overrides += ["--cached_features", str(cache)]
    return parse_recipe(args.limber_recipe, (LimberArguments, LimberTrainingArguments), overrides)


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


def _run(args: CompareArguments, run: Run, encoder: str, out: Path) -> dict[str, Any]:
    model_dir, cache = out / "limber" / run.name, out / "features" / run.cache_name
    limber_args, training_args = run_recipe(args, run, encoder, model_dir, cache)
    if not run.train_image_encoder and not (cache / "dataset_dict.json").is_file():
        model, processor = build_model(limber_args)
        cache_features(model, processor, load_from_disk(args.dataset)).save_to_disk(str(cache))
    if not (model_dir / "model.safetensors").is_file():
        train_limber(limber_args, training_args)
    model = LimberForCausalLM.from_pretrained(model_dir)
    processor = LimberProcessor.from_pretrained(model_dir)
    main = run.study == "encoders"
    # The same scenes and questions for every run (evaluation seed 0): the comparisons are paired.
    settings = LimberEvalSettings(split="validation", num_examples=args.eval_examples if main else args.k_eval_examples,
                                  vqa_shots=args.vqa_shots if main else (), seed=0)
    evaluation = evaluate_limber(model, processor, load_from_disk(args.dataset), settings, load_scorer(args.clip))
    write_limber_report(evaluation, load_from_disk(args.dataset)["validation"], settings, model_dir / "eval-validation",
                        {"model": run.name, "encoder": encoder, "k": model.config.num_image_tokens,
                         "steps": run.steps, "seed": run.seed})
    return json.loads((model_dir / "eval-validation" / "report.json").read_text())


def compare_encoders(args: CompareArguments) -> Path:
    """Every planned run not finished yet, then the results page; returns its path."""
    out = Path(args.out)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    started = time.perf_counter()
    encoders = prepare_encoders(args, out)
    results.setdefault("_seconds", {}).setdefault("encoders", round(time.perf_counter() - started, 1))
    for run in planned_runs(args):
        if run.name in results:
            print(f"{run.name}: finished in an earlier run, reused")
            continue
        print(f"{run.name}: features={run.features} k-options pooled={run.num_pooled_tokens} pool={run.token_pool}")
        started = time.perf_counter()
        report = _run(args, run, encoders[run.encoder], out)
        results[run.name] = {"study": run.study, "setting": run.setting, "encoder": run.encoder, "seed": run.seed,
                             "seconds": round(time.perf_counter() - started, 1), "report": report}
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2) + "\n")
    page = write_comparison(args, results)
    for name, result in results.items():
        if not name.startswith("_"):
            _write_card(args, out / "limber" / name, result, page)
    return page


def _write_card(args: CompareArguments, model_dir: Path, result: dict[str, Any], page: Path) -> Path:
    """The run's model card: its own results and plots, and the whole comparison's plots."""
    steps = result["report"].get("steps", args.limber_steps)  # reports from before 'steps' was recorded
    plots = sorted((model_dir / "eval-validation").glob("*.png")) + sorted(page.with_suffix("").glob("*.png"))
    return write_model_card(model_dir, kind="limber", results=card_results(result["report"], Path(args.dataset).name),
                            plots=plots, training={
                                "data": args.dataset,
                                "image encoder": ENCODER_ROLES.get(result["setting"], ENCODER_ROLES[result["encoder"]]),
                                "steps": f"{steps} x {args.batch_size} captions, seed {result['seed']}",
                                "comparison": f"{page} (every encoder and k; its plots are below)",
                                "run time (features, training, evaluation)": f"{result['seconds'] / 60:.1f} min"})
