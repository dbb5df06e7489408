"""ContrastiveTrainer: the transformers Trainer with CLIP's loss, optimiser and temperature rules.

- The loss is `ContrastiveLoss` over the global batch (exact under DDP), in the chosen mode, with the
  objective the model's config names (`contrastive_objective`: CLIP's softmax or SigLIP's sigmoid).
- AdamW with decoupled weight decay on weight matrices only: gains, biases, embeddings and the
  temperature are not decayed (the paper); each tower gets its own Adam betas/epsilon.
- exp(logit_scale) is capped at `config.max_logit_scale_multiplier` by `ClipModel.clamp_logit_scale_`
  (the one place the cap is enforced), once before training and after every optimiser step.
- Contrastive accumulation (GradCache): a step may embed its batch in micro-batches yet compute the
  loss with every sample of the step as a negative; the Trainer's own gradient accumulation would
  give each micro-batch only its own negatives, a different objective. Exact alone and under DDP.

BatchNorm (ResNet towers) under contrastive accumulation: each micro-batch is normalised with its
own batch statistics, in the graph-free pass and again in the replay, so the gradient is that of
micro-batch BatchNorm (as under DDP without SyncBatchNorm), not of one full-batch BatchNorm. The
running statistics are restored after the graph-free pass, so each micro-batch updates them once.
ViT towers have no batch statistics and get exactly the full-batch gradient.

FSDP (`fsdp: true`, `fsdp_config: recipes/clip/fsdp.json`): accelerate wraps each residual block the model has
(from `_no_split_modules`, keeping the classes present). FSDP2's `fully_shard` refuses 0-dim parameters, and
`logit_scale` / `logit_bias` are 0-dim as in every CLIP and SigLIP checkpoint: under FSDP2 they train as
1-element vectors and are saved 0-dim again. accelerate runs FSDP only on accelerators: asked on CPU processes
it would silently run DDP, so the trainer refuses that.
"""

from __future__ import annotations

from contextlib import nullcontext
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.distributed.fsdp import FSDPModule
from transformers import Trainer, TrainerCallback, TrainingArguments

from .loss import DEFAULT_MODE, MODES, ContrastiveLoss
from .precision import PrecisionArguments, PrecisionCallback

# The public recipes' Adam settings by image tower (CLIP paper; open_clip's defaults).
TOWER_ADAM = {"resnet": (0.9, 0.999, 1e-8), "vit": (0.9, 0.98, 1e-6)}


@dataclass
class ContrastiveTrainingArguments(PrecisionArguments, TrainingArguments):
    loss_mode: str = field(default=DEFAULT_MODE, metadata={"help": f"one of {MODES}: all exact, they differ in memory"})
    loss_block_size: int = field(default=1024, metadata={"help": "columns per block in chunked mode"})
    contrastive_accumulation_steps: int = field(
        default=1, metadata={"help": "micro-batches per step, all sharing their negatives (GradCache)"})
    vision_adam_beta2: float | None = field(default=None, metadata={"help": "default: by tower (ResNet 0.999, ViT 0.98)"})
    vision_adam_epsilon: float | None = field(default=None, metadata={"help": "default: by tower (ResNet 1e-8, ViT 1e-6)"})
    text_adam_beta2: float | None = field(default=None, metadata={"help": "default: as the image tower (the paper)"})
    text_adam_epsilon: float | None = field(default=None, metadata={"help": "default: as the image tower (the paper)"})
    learning_rate: float = 5e-4
    weight_decay: float = 0.2
    lr_scheduler_type: str = "cosine"
    remove_unused_columns: bool = False
    report_to: str = "none"
    # Evaluation needs the loss only; keeping outputs would gather b x b logits and hidden states.
    prediction_loss_only: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss_mode not in MODES:
            raise ValueError(f"loss_mode must be one of {MODES}, got {self.loss_mode!r}.")
        if self.contrastive_accumulation_steps > 1 and self.gradient_accumulation_steps > 1:
            raise ValueError(
                "Use contrastive_accumulation_steps or gradient_accumulation_steps, not both: the Trainer's "
                "accumulation gives each micro-batch only its own negatives."
            )


def no_decay(name: str, parameter: nn.Parameter) -> bool:
    """Gains, biases, embeddings, the temperature and SigLIP's logit bias are not decayed (the CLIP paper)."""
    return parameter.ndim < 2 or "embedding" in name or "logit_scale" in name


class ClampLogitScale(TrainerCallback):
    """exp(logit_scale) never exceeds the cap (100 in the paper) in a training forward: the parameter is
    clamped before the first step (a loaded or hand-set value may lie above it) and after every optimiser step."""

    def on_train_begin(self, args: TrainingArguments, state: Any, control: Any, model: nn.Module = None,
                       **kwargs: Any) -> None:
        model.clamp_logit_scale_()

    def on_optimizer_step(self, args: TrainingArguments, state: Any, control: Any, model: nn.Module = None,
                          **kwargs: Any) -> None:
        model.clamp_logit_scale_()


class ContrastiveTrainer(Trainer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model = self.accelerator.unwrap_model(self.model)
        if not hasattr(getattr(model.config, "vision_config", None), "tower"):
            raise TypeError(f"ContrastiveTrainer trains hf_limber's ClipModel, got {type(model).__name__}; "
                            "convert other CLIPs with hf_limber.clip.convert first.")
        self.contrastive_loss = ContrastiveLoss(self.args.loss_mode, self.args.loss_block_size,
                                                objective=getattr(model.config, "contrastive_objective", "softmax"))
        # Our loss is a per-step mean, never normalised by num_items_in_batch.
        self.loss_is_scaled_for_ga = False
        self._scalar_parameters = self._prepare_for_fsdp(model)
        self.add_callback(ClampLogitScale())
        self.add_callback(PrecisionCallback())
        self._running: dict[str, list[float]] = defaultdict(list)

    def _prepare_for_fsdp(self, model: nn.Module) -> set[str]:
        """Under FSDP2, reshape the 0-dim parameters to (1,) (fully_shard refuses scalars); their names."""
        if self.args.fsdp and not self.is_fsdp_enabled:
            raise ValueError(
                "fsdp is set, but accelerate runs FSDP only on GPUs and other accelerators: on CPU processes it would "
                "silently train with DDP instead. Drop fsdp (and fsdp_config) for CPU runs; DDP is what runs there."
            )
        if not self.is_fsdp_enabled or getattr(self.accelerator.state.fsdp_plugin, "fsdp_version", 1) != 2:
            return set()
        scalars = {name for name, parameter in model.named_parameters() if parameter.ndim == 0}
        for name in scalars:
            parameter = model.get_parameter(name)
            parameter.data = parameter.data.reshape(1)
        return scalars

    def _save(self, output_dir: str | None = None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        if state_dict is None or not self._scalar_parameters:
            return super()._save(output_dir, state_dict)
        # FSDP2 hands over the gathered weights: the scalars get their checkpoint shape back, and a plain model
        # (on the meta device, no memory) writes them, so that config.json's auto_map and the copied code name
        # our class rather than the FSDPClipModel that fully_shard made of it.
        state_dict = {name: value.reshape(()) if name in self._scalar_parameters else value
                      for name, value in state_dict.items()}
        sharded = self.accelerator.unwrap_model(self.model)
        plain_class = next(cls for cls in type(sharded).__mro__ if not issubclass(cls, FSDPModule))
        with torch.device("meta"):
            plain = plain_class(sharded.config)
        self.model, sharded = plain, self.model
        try:
            super()._save(output_dir, state_dict)
        finally:
            self.model = sharded

    # -- optimisation ------------------------------------------------------------------------------

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is not None:
            return self.optimizer
        model = self.accelerator.unwrap_model(model or self.model)
        _, beta2, eps = TOWER_ADAM[model.config.vision_config.tower]
        beta1 = self.args.adam_beta1
        towers = {
            "vision": (self.args.vision_adam_beta2 or beta2, self.args.vision_adam_epsilon or eps),
            "text": (self.args.text_adam_beta2 or beta2, self.args.text_adam_epsilon or eps),
        }
        groups: dict[tuple[str, bool], list[nn.Parameter]] = defaultdict(list)
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                tower = "vision" if name.startswith(("vision_model.", "visual_projection.")) else "text"
                groups[(tower, no_decay(name, parameter))].append(parameter)
        # The optimiser class and its defaults come from `args.optim` as for any Trainer (transformers'
        # default, adamw_torch_fused, runs a ViT-B/32 AdamW step 4.4-4.6x faster on CPU than the for-loop one:
        # bench/RESULTS.md); the groups add the paper's per-tower betas/eps and decay rules.
        optimizer_cls, defaults = Trainer.get_optimizer_cls_and_kwargs(self.args, model)
        self.optimizer = optimizer_cls(
            [
                {"params": params, "weight_decay": 0.0 if skip_decay else self.args.weight_decay,
                 "betas": (beta1, towers[tower][0]), "eps": towers[tower][1]}
                for (tower, skip_decay), params in groups.items()
            ],
            **defaults,
        )
        return self.optimizer

    # -- loss ------------------------------------------------------------------------------------

    def _embed(self, model: nn.Module, inputs: dict[str, Any]) -> Any:
        inputs = {k: v for k, v in inputs.items() if k != "return_loss"}
        return model(**inputs)

    def compute_loss(self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> torch.Tensor | tuple[torch.Tensor, Any]:
        outputs = self._embed(model, inputs)
        loss = self.contrastive_loss(outputs.image_embeds, outputs.text_embeds, outputs.logit_scale_multiplier,
                                     outputs.logit_bias)
        if model.training:
            self._track(outputs.image_embeds, outputs.text_embeds, outputs.logit_scale_multiplier, outputs.logit_bias)
        return (loss, outputs) if return_outputs else loss

    @torch.no_grad()
    def _track(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale_multiplier: torch.Tensor,
               logit_bias: torch.Tensor | None) -> None:
        # In-batch retrieval on this process's rows: a cheap, always-available progress signal.
        similarity = image_embeds.float() @ text_embeds.float().t()
        targets = torch.arange(similarity.shape[0], device=similarity.device)
        self._running["logit_scale_multiplier"].append(float(logit_scale_multiplier))
        if logit_bias is not None:
            self._running["logit_bias"].append(float(logit_bias))
        self._running["image_to_text_accuracy"].append(float((similarity.argmax(1) == targets).float().mean()))
        self._running["text_to_image_accuracy"].append(float((similarity.argmax(0) == targets).float().mean()))

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if "loss" in logs and self._running:
            logs.update({k: sum(v) / len(v) for k, v in self._running.items()})
            self._running.clear()
        super().log(logs, *args, **kwargs)

    # -- contrastive accumulation ----------------------------------------------------------------

    def training_step(self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        steps = self.args.contrastive_accumulation_steps
        if steps == 1:
            return super().training_step(model, inputs, num_items_in_batch)
        if self.is_fsdp_enabled or self.is_deepspeed_enabled:
            raise NotImplementedError(
                "contrastive_accumulation_steps > 1 runs alone or under DDP: FSDP and DeepSpeed shard the parameters "
                "the replay re-gathers per micro-batch. Use loss_mode='chunked' to bound the loss's memory instead."
            )
        model.train()
        inputs = self._prepare_inputs(inputs)
        return self._cached_step(model, inputs, steps)

    def _cached_step(self, model: nn.Module, inputs: dict[str, Any], steps: int) -> torch.Tensor:
        """GradCache: (1) embed each micro-batch without a graph, remembering its random state;
        (2) compute the full-step loss on the embeddings and back-propagate it to them (the
        temperature gets its gradient here, once); (3) re-run each micro-batch with its random
        state restored and back-propagate the cached embedding gradients through the encoders.

        Under DDP the loss gathers every process's cached embeddings (so each process's cache gradient holds
        what every process's loss puts on its rows, as in an ordinary step), the replays run without DDP's
        synchronisation, and one all-reduce then averages every gradient, the temperature's included. DDP's own
        reduction cannot be relied on for the temperature: its gradient comes from the loss outside any DDP
        backward, which static DDP (find_unused_parameters=False) never reduces."""
        inputs = {k: v for k, v in inputs.items() if k != "return_loss"}
        rows = next(iter(inputs.values())).shape[0]
        bounds = [round(i * rows / steps) for i in range(steps + 1)]
        chunks = [{k: v[a:b] for k, v in inputs.items()} for a, b in zip(bounds, bounds[1:]) if b > a]
        unwrapped = self.accelerator.unwrap_model(model)
        norm_buffers = {n: b.clone() for n, b in unwrapped.named_buffers() if "running_" in n or "num_batches" in n}

        states, images, texts = [], [], []
        with torch.no_grad():
            for chunk in chunks:
                states.append(_RandomState.capture())
                with self.compute_loss_context_manager():
                    out = model(**chunk)
                images.append(out.image_embeds)
                texts.append(out.text_embeds)
        # The replay below updates BatchNorm statistics; the graph-free pass must not count twice.
        with torch.no_grad():
            for name, buffer in unwrapped.named_buffers():
                if name in norm_buffers:
                    buffer.copy_(norm_buffers[name])

        image_cache = torch.cat(images).detach().requires_grad_()
        text_cache = torch.cat(texts).detach().requires_grad_()
        with self.compute_loss_context_manager():
            loss = self.contrastive_loss(image_cache, text_cache, unwrapped.logit_scale_multiplier(), unwrapped.logit_bias)
        self.accelerator.backward(loss)
        self._track(image_cache.detach(), text_cache.detach(), unwrapped.logit_scale_multiplier().detach(),
                    unwrapped.logit_bias)

        offset = 0
        for index, (chunk, state) in enumerate(zip(chunks, states)):
            size = next(iter(chunk.values())).shape[0]
            state.restore()
            sync = index == len(chunks) - 1 and self.args.world_size == 1
            with self.accelerator.no_sync(model) if not sync else nullcontext(), self.compute_loss_context_manager():
                out = model(**chunk)
                surrogate = (out.image_embeds * image_cache.grad[offset : offset + size]).sum() + (
                    out.text_embeds * text_cache.grad[offset : offset + size]).sum()
            # Plain backward: the cached gradients already carry any fp16 loss scale.
            surrogate.backward()
            offset += size
        if self.args.world_size > 1:
            _average_gradients(unwrapped)
        return loss.detach()


def _average_gradients(model: nn.Module) -> None:
    """All-reduce the mean of every trainable parameter's gradient in one flat buffer (as DDP's reduction does)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    for parameter in parameters:
        if parameter.grad is None:  # every process must contribute the same buffer layout
            parameter.grad = torch.zeros_like(parameter)
    flat = torch.cat([p.grad.reshape(-1) for p in parameters])
    torch.distributed.all_reduce(flat)
    flat /= torch.distributed.get_world_size()
    for parameter, grad in zip(parameters, flat.split([p.numel() for p in parameters])):
        parameter.grad.copy_(grad.view_as(parameter.grad))


@dataclass
class _RandomState:
    cpu: torch.Tensor
    cuda: list[torch.Tensor]

    @classmethod
    def capture(cls) -> "_RandomState":
        return cls(torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda:
            torch.cuda.set_rng_state_all(self.cuda)
