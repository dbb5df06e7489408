"""Every recipe in recipes/ parses into its dataclasses: typos and stale fields fail here, not in a run."""

from pathlib import Path

import pytest

from hf_limber.app.compare_plan import CompareArguments, planned_runs
from hf_limber.recipes import parse_recipe
from hf_limber.training.clip_recipe import ClipRecipeArguments
from hf_limber.training.contrastive_trainer import ContrastiveTrainingArguments
from hf_limber.training.limber_recipe import LimberArguments, LimberTrainingArguments

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
KINDS = {"clip": (ClipRecipeArguments, ContrastiveTrainingArguments),
         "limber": (LimberArguments, LimberTrainingArguments)}


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_parses(path, tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    if path.name == "compare-encoders.yaml":  # a study of several runs, not one training
        (study,) = parse_recipe(path, (CompareArguments,))
        runs = planned_runs(study)
        assert [run.setting for run in runs[:4]] == ["clip", "labels", "random", "clip-ft"]
        assert {run.seed for run in runs} == set(study.seeds) and len(study.seeds) >= 3
        assert [f"clip-pooled-k{k}" for k in (1, 2, 4, 8, 16)] == [r.setting for r in runs if "pooled" in r.name
                                                                    and r.seed == study.seeds[0]]
        assert Path(study.limber_recipe).is_file() or (RECIPES.parent / study.limber_recipe).is_file()
        return
    # bf16 needs a GPU or use_cpu; parsing on a CPU machine checks everything else.
    recipe, training = parse_recipe(path, KINDS[path.parent.name], ["--output_dir", str(tmp_path), "--bf16", "false"])
    assert training.output_dir == str(tmp_path)
    if path.parent.name == "clip":
        assert training.loss_mode in ("global", "local", "chunked")
        assert training.weight_decay == 0.2
    else:
        # The paper's optimiser; the CPU recipe starts the map by least squares and steps it gently, since an Adam
        # step on dense layer-normalised features at the paper's rate outweighs that start (issue 16).
        paper_lr = 8e-4 if path.name.startswith("paper") else 3e-5
        assert (training.learning_rate, training.adam_beta2, training.max_grad_norm) == (paper_lr, 0.95, 1.0)
