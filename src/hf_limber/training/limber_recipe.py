"""Train the LiMBeR projection with the transformers Trainer, from pixels or from cached features."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Array2D, Dataset, DatasetDict, IterableDataset, load_from_disk
from transformers import AutoTokenizer, Trainer, TrainingArguments, set_seed

from ..data.streaming import load_image_text_pairs
from ..data.tars import tar_shards
from ..images import prepare_image
from ..limber.modeling_limber import LimberForCausalLM
from ..limber.processing_limber import LimberProcessor
from ..limber.remote_code import check_location
from .caption_collator import CaptionCollator
from .limber_init import ridge_init_
from .output_dir import resume_point
from .precision import PrecisionArguments, PrecisionCallback, choose_precision

FEATURE_COLUMN = "image_features"


@dataclass
class LimberArguments:
    """What to join and what to train on."""

    image_encoder: str = field(metadata={"help": "folder of the frozen image encoder (hf_limber CLIP, transformers)"})
    language_model: str = field(metadata={"help": "folder of the frozen causal LM and its tokenizer"})
    dataset: str = field(metadata={"help": "a DatasetDict saved with save_to_disk (e.g. `hf-limber data emoji-scenes`)"})
    train_split: str = "train"
    eval_split: str | None = "validation"
    image_column: str = "image"
    caption_column: str = "captions"
    cached_features: str | None = field(
        default=None, metadata={"help": "folder written by `hf-limber cache-features`: train without the encoder"})
    features: str = field(default="tokens", metadata={
        "help": "tokens (per grid/patch token), pooled (k·d split) or tiles (the encoder's pooled vector per tile)"})
    feature_layer: int = -1
    num_pooled_tokens: int = 1
    token_pool: int = field(default=1, metadata={"help": "average-pool the token grid by this factor per side"})
    tiles_per_side: int = field(default=2, metadata={"help": "features=tiles: tiles per side of the picture (k = its square)"})
    image_size: int | None = field(default=None, metadata={
        "help": "feed the encoder pictures of this size instead of its own (a ResNet's grid grows with it)"})
    prompt: str = "A picture of"
    normalize_features: bool = field(default=False, metadata={"help": "layer-normalise image features before the map"})
    soft_prompt_norm: str | None = field(
        default=None, metadata={"help": "rescale soft prompts to this L2 norm; 'auto': the LM's mean token-embedding norm"})
    projection_dropout: float = 0.1
    projection_init: str = field(default="random", metadata={
        "help": "random (the paper), or ridge: least squares from image features to the caption words' embeddings "
        "(training.limber_init), refined by training"})
    ridge_examples: int = field(default=10000, metadata={
        "help": "training images the ridge start is solved on (more fit it better: it is solved in seconds)"})
    train_image_encoder: bool = field(default=False, metadata={
        "help": "train the image encoder with the projection (the paper's BEiT-FT); needs pixels, not cached features"})
    lora_rank: int = field(default=0, metadata={
        "help": "train a LoRA of this rank on the frozen LM with the projection (0: none, the paper); saved with peft"})
    lora_alpha: float = field(default=16.0, metadata={"help": "the LoRA's scale numerator (scaling = alpha / rank)"})
    lora_target_modules: list[str] | None = field(default=None, metadata={
        "help": "the LM's modules the LoRA adapts (default: peft's choice for the LM's architecture; 'all-linear')"})
    max_train_samples: int | None = None
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "train over an earlier run in output_dir (else: resume it with resume_from_checkpoint, or refuse)"})


@dataclass
class LimberTrainingArguments(PrecisionArguments, TrainingArguments):
    """TrainingArguments with the LiMBeR paper's settings as defaults (bf16 is set by the recipes:
    on a machine without a GPU transformers wants `use_cpu: true` beside it)."""

    learning_rate: float = 8e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    weight_decay: float = 0.0
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    lr_scheduler_type: str = "linear"
    remove_unused_columns: bool = False
    dataloader_drop_last: bool = True
    report_to: str = "none"
    save_strategy: str = "no"


def _soft_prompt_norm(value: str | None) -> str | float | None:
    if value is None or value.lower() in ("none", "null"):  # YAML null, or "none" on the command line
        return None
    return value if value == "auto" else float(value)


def build_model(args: LimberArguments) -> tuple[LimberForCausalLM, LimberProcessor]:
    check_location(args.language_model, "language model")
    model = LimberForCausalLM.from_parts(
        args.image_encoder, args.language_model, features=args.features, feature_layer=args.feature_layer,
        num_pooled_tokens=args.num_pooled_tokens, token_pool=args.token_pool, tiles_per_side=args.tiles_per_side,
        prompt=args.prompt,
        normalize_features=args.normalize_features, projection_dropout=args.projection_dropout,
        train_image_encoder=args.train_image_encoder, image_size=args.image_size,
        soft_prompt_norm=_soft_prompt_norm(args.soft_prompt_norm),
    )
    if args.lora_rank:
        from peft import LoraConfig

        targets = args.lora_target_modules
        if targets == ["all-linear"]:  # peft reads this one only as a string
            targets = "all-linear"
        model.add_language_model_adapter(LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha, target_modules=targets))
    processor = LimberProcessor.for_model(model, AutoTokenizer.from_pretrained(args.language_model))
    return model, processor


def cache_features(model: LimberForCausalLM, processor: LimberProcessor, dataset: DatasetDict,
                   image_column: str = "image", batch_size: int = 64) -> DatasetDict:
    """Run the frozen encoder once over every split; the images are replaced by the features the
    projection reads, so training afterwards never touches the encoder."""
    model.eval()

    @torch.no_grad()
    def encode_batch(rows: dict) -> dict:
        pixels = processor.image_processor([prepare_image(image) for image in rows[image_column]], return_tensors="pt")
        features = model.image_features(pixels["pixel_values"]).float()
        # Pooled vectors are stored as one-token rows so every cache has the same layout.
        return {FEATURE_COLUMN: (features[:, None] if features.ndim == 2 else features).numpy()}

    shape = (model.config.num_image_tokens, model.config.image_feature_size)
    if model.config.features == "pooled":
        shape = (1, model.config.image_feature_size)
    cached = {}
    for split, data in dataset.items():
        features = data.features.copy()
        del features[image_column]
        features[FEATURE_COLUMN] = Array2D(shape=shape, dtype="float32")
        cached[split] = data.map(encode_batch, batched=True, batch_size=batch_size, remove_columns=[image_column],
                                 features=features, desc=f"encoding {split}")
    return DatasetDict(cached)


def _split(dataset: DatasetDict, name: str | None, limit: int | None = None) -> Dataset | None:
    if name is None or name not in dataset:
        return None
    data = dataset[name]
    return data.select(range(min(limit, len(data)))) if limit else data


def _training_data(args: LimberArguments) -> tuple[Dataset | IterableDataset, Dataset | None, str, str]:
    """Train and eval data with their image and caption columns: cached features, a saved
    DatasetDict, or webdataset shards streamed (the paper's CC3M setting)."""
    if args.cached_features:
        cached = load_from_disk(args.cached_features).with_format("torch", columns=[FEATURE_COLUMN],
                                                                   output_all_columns=True)
        return (_split(cached, args.train_split, args.max_train_samples), _split(cached, args.eval_split),
                args.image_column, args.caption_column)
    if tar_shards(args.dataset) is not None:
        # rank 0 of 1: the Trainer's accelerate data loader splits the stream across processes itself.
        return load_image_text_pairs(args.dataset, streaming=True, rank=0, world_size=1), None, "image", "text"
    dataset = load_from_disk(args.dataset)
    return (_split(dataset, args.train_split, args.max_train_samples), _split(dataset, args.eval_split),
            args.image_column, args.caption_column)


def _ridge_start(model: LimberForCausalLM, processor: LimberProcessor, train: Dataset, image_column: str,
                 caption_column: str, examples: int) -> None:
    rows = train.select(range(min(examples, len(train))))
    captions = [[texts] if isinstance(texts, str) else list(texts) for texts in rows[caption_column]]
    if FEATURE_COLUMN in rows.column_names:
        column = rows.with_format("torch", columns=[FEATURE_COLUMN])[FEATURE_COLUMN]
        features = column if isinstance(column, torch.Tensor) else torch.stack(list(column))
    else:
        pixels = processor.image_processor([prepare_image(image) for image in rows[image_column]],
                                           return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            features = torch.cat([model.image_features(chunk) for chunk in pixels.split(64)])
    ridge_init_(model, features, captions, processor.tokenizer)


def train_limber(args: LimberArguments, training_args: LimberTrainingArguments) -> LimberForCausalLM:
    if args.train_image_encoder and args.cached_features:
        raise ValueError("train_image_encoder trains the encoder, so its features change every step: train from the "
                         "images (leave cached_features out).")
    resume = resume_point(training_args.output_dir, training_args.resume_from_checkpoint, args.overwrite_output_dir)
    print(f"Precision: {choose_precision(training_args)}")
    set_seed(training_args.seed)  # the projection's initialisation is part of the run
    model, processor = build_model(args)
    train, evaluation, image_column, caption_column = _training_data(args)
    if evaluation is None:
        training_args.eval_strategy = "no"  # eval_split: null (or no such split) turns evaluation off
    if args.projection_init == "ridge" and resume is None:
        _ridge_start(model, processor, train, image_column, caption_column, args.ridge_examples)
    elif args.projection_init not in ("random", "ridge"):
        raise ValueError(f"projection_init: {args.projection_init!r} is neither 'random' nor 'ridge'.")
    collator = CaptionCollator(processor, image_column=image_column, caption_column=caption_column,
                               seed=training_args.seed)
    trainer = Trainer(model=model, args=training_args, data_collator=collator, train_dataset=train,
                      eval_dataset=evaluation, callbacks=[PrecisionCallback()])
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_state()  # trainer_state.json: the loss history reports read
    out = Path(training_args.output_dir)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return model
