"""Train a tiny CLIP on coloured shapes with ContrastiveTrainer; run alone, under torchrun or accelerate.

Writes the losses it logged (rank 0) and, at the end, the final weights to OUT.
"""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import torch
from datasets import Dataset
from PIL import Image
from transformers import TrainerCallback, set_seed

sys.path.insert(0, str(Path(__file__).parent))
import hf_limber  # noqa: E402
from hf_limber.clip.tokenization import clip_tokenizer_from_bpe, default_bpe_path  # noqa: E402
from hf_limber.training import ContrastiveTrainer, ContrastiveTrainingArguments, ImageTextCollator  # noqa: E402

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (220, 220, 30)}
SHAPES = ["square", "bar", "dot", "frame"]


def shapes_dataset(n: int = 48) -> Dataset:
    rows = []
    for i in range(n):
        colour, shape = list(COLOURS)[i % 4], SHAPES[(i // 4) % 4]
        image = Image.new("RGB", (40, 40), (255, 255, 255))
        box = {"square": (5, 5, 35, 35), "bar": (15, 2, 25, 38), "dot": (15, 15, 25, 25), "frame": (0, 0, 40, 6)}[shape]
        image.paste(COLOURS[colour], box)
        rows.append({"image": image, "caption": f"a {colour} {shape}"})
    return Dataset.from_list(rows)


class KillAfterSave(TrainerCallback):
    """Simulate a crash: SIGKILL right after the checkpoint of step `step` is written."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--batch", type=int, default=8, help="per-device batch")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--kill-after", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--loss-mode", default="local")
    args = parser.parse_args()

    set_seed(0)
    config = hf_limber.ClipConfig.from_preset("tiny-vit")
    model = hf_limber.ClipModel(config)
    processor = hf_limber.ClipProcessor.for_config(config, clip_tokenizer_from_bpe(default_bpe_path(), 32))
    training_args = ContrastiveTrainingArguments(
        output_dir=str(args.out), per_device_train_batch_size=args.batch, max_steps=args.steps,
        learning_rate=1e-3, warmup_steps=1, logging_steps=1, save_steps=2, save_strategy="steps",
        loss_mode=args.loss_mode, train_sampling_strategy="sequential", seed=0, use_cpu=True,
        dataloader_num_workers=0, ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
    )
    callbacks = [KillAfterSave(args.kill_after)] if args.kill_after else []
    trainer = ContrastiveTrainer(model=model, args=training_args, train_dataset=shapes_dataset(),
                                 data_collator=ImageTextCollator(processor), callbacks=callbacks)
    trainer.train(resume_from_checkpoint=True if args.resume else None)
    if trainer.is_world_process_zero():
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        (args.out / "losses.json").write_text(json.dumps(losses))
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, args.out / "final.pt")


if __name__ == "__main__":
    main()
