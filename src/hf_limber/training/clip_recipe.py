"""`hf-limber train-clip RECIPE`: a CLIP from a preset (or a saved model), trained with ContrastiveTrainer.

Besides the data and the model, a recipe picks what open_clip's users pick: the objective (CLIP's softmax or
SigLIP's sigmoid loss), locked towers (LiT, Zhai et al. 2022: a tower frozen, optionally with its last blocks
and its norms left to train) and patch dropout (FLIP, Li et al. 2023). With `lora_rank` a LoRA on one or both towers
trains instead of the weights (training/clip_lora.py): the run saves it in peft's files (clip_adapter/) and the model
with it merged as a plain ClipModel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn
from transformers import AutoTokenizer, set_seed

from ..clip.configuration_clip import ClipConfig
from ..clip.modeling_clip import ClipModel
from ..clip.modeling_resnet import Bottleneck
from ..clip.modeling_transformer import Block
from ..clip.processing_clip import ClipProcessor, with_image_size
from ..clip.tokenization import clip_tokenizer_from_bpe, default_bpe_path, train_clip_tokenizer
from ..data.streaming import SkippedSamplesCallback, load_image_text_pairs
from .clip_lora import CLIP_ADAPTER_FOLDER, add_clip_lora, hold_batch_norm_statistics, merged_state_dict, save_clip_lora
from .collators import ImageTextCollator
from .contrastive_trainer import ContrastiveTrainer, ContrastiveTrainingArguments
from .output_dir import resume_point
from .precision import choose_precision


@dataclass
class ClipRecipeArguments:
    dataset: str = field(metadata={"help": "datasets folder, imagefolder, webdataset shards (path/glob) or Hub id"})
    model: str = field(default="small-vit", metadata={"help": "a preset name (hf_limber.list_presets()) or a saved folder"})
    train_split: str = "train"
    eval_split: str | None = "validation"
    image_column: str | None = None
    text_column: str | None = None
    streaming: bool = field(default=False, metadata={"help": "stream the data (needs max_steps)"})
    dataset_resampled: bool = field(default=False, metadata={
        "help": "tar shards, streaming: draw training shards with replacement, an endless stream per rank and "
        "worker (open_clip's --dataset-resampled); `dataset` may join several sources with '::'"})
    dataset_weights: list[float] | None = field(default=None, metadata={
        "help": "with dataset_resampled: one weight per '::' source, the share of samples drawn from it"})
    tokenizer: str = field(default="train", metadata={
        "help": "'train': a new BPE on the training captions; 'clip': the released CLIP vocabulary; or a folder"})
    vocab_size: int = 8192
    scale_augment: list[float] | None = field(default=None, metadata={
        "help": "two numbers (smallest, largest): shrink each training picture by a random share in that range "
        "and paste it at a random place on white, so the tower learns objects at the sizes scenes show them"})
    patch_augment: float = field(default=0.0, metadata={
        "help": "with scale_augment: the share of those pictures drawn centred on a rounded square of a random "
        "colour instead (the emoji scenes draw 40%% of their objects so)"})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "train over an earlier run in output_dir (else: resume it with resume_from_checkpoint, or refuse)"})
    objective: str | None = field(default=None, metadata={
        "help": "'softmax' (CLIP) or 'sigmoid' (SigLIP, with a learnable logit bias); default: the saved model's "
        "own, or softmax for a preset"})
    patch_dropout: float | None = field(default=None, metadata={
        "help": "FLIP: share of a ViT's patch tokens dropped at random in each training forward (off in eval); "
        "default: the saved model's own, or 0"})
    image_size: int | None = field(default=None, metadata={
        "help": "train at this resolution: the model's stored position embeddings are resized once (bicubic, as "
        "interpolate_pos_encoding) and its config and processor take the new size (CLIP's ViT-L/14@336 fine-tune)"})
    lock_image_tower: bool = field(default=False, metadata={"help": "LiT: freeze the image tower and its projection"})
    lock_image_unlocked_blocks: int = field(default=0, metadata={
        "help": "with lock_image_tower: train its last n residual blocks and every layer after them"})
    lock_image_unlock_norms: bool = field(default=False, metadata={
        "help": "with lock_image_tower: train its LayerNorm/BatchNorm gains and biases (BatchNorm statistics too)"})
    lock_text_tower: bool = field(default=False, metadata={"help": "freeze the text tower and its projection"})
    lock_text_unlocked_blocks: int = field(default=0, metadata={
        "help": "with lock_text_tower: train its last n blocks and every layer after them"})
    lock_text_unlock_norms: bool = field(default=False, metadata={
        "help": "with lock_text_tower: train its LayerNorm gains and biases"})
    lora_rank: int = field(default=0, metadata={
        "help": "train a LoRA of this rank on the towers instead of their weights (0: off); every other weight, the "
        "logit scale and bias included, stays frozen. Saved in peft's files (clip_adapter/) and merged into the model"})
    lora_alpha: float = field(default=16.0, metadata={"help": "the LoRA's scale numerator (scaling = alpha / rank)"})
    lora_target_modules: list[str] | None = field(default=None, metadata={
        "help": "layer names the LoRA adapts within the chosen towers (default: attention qkv/out_proj and MLP "
        "fc1/fc2; a ResNet image tower: its attention pool's q_proj/k_proj/v_proj/c_proj; 'all-linear': every "
        "linear layer)"})
    lora_towers: list[str] = field(default_factory=lambda: ["image", "text"], metadata={
        "help": "the towers the LoRA adapts: image, text or both"})

    def __post_init__(self) -> None:
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be 0 (off) or positive, got {self.lora_rank}.")
        if self.lora_rank and (self.lock_image_tower or self.lock_text_tower):
            raise ValueError("lora_rank freezes every weight but the LoRA's already: drop the lock_* options.")
        if not self.lora_towers or not set(self.lora_towers) <= {"image", "text"}:
            raise ValueError(f"lora_towers must name 'image', 'text' or both, got {self.lora_towers}.")
        if self.lock_image_tower and self.lock_text_tower:
            raise ValueError("lock_image_tower and lock_text_tower both set: only the temperature would train. "
                             "Lock one tower (LiT locks the image tower) or unlock some blocks of one.")
        for tower in ("image", "text"):
            if not getattr(self, f"lock_{tower}_tower") and (getattr(self, f"lock_{tower}_unlocked_blocks")
                                                             or getattr(self, f"lock_{tower}_unlock_norms")):
                raise ValueError(f"lock_{tower}_unlocked_blocks / lock_{tower}_unlock_norms refine a locked tower: "
                                 f"set lock_{tower}_tower: true as well, or drop them.")


def _tokenizer(args: ClipRecipeArguments, captions: list[str], context_length: int):
    if args.tokenizer == "train":
        return train_clip_tokenizer(captions, vocab_size=args.vocab_size, context_length=context_length)
    if args.tokenizer == "clip":
        path = default_bpe_path()
        if path is None:
            raise FileNotFoundError("tokenizer: clip needs the CLIP merges file that open_clip_torch ships (pip install open_clip_torch).")
        return clip_tokenizer_from_bpe(path, context_length)
    return AutoTokenizer.from_pretrained(args.tokenizer)


def train_clip(args: ClipRecipeArguments, training_args: ContrastiveTrainingArguments) -> ContrastiveTrainer:
    resume = resume_point(training_args.output_dir, training_args.resume_from_checkpoint, args.overwrite_output_dir)
    print(f"Precision: {choose_precision(training_args)}")
    if args.lora_rank:
        _check_lora_base(args)
    if args.eval_split is None:
        training_args.eval_strategy = "no"  # eval_split: null turns evaluation off
    set_seed(training_args.seed)
    # rank 0 of 1: the Trainer's accelerate data loader splits the stream across processes itself.
    if args.dataset_resampled and not (args.streaming and training_args.max_steps > 0):
        raise ValueError("dataset_resampled draws an endless stream: set streaming: true and max_steps.")
    if args.dataset_resampled and args.tokenizer == "train" and not Path(args.model).is_dir():
        raise ValueError("tokenizer: train reads every training caption, and a resampled stream never ends: "
                         "use tokenizer: clip or a tokenizer folder.")
    if args.dataset_weights and not args.dataset_resampled:
        raise ValueError("dataset_weights mixes sources of a resampled stream: set dataset_resampled: true.")
    pairs = {split: load_image_text_pairs(args.dataset, split, streaming=args.streaming, image_column=args.image_column,
                                          text_column=args.text_column, rank=0, world_size=1,
                                          resampled=args.dataset_resampled and split == args.train_split,
                                          weights=args.dataset_weights, seed=training_args.seed)
             for split in (args.train_split, args.eval_split) if split}
    if Path(args.model).is_dir():
        # Fine-tuning may switch the objective (a new logit bias starts at the config's value) or add patch dropout.
        config = _with_recipe_choices(ClipConfig.from_pretrained(args.model), args)
        model = ClipModel.from_pretrained(args.model, config=config)
        processor = ClipProcessor.from_pretrained(args.model)
    else:
        config = ClipConfig.from_preset(args.model)
        captions = [row["text"] for row in pairs[args.train_split].select_columns(["text"])]
        tokenizer = _tokenizer(args, captions, config.text_config.max_position_embeddings)
        text_ids = {"vocab_size": len(tokenizer), "eos_token_id": tokenizer.eos_token_id,
                    "bos_token_id": tokenizer.bos_token_id, "pad_token_id": tokenizer.pad_token_id}
        config = ClipConfig.from_preset(args.model, text_config={**config.text_config.to_dict(), **text_ids},
                                        **({"contrastive_objective": args.objective} if args.objective else {}))
        model = ClipModel(_with_recipe_choices(config, args))
        processor = ClipProcessor.for_config(config, tokenizer)
    if args.image_size is not None and args.image_size != model.config.vision_config.image_size:
        model.resize_image_size(args.image_size)
        processor.image_processor = with_image_size(processor.image_processor, args.image_size)
    if args.lora_rank:
        add_clip_lora(model, args.lora_rank, args.lora_alpha, args.lora_target_modules, args.lora_towers,
                      base_model_name_or_path=args.model)
    for tower in ("image", "text"):
        if getattr(args, f"lock_{tower}_tower"):
            lock_tower(model, tower, getattr(args, f"lock_{tower}_unlocked_blocks"),
                       getattr(args, f"lock_{tower}_unlock_norms"))
    trainer = ContrastiveTrainer(
        model=model, args=training_args, processing_class=processor,
        train_dataset=pairs[args.train_split], eval_dataset=pairs.get(args.eval_split),
        data_collator=ImageTextCollator(processor, image_column="image", text_column="text",
                                        scale_augment=tuple(args.scale_augment) if args.scale_augment else None,
                                        patch_augment=args.patch_augment),
        callbacks=[SkippedSamplesCallback(pairs[args.train_split].skip_counter)],
    )
    trainer.train(resume_from_checkpoint=resume)
    if args.lora_rank:
        # The folder holds the merged model (a plain ClipModel, no peft needed) and the LoRA in peft's files.
        # Checkpoints on the way keep the LoRA layers unmerged, for resuming. (ContrastiveTrainer._save is the
        # Trainer's hook for what save_model writes: the model, the processor and the training arguments.)
        trained = trainer.accelerator.unwrap_model(trainer.model)
        if trainer.args.should_save:
            trainer._save(training_args.output_dir, state_dict=merged_state_dict(trained))
            save_clip_lora(trained, Path(training_args.output_dir) / CLIP_ADAPTER_FOLDER)
    else:
        trainer.save_model(training_args.output_dir)
    trainer.save_state()  # trainer_state.json: the loss history reports read
    processor.save_pretrained(training_args.output_dir)
    return trainer


def _check_lora_base(args: ClipRecipeArguments) -> None:
    """A LoRA is reloaded onto the model it started from: refuse recipe choices that change that model's weights or
    objective (those need a run without LoRA first, whose output the LoRA then fine-tunes)."""
    if args.image_size is not None and Path(args.model).is_dir():
        if args.image_size != ClipConfig.from_pretrained(args.model).vision_config.image_size:
            raise ValueError("image_size resizes the base model's position embeddings, which a LoRA leaves out: "
                             "resize in a run without lora_rank (or resize_image_size and save), then add the LoRA.")
    if args.objective is not None and Path(args.model).is_dir():
        if args.objective != ClipConfig.from_pretrained(args.model).contrastive_objective:
            raise ValueError(f"objective: {args.objective} switches the saved model's objective, whose logit scale "
                             "and bias a LoRA run keeps frozen: switch it in a run without lora_rank first.")


def _with_recipe_choices(config: ClipConfig, args: ClipRecipeArguments) -> ClipConfig:
    """The config with the recipe's objective and patch dropout, where the recipe names them (re-validated)."""
    if args.objective is not None:
        config.contrastive_objective = args.objective
    if args.patch_dropout is not None:
        config.vision_config = type(config.vision_config)(**{**config.vision_config.to_dict(),
                                                             "patch_dropout": args.patch_dropout})
    return type(config).from_dict(config.to_dict())


def lock_tower(model: ClipModel, tower: str, unlocked_blocks: int = 0, unlock_norms: bool = False) -> None:
    """Freeze one tower and its projection (LiT), optionally leaving its last `unlocked_blocks` residual blocks
    and every layer after them (final norm, pooling, projection) and/or its norms to train, as open_clip's
    `lock_image_tower(unlocked_groups)` does.

    Locked BatchNorm layers stay in eval mode, so a locked ResNet keeps its running statistics too: a locked
    tower computes the same function throughout training.
    """
    modules = {"image": (model.vision_model, model.visual_projection), "text": (model.text_model, model.text_projection)}
    if tower not in modules:
        raise ValueError(f"tower must be 'image' or 'text', got {tower!r}.")
    root = nn.ModuleList(modules[tower])  # one ordered view of the tower and its projection
    blocks = [module for module in root.modules() if isinstance(module, (Block, Bottleneck))]
    if not 0 <= unlocked_blocks <= len(blocks):
        raise ValueError(f"lock_{tower}_unlocked_blocks={unlocked_blocks}, but the {tower} tower has {len(blocks)} "
                         f"residual blocks: pick 0 to {len(blocks)}.")
    parameters = list(root.named_parameters())
    trainable = set()
    if unlocked_blocks:
        trainable |= {id(p) for block in blocks[-unlocked_blocks:] for p in block.parameters()}
        last_block_parameter = max(i for i, (_, p) in enumerate(parameters)
                                   if any(p is q for q in blocks[-1].parameters()))
        trainable |= {id(p) for _, p in parameters[last_block_parameter + 1 :]}
    norms = [module for module in root.modules() if isinstance(module, (nn.LayerNorm, nn.BatchNorm2d))]
    if unlock_norms:
        trainable |= {id(p) for norm in norms for p in norm.parameters()}
    for _, parameter in parameters:
        parameter.requires_grad_(id(parameter) in trainable)
    hold_batch_norm_statistics(root)
