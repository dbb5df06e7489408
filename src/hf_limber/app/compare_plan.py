"""What `hf-limber compare-encoders` runs: its recipe's fields, the encoders' roles and the planned runs.

Both the runner (compare.py) and the results page (compare_report.py) read this, so the page does not
import the runner that writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENCODER_ROLES = {
    "clip": "CLIP image tower (language supervision)",
    "labels": "same tower trained on emoji class labels only (vision-only supervision)",
    "random": "same tower, random weights (no training)",
    "clip-ft": "the CLIP tower trained together with the projection (the paper's fine-tuned-encoder setting)",
}
# The paper's claims, as paired comparisons on the same scenes and seeds: (first, second, what it says).
CLAIMS = [
    ("clip", "labels", "language supervision transfers better than labels alone"),
    ("clip", "random", "a trained encoder transfers better than a random one"),
    ("labels", "random", "even vision-only supervision beats no training"),
    ("clip-ft", "clip", "training the encoder too helps (the paper's BEiT-FT)"),
]


@dataclass
class CompareArguments:
    clip: str = field(metadata={"help": "a CLIP trained here (its image tower is encoder (a) and the CLIPScore scorer)"})
    dataset: str = field(metadata={"help": "emoji scenes (`hf-limber data emoji-scenes`)"})
    language_model: str = field(metadata={"help": "the frozen causal LM folder (e.g. SmolLM2-135M-Instruct)"})
    label_dataset: str = field(metadata={"help": "emoji concepts (`hf-limber data emoji`) for the label-only tower"})
    limber_recipe: str = field(default="recipes/limber/emoji-smollm2.yaml", metadata={
        "help": "the LiMBeR training recipe every run uses (the comparison overrides encoder, steps, seed, k)"})
    label_column: str = "subcategory"
    label_epochs: float = 2.0
    label_batch_size: int = 128
    out: str = "runs/compare-encoders"
    docs: str = "docs/limber-comparison.md"
    limber_steps: int = 100
    batch_size: int = 8
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    fine_tune_encoder: bool = field(default=True, metadata={"help": "add the clip-ft run (encoder trained too)"})
    eval_examples: int = 60
    vqa_shots: list[int] = field(default_factory=lambda: [0, 1, 2, 4])
    pooled_k: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    token_pool: int = 2
    k_eval_examples: int = 40
    k_limber_steps: int | None = field(default=None, metadata={
        "help": "training steps of the k-study runs (default: limber_steps); when different, the study trains its "
        "own all-tokens baseline"})
    seed: int = 0  # of the label-only and random towers

    @property
    def k_steps(self) -> int:
        """Training steps of each k-study run."""
        return self.k_limber_steps or self.limber_steps

    @property
    def k_study_has_own_baseline(self) -> bool:
        """Whether the encoder study's CLIP run (trained for limber_steps) cannot serve as the k study's
        all-tokens point, so the study trains its own."""
        return self.k_steps != self.limber_steps


@dataclass(frozen=True)
class Run:
    setting: str  # what is compared: an encoder role, or a k-study setting
    encoder: str  # which tower: clip, labels, random
    steps: int  # training steps of the projection
    seed: int = 0
    features: str = "tokens"
    num_pooled_tokens: int = 1
    token_pool: int = 1
    study: str = "encoders"
    train_image_encoder: bool = False

    @property
    def name(self) -> str:
        return f"{self.setting}-seed{self.seed}"

    @property
    def cache_name(self) -> str:
        return f"{self.encoder}-{self.features}-pool{self.token_pool}"


def planned_runs(args: CompareArguments) -> list[Run]:
    roles = [role for role in ENCODER_ROLES if role != "clip-ft" or args.fine_tune_encoder]
    runs = []
    for seed in args.seeds:
        runs += [Run(role, role.removesuffix("-ft"), args.limber_steps, seed, train_image_encoder=role == "clip-ft")
                 for role in roles]
        steps = args.k_steps
        if args.k_study_has_own_baseline:
            runs.append(Run("clip-grid-all", "clip", steps, seed, study="k"))
        runs += [Run(f"clip-pooled-k{k}", "clip", steps, seed, features="pooled", num_pooled_tokens=k, study="k")
                 for k in args.pooled_k]
        runs.append(Run(f"clip-grid-pool{args.token_pool}", "clip", steps, seed, token_pool=args.token_pool, study="k"))
    return runs
