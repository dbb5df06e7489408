"""FSDP with ContrastiveTrainer and recipes/clip/fsdp.json: the wrap classes come from the model, 2 CPU
processes (gloo, FSDP2) reach the losses of 1 process at the same global batch, and the saved model reloads."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

from hf_limber import ClipConfig, ClipModel
from hf_limber.training import ContrastiveTrainer, ContrastiveTrainingArguments

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("clip_train_worker.py")
FSDP_CONFIG = ROOT / "recipes" / "clip" / "fsdp.json"


def _wrapped_classes(model, fsdp_config: dict) -> set[str]:
    plugin_args = ContrastiveTrainingArguments(output_dir="unused", use_cpu=True, fsdp=True,
                                               fsdp_config=fsdp_config).fsdp_plugin_args
    policy = fsdp2_prepare_auto_wrap_policy(FullyShardedDataParallelPlugin(**plugin_args), model)
    return {type(module).__name__ for module in model.modules() if policy(module)}


@pytest.mark.parametrize("preset, wrapped", [("tiny-vit", {"Block"}), ("tiny-resnet", {"Block", "Bottleneck"})])
def test_the_recipe_wraps_the_residual_blocks_the_model_has(preset, wrapped):
    model = ClipModel(ClipConfig.from_preset(preset))
    assert _wrapped_classes(model, json.loads(FSDP_CONFIG.read_text())) == wrapped
    # The file used to list both classes, and accelerate refuses a listed class the model lacks.
    if preset == "tiny-vit":
        with pytest.raises(ValueError, match="Could not find the transformer layer class Bottleneck"):
            _wrapped_classes(model, {"transformer_layer_cls_to_wrap": ["Block", "Bottleneck"]})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_fsdp_processes_reach_the_losses_of_one_and_the_model_reloads(tmp_path):
    single, sharded = tmp_path / "single", tmp_path / "fsdp"
    done = subprocess.run([sys.executable, str(WORKER), str(single), "--steps", "3", "--batch", "8"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
               str(WORKER), str(sharded), "--steps", "3", "--batch", "4", "--fsdp"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = json.loads((single / "losses.json").read_text()), json.loads((sharded / "losses.json").read_text())
    assert len(one) == 3 and two == pytest.approx(one, rel=1e-5)

    reloaded = ClipModel.from_pretrained(sharded / "final")
    assert reloaded.logit_scale.shape == ()  # sharded as a 1-element vector, saved in the checkpoint's shape
    assert json.loads((sharded / "final" / "config.json").read_text())["auto_map"]["AutoModel"] == "modeling_clip.ClipModel"
    want = torch.load(single / "final.pt")
    for name, tensor in reloaded.state_dict().items():
        torch.testing.assert_close(tensor, want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_fsdp_on_cpu_processes_is_refused_rather_than_silently_run_as_ddp(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
               str(WORKER), str(tmp_path), "--steps", "1", "--batch", "4", "--fsdp", "--fsdp-as-accelerate-does"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "accelerate runs FSDP only on GPUs" in done.stdout + done.stderr
