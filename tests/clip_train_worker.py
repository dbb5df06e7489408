"""Train a tiny CLIP on coloured shapes with ContrastiveTrainer; run alone, under torchrun or accelerate.

Writes the losses it logged (rank 0) and, at the end, the final weights to OUT (`final.pt`; with `--fsdp` the
Trainer's saved model folder `OUT/final`, gathered from the shards).
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


def let_accelerate_shard_on_cpu() -> None:
    """accelerate turns FSDP on only for accelerator devices: on CPU processes (MULTI_CPU) it drops the plugin and
    runs DDP without a word. torch's FSDP2 itself shards on CPU over gloo, so the test takes accelerate's FSDP path
    by hand: the state it builds keeps the plugin."""
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedType

    original = AcceleratorState.__init__

    def init(self, *args, fsdp_plugin=None, **kwargs):
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        # Later constructions (without the plugin) copy the process state's MULTI_CPU back in: keep FSDP.
        plugin = fsdp_plugin or getattr(self, "fsdp_plugin", None)
        if plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type, self.fsdp_plugin = DistributedType.FSDP, plugin

    AcceleratorState.__init__ = init


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--batch", type=int, default=8, help="per-device batch")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--kill-after", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--loss-mode", default="local")
    parser.add_argument("--fsdp", action="store_true", help="shard with FSDP as recipes/clip/fsdp.json configures it")
    parser.add_argument("--fsdp-as-accelerate-does", action="store_true",
                        help="with --fsdp: leave accelerate as it is (it would run DDP on CPU processes)")
    parser.add_argument("--preset", default="tiny-vit")
    parser.add_argument("--contrastive-accumulation-steps", type=int, default=1)
    parser.add_argument("--optim", default="adamw_torch_fused", help="sgd: updates proportional to the gradients")
    parser.add_argument("--static-ddp", action="store_true", help="DDP with find_unused_parameters=False")
    args = parser.parse_args()

    if args.fsdp and not args.fsdp_as_accelerate_does:
        let_accelerate_shard_on_cpu()
    set_seed(0)
    config = hf_limber.ClipConfig.from_preset(args.preset)
    model = hf_limber.ClipModel(config)
    processor = hf_limber.ClipProcessor.for_config(config, clip_tokenizer_from_bpe(default_bpe_path(), 32))
    training_args = ContrastiveTrainingArguments(
        output_dir=str(args.out), per_device_train_batch_size=args.batch, max_steps=args.steps,
        learning_rate=1e-3, warmup_steps=1, logging_steps=1, save_steps=2, save_strategy="steps",
        loss_mode=args.loss_mode, train_sampling_strategy="sequential", seed=0, use_cpu=True,
        contrastive_accumulation_steps=args.contrastive_accumulation_steps, optim=args.optim,
        **({"ddp_find_unused_parameters": False} if args.static_ddp else {}),
        dataloader_num_workers=0, ddp_backend="gloo" if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        **({"fsdp": True, "fsdp_config": str(Path(__file__).parents[1] / "recipes/clip/fsdp.json")} if args.fsdp else {}),
    )
    callbacks = [KillAfterSave(args.kill_after)] if args.kill_after else []
    trainer = ContrastiveTrainer(model=model, args=training_args, train_dataset=shapes_dataset(),
                                 data_collator=ImageTextCollator(processor), callbacks=callbacks)
    trainer.train(resume_from_checkpoint=True if args.resume else None)
    if args.fsdp:
        trainer.save_model(str(args.out / "final"))  # every rank takes part in gathering the shards
        if trainer.is_world_process_zero():
            losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
            (args.out / "losses.json").write_text(json.dumps(losses))
        return
    if trainer.is_world_process_zero():
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        (args.out / "losses.json").write_text(json.dumps(losses))
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, args.out / "final.pt")


if __name__ == "__main__":
    main()
