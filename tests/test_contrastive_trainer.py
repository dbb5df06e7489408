import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from clip_train_worker import shapes_dataset

from hf_limber import ClipConfig, ClipModel, ClipProcessor
from hf_limber.training import ContrastiveLoss, ContrastiveTrainer, ContrastiveTrainingArguments, ImageTextCollator, precision

WORKER = Path(__file__).with_name("clip_train_worker.py")


def trainer_for(tmp_path, preset="tiny-vit", clip_tokenizer=None, **overrides):
    config = ClipConfig.from_preset(preset)
    model = ClipModel(config)
    processor = ClipProcessor.for_config(config, clip_tokenizer)
    settings = dict(per_device_train_batch_size=8, max_steps=2, logging_steps=1, use_cpu=True, save_strategy="no")
    args = ContrastiveTrainingArguments(output_dir=str(tmp_path), **{**settings, **overrides})
    data = shapes_dataset(24)
    return ContrastiveTrainer(model=model, args=args, train_dataset=data, eval_dataset=data.select(range(8)),
                              data_collator=ImageTextCollator(processor))


@pytest.mark.parametrize("preset, betas, eps", [("tiny-vit", (0.9, 0.98), 1e-6), ("tiny-resnet", (0.9, 0.999), 1e-8)])
def test_optimizer_groups_follow_the_paper(tmp_path, clip_tokenizer, preset, betas, eps):
    trainer = trainer_for(tmp_path, preset, clip_tokenizer, text_adam_beta2=0.97)
    optimizer = trainer.create_optimizer()
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    seen = set()
    for group in optimizer.param_groups:
        group_names = [names[id(p)] for p in group["params"]]
        seen.update(group_names)
        vision = group_names[0].startswith(("vision_model", "visual_projection"))
        assert group["betas"] == (betas if vision else (0.9, 0.97))
        assert group["eps"] == eps
        for name, parameter in zip(group_names, group["params"]):
            excluded = parameter.ndim < 2 or "embedding" in name or name == "logit_scale"
            assert group["weight_decay"] == (0.0 if excluded else 0.2), name
    assert seen == set(names.values())
    assert any(n == "logit_scale" for n in seen) and any("class_embedding" in n or "bn" in n for n in seen)


@pytest.mark.parametrize("optim, fused", [("adamw_torch_fused", True), ("adamw_torch", False)])
def test_optimizer_honours_args_optim(tmp_path, clip_tokenizer, optim, fused):
    trainer = trainer_for(tmp_path, clip_tokenizer=clip_tokenizer, optim=optim, learning_rate=3e-4)
    optimizer = trainer.create_optimizer()
    assert isinstance(optimizer, torch.optim.AdamW) and bool(optimizer.defaults.get("fused")) == fused
    assert {group["lr"] for group in optimizer.param_groups} == {3e-4}
    assert {group["betas"] for group in optimizer.param_groups} == {(0.9, 0.98)}  # tiny-vit: the ViT recipe's


def test_training_logs_clamps_and_evaluates(tmp_path, clip_tokenizer):
    trainer = trainer_for(tmp_path, clip_tokenizer=clip_tokenizer)
    with torch.no_grad():
        trainer.model.logit_scale.fill_(6.0)  # exp(6) = 403 > 100
    trainer.train()
    assert trainer.model.logit_scale.item() <= math.log(100) + 1e-6
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert {"logit_scale_multiplier", "image_to_text_accuracy", "text_to_image_accuracy"} <= set(logged[0])
    assert logged[0]["logit_scale_multiplier"] == pytest.approx(100.0, rel=1e-4)
    metrics = trainer.evaluate()
    assert metrics["eval_loss"] > 0 and math.isfinite(metrics["eval_loss"])


def test_loss_and_trainer_share_one_default_mode(tmp_path):
    from hf_limber.training.loss import DEFAULT_MODE

    args = ContrastiveTrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    assert ContrastiveLoss().mode == args.loss_mode == DEFAULT_MODE


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("dropout, objective", [(0.0, "softmax"), (0.1, "softmax"), (0.1, "sigmoid")])
def test_contrastive_accumulation_equals_the_full_batch_gradient(tmp_path, clip_tokenizer, dropout, objective):
    config = ClipConfig.from_preset("tiny-vit", text_config={"hidden_size": 64, "num_hidden_layers": 2,
                                                             "max_position_embeddings": 32, "dropout": dropout,
                                                             "attention_dropout": dropout},
                                    vision_config={"tower": "vit", "image_size": 32, "patch_size": 8, "hidden_size": 64,
                                                   "num_hidden_layers": 2, "dropout": dropout},
                                    contrastive_objective=objective)
    processor = ClipProcessor.for_config(config, clip_tokenizer)
    batch = ImageTextCollator(processor)([shapes_dataset(12)[i] for i in range(12)])
    inputs = {k: v for k, v in batch.items() if k != "return_loss"}
    loss_fn = ContrastiveLoss("global", objective=objective)

    torch.manual_seed(0)
    reference = ClipModel(config).train()
    torch.manual_seed(123)
    if dropout == 0:
        out = reference(**inputs)
        images, texts = out.image_embeds, out.text_embeds
    else:
        # With dropout the objective is defined by each micro-batch's own masks: embed the three
        # micro-batches in one graph, in order, from the same random state.
        parts = [reference(**{k: v[i : i + 4] for k, v in inputs.items()}) for i in (0, 4, 8)]
        images, texts = torch.cat([p.image_embeds for p in parts]), torch.cat([p.text_embeds for p in parts])
    expected_loss = loss_fn(images, texts, reference.logit_scale_multiplier(), reference.logit_bias)
    expected_loss.backward()

    torch.manual_seed(0)
    model = ClipModel(config)
    args = ContrastiveTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=12, use_cpu=True,
                                        contrastive_accumulation_steps=3, loss_mode="global")
    trainer = ContrastiveTrainer(model=model, args=args, data_collator=ImageTextCollator(processor))
    torch.manual_seed(123)
    loss = trainer.training_step(model, dict(batch))
    assert loss.item() == pytest.approx(expected_loss.item(), rel=1e-6)
    expected, got = _grads(reference), _grads(model)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)
    # The temperature's gradient is counted once, not once per micro-batch.
    torch.testing.assert_close(got["logit_scale"], expected["logit_scale"], rtol=1e-5, atol=0)
    if objective == "sigmoid":
        torch.testing.assert_close(got["logit_bias"], expected["logit_bias"], rtol=1e-5, atol=0)


def test_contrastive_accumulation_leaves_batchnorm_statistics_counted_once(tmp_path, clip_tokenizer):
    config = ClipConfig.from_preset("tiny-resnet")
    processor = ClipProcessor.for_config(config, clip_tokenizer)
    batch = ImageTextCollator(processor)([shapes_dataset(8)[i] for i in range(8)])
    model = ClipModel(config)
    args = ContrastiveTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=8, use_cpu=True,
                                        contrastive_accumulation_steps=2)
    trainer = ContrastiveTrainer(model=model, args=args, data_collator=ImageTextCollator(processor))
    trainer.training_step(model, dict(batch))
    assert int(model.vision_model.bn1.num_batches_tracked) == 2  # two micro-batches, replayed once each


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args, timeout=600):
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return result


def test_resume_after_sigkill_ends_with_the_same_weights(tmp_path):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    assert _run([sys.executable, str(WORKER), str(straight), "--steps", "6"]).returncode == 0
    killed = _run([sys.executable, str(WORKER), str(crashed), "--steps", "6", "--kill-after", "4"])
    assert killed.returncode == -9 and (crashed / "checkpoint-4").is_dir() and not (crashed / "final.pt").exists()
    resumed = _run([sys.executable, str(WORKER), str(crashed), "--steps", "6", "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = torch.load(straight / "final.pt"), torch.load(crashed / "final.pt")
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_two_processes_log_the_losses_of_one(tmp_path, launcher):
    single = tmp_path / "single"
    assert _run([sys.executable, str(WORKER), str(single), "--steps", "3", "--batch", "8"]).returncode == 0
    port = str(_free_port())
    if launcher == "torchrun":
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}"]
    else:
        command = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu", "--num_processes", "2",
                   "--main_process_port", port]
    double = tmp_path / launcher
    result = _run(command + [str(WORKER), str(double), "--steps", "3", "--batch", "4"])
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = json.loads((single / "losses.json").read_text()), json.loads((double / "losses.json").read_text())
    assert len(one) == 3 and two == pytest.approx(one, rel=1e-5)


def test_bf16_autocast_and_gradient_checkpointing_train(tmp_path, clip_tokenizer, monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)  # as on an AVX2-only CPU
    trainer = trainer_for(tmp_path, "tiny-resnet", clip_tokenizer, bf16=True, gradient_checkpointing=True, max_steps=1)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    with caplog.at_level("WARNING", logger=precision.__name__):
        trainer.train()
    assert [r.message for r in caplog.records if "no native bfloat16" in r.message and "bf16: false" in r.message]
    assert all(getattr(m, "gradient_checkpointing", True) for m in trainer.model.modules()
               if hasattr(m, "_gradient_checkpointing_func"))
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert math.isfinite(logged[0]["loss"])
    moved = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert "vision_model.layer1.0.conv1.weight" in moved and "text_projection.weight" in moved


@pytest.mark.parametrize("bf16, native, warns", [(True, False, True), (True, True, False), (False, False, False)])
def test_bf16_warning_only_where_bf16_is_emulated(tmp_path, monkeypatch, bf16, native, warns):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    args = ContrastiveTrainingArguments(output_dir=str(tmp_path), bf16=bf16, use_cpu=True)
    assert (precision.slow_bf16_message(args) is not None) == warns


@pytest.mark.parametrize("choice, native, bf16", [("auto", True, True), ("auto", False, False), ("fp32", True, False),
                                                  ("bf16", False, True), (None, True, False)])
def test_precision_auto_follows_the_cpu(tmp_path, monkeypatch, choice, native, bf16):
    """precision: auto turns bf16 autocast on exactly where the CPU runs it natively; an explicit choice wins;
    unset leaves the bf16 field as given. The returned line (the recipes print it) says what and why."""
    from hf_limber.training.limber_recipe import LimberTrainingArguments

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    for kind in (ContrastiveTrainingArguments, LimberTrainingArguments):
        args = kind(output_dir=str(tmp_path), use_cpu=True, precision=choice)
        said = precision.choose_precision(args)
        assert args.bf16 == bf16
        assert said.startswith("bf16 autocast" if bf16 else "fp32") and ("natively" if native else "emulates") in said
    with pytest.raises(ValueError, match="precision: 'fp16' is not one of"):
        precision.choose_precision(ContrastiveTrainingArguments(output_dir=str(tmp_path), use_cpu=True, precision="fp16"))


def test_scale_augmentation_shrinks_and_places_pictures_reproducibly():
    from PIL import Image

    red = Image.new("RGB", (40, 40), (255, 0, 0))
    collator = ImageTextCollator(processor=None, scale_augment=(0.25, 0.5))
    torch.manual_seed(0)
    first = [collator._augment(red) for _ in range(20)]
    for picture in first:
        assert picture.size == (40, 40)
        red_pixels = sum(1 for pixel in picture.getdata() if pixel[0] > 200 and pixel[1] < 50)
        assert 10 * 10 * 0.8 <= red_pixels <= 20 * 20 * 1.2  # a side of 10 to 20 pixels, on white
    assert len({picture.tobytes() for picture in first}) > 5  # sizes and places vary
    torch.manual_seed(0)  # the Trainer's generator: a resumed run sees the same pictures
    assert [collator._augment(red).tobytes() for _ in range(20)] == [picture.tobytes() for picture in first]
    assert ImageTextCollator(processor=None)._augment(red) is red


def test_contrastive_accumulation_under_ddp_trains_as_one_process_with_the_full_batch(tmp_path):
    # 2 processes x 4 rows, each embedded in 2 micro-batches of 2, against 1 process embedding all 8 rows at once.
    # SGD: Adam's normalised steps would hide a temperature gradient of the right sign but the wrong size.
    single, cached = tmp_path / "single", tmp_path / "cached"
    sgd = ["--steps", "3", "--optim", "sgd"]
    assert _run([sys.executable, str(WORKER), str(single), "--batch", "8", *sgd]).returncode == 0
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}"]
    # Static DDP (find_unused_parameters=False): its own reduction could not take the temperature's gradient.
    result = _run(command + [str(WORKER), str(cached), "--batch", "4", "--contrastive-accumulation-steps", "2",
                             "--static-ddp", *sgd])
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = json.loads((single / "losses.json").read_text()), json.loads((cached / "losses.json").read_text())
    assert len(one) == 3 and two == pytest.approx(one, rel=1e-5)
    want, got = torch.load(single / "final.pt"), torch.load(cached / "final.pt")
    for name in want:  # the temperature's gradient counted once and averaged, like every other
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_patch_augmentation_draws_the_picture_on_a_coloured_square_keeping_its_inner_white():
    from PIL import Image, ImageDraw

    ring = Image.new("RGB", (64, 64), "white")  # a black ring on white: its inside is white but not background
    ImageDraw.Draw(ring).ellipse((8, 8, 55, 55), outline="black", width=6)
    collator = ImageTextCollator(processor=None, scale_augment=(1.0, 1.0), patch_augment=1.0)
    torch.manual_seed(0)
    colours = set()
    for _ in range(5):
        picture = collator._augment(ring)
        square = picture.getpixel((5, 32))  # inside the square's inset, outside the ring
        assert picture.getpixel((0, 0)) == (255, 255, 255)  # the inset and rounded corner stay white
        assert max(square) - min(square) > 50, square  # a saturated colour, not white or grey
        assert picture.getpixel((32, 32)) == (255, 255, 255)  # the ring's inside stays white
        assert max(picture.getpixel((32, 10))) < 60  # the ring itself is kept
        colours.add(square)
    assert len(colours) > 1
    with pytest.raises(ValueError, match="scale_augment"):
        ImageTextCollator(processor=None, patch_augment=0.5)
    with pytest.raises(ValueError, match="probability"):
        ImageTextCollator(processor=None, scale_augment=(0.5, 1.0), patch_augment=1.5)
