"""`hf-limber train-clip RECIPE`: a CLIP from a preset (or a saved model), trained with ContrastiveTrainer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoTokenizer, set_seed

from ..clip.configuration_clip import ClipConfig
from ..clip.modeling_clip import ClipModel
from ..clip.processing_clip import ClipProcessor
from ..clip.tokenization import clip_tokenizer_from_bpe, default_bpe_path, train_clip_tokenizer
from ..data.streaming import SkippedSamplesCallback, load_image_text_pairs
from .collators import ImageTextCollator
from .contrastive_trainer import ContrastiveTrainer, ContrastiveTrainingArguments
from .output_dir import resume_point


@dataclass
class ClipRecipeArguments:
    dataset: str = field(metadata={"help": "datasets folder, imagefolder, webdataset shards (path/glob) or Hub id"})
    model: str = field(default="small-vit", metadata={"help": "a preset name (hf_limber.list_presets()) or a saved folder"})
    train_split: str = "train"
    eval_split: str | None = "validation"
    image_column: str | None = None
    text_column: str | None = None
    streaming: bool = field(default=False, metadata={"help": "stream the data (needs max_steps)"})
    tokenizer: str = field(default="train", metadata={
        "help": "'train': a new BPE on the training captions; 'clip': the released CLIP vocabulary; or a folder"})
    vocab_size: int = 8192
    scale_augment: list[float] | None = field(default=None, metadata={
        "help": "two numbers (smallest, largest): shrink each training picture by a random share in that range "
        "and paste it at a random place on white, so the tower learns objects at the sizes scenes show them"})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "train over an earlier run in output_dir (else: resume it with resume_from_checkpoint, or refuse)"})


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
    if args.eval_split is None:
        training_args.eval_strategy = "no"  # eval_split: null turns evaluation off
    set_seed(training_args.seed)
    # rank 0 of 1: the Trainer's accelerate data loader splits the stream across processes itself.
    pairs = {split: load_image_text_pairs(args.dataset, split, streaming=args.streaming, image_column=args.image_column,
                                          text_column=args.text_column, rank=0, world_size=1)
             for split in (args.train_split, args.eval_split) if split}
    if Path(args.model).is_dir():
        model = ClipModel.from_pretrained(args.model)
        processor = ClipProcessor.from_pretrained(args.model)
    else:
        config = ClipConfig.from_preset(args.model)
        captions = [row["text"] for row in pairs[args.train_split].select_columns(["text"])]
        tokenizer = _tokenizer(args, captions, config.text_config.max_position_embeddings)
        text_ids = {"vocab_size": len(tokenizer), "eos_token_id": tokenizer.eos_token_id,
                    "bos_token_id": tokenizer.bos_token_id, "pad_token_id": tokenizer.pad_token_id}
        config = ClipConfig.from_preset(args.model, text_config={**config.text_config.to_dict(), **text_ids})
        model = ClipModel(config)
        processor = ClipProcessor.for_config(config, tokenizer)
    trainer = ContrastiveTrainer(
        model=model, args=training_args, processing_class=processor,
        train_dataset=pairs[args.train_split], eval_dataset=pairs.get(args.eval_split),
        data_collator=ImageTextCollator(processor, image_column="image", text_column="text",
                                        scale_augment=tuple(args.scale_augment) if args.scale_augment else None),
        callbacks=[SkippedSamplesCallback(pairs[args.train_split].skip_counter)],
    )
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(training_args.output_dir)
    trainer.save_state()  # trainer_state.json: the loss history reports read
    processor.save_pretrained(training_args.output_dir)
    return trainer
