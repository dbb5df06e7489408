"""Sharing on the Hub, over real HTTP: push with hf_limber, pull with transformers alone.

A loopback server (hub_server.py) speaks the Hub API. One subprocess, with hf_limber, pushes a tiny
CLIP (push_folder with a model card, and transformers' push_to_hub), a tiny LM, LiMBeR built from
those two Hub repos (push_to_hub in the adapter and the full form, and a saved folder through
`hf-limber push`) and an emoji-like dataset. A second subprocess, where `import hf_limber` fails,
loads everything back with the Auto classes and `trust_remote_code=True`, runs the model cards'
usage snippets and loads the dataset; the outputs must equal the originals.

The Hub work runs in subprocesses because huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when
it is imported, and this suite runs offline.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hub_server import LoopbackHub

TESTS = Path(__file__).parent
CLIP_REPO = "test-user/tiny-clip"
CLIP_MIXIN_REPO = "test-user/tiny-clip-mixin"
LM_REPO = "test-user/tiny-llama"
ADAPTER_REPO = "test-user/tiny-limber-adapter"
FULL_REPO = "test-user/tiny-limber-full"
CLI_REPO = "test-user/tiny-limber-cli"
DATASET_REPO = "test-user/tiny-emoji"
# Files a careless user leaves beside a model: none may reach the Hub.
PRIVATE_FILES = [".env", "id_rsa", "pytorch_model.bin", "notes.txt", "logs/train.log"]
CLIP_TEXTS = ["a picture of a red square", "a picture of a cat", "an emoji"]
LIMBER_TEXTS = ["A picture of", "Q: what color is it? A:"]
RESULTS = [
    {"task": "zero-shot-image-classification", "dataset": DATASET_REPO, "dataset_name": "Tiny emoji",
     "split": "test_openmoji", "metric": "accuracy", "metric_name": "top-1 accuracy", "value": 0.25},
    {"task": "zero-shot-image-classification", "dataset": DATASET_REPO, "split": "validation",
     "metric": "accuracy", "value": 0.5},
]


def hub_env(hub_url: str, home: Path) -> dict[str, str]:
    """The environment of a process that talks to the loopback Hub, with a fresh cache."""
    # Caches follow HF_HOME only when no variable names them elsewhere.
    caches = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_MODULES_CACHE", "HF_DATASETS_CACHE")
    env = {key: value for key, value in os.environ.items() if key not in caches}
    env.update(
        HF_ENDPOINT=hub_url, HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0", TRANSFORMERS_OFFLINE="0",
        HF_HUB_DISABLE_XET="1", HF_TOKEN="hf_loopback_token", HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1", TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),  # both sides compute with the same threads
    )
    return env


def run_step(step: str, work: Path, env: dict[str, str], hide_hf_limber: bool) -> None:
    hide = 'sys.modules["hf_limber"] = None; ' if hide_hf_limber else ""
    script = (f"import sys; {hide}sys.path.insert(0, {str(TESTS)!r}); "
              f"import test_hub; test_hub.{step}(__import__('pathlib').Path({str(work)!r}))")
    result = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{step} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def run_snippet(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<model card>", "exec"), {"__name__": "__card__"})
    return out.getvalue()


def draw_image(work: Path):
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (48, 40), (0, 0, 0, 0))  # transparent, as emoji artwork is
    ImageDraw.Draw(image).rectangle((8, 6, 36, 30), fill=(220, 30, 30, 255))
    image.save(work / "image.png")
    return image


# -- the two sides (run in subprocesses) -----------------------------------------------------------

def push_step(work: Path) -> None:
    """With hf_limber: build tiny models and a dataset, push them, and keep the reference outputs."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_dataset
    from datasets import Image as ImageFeature
    from huggingface_hub import DatasetCard, ModelCard
    from limber_parts import image_encoder, language_model, word_tokenizer
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    from hf_limber import ClipProcessor, LimberForCausalLM, LimberProcessor
    from hf_limber.cli import main as cli
    from hf_limber.clip.tokenization import clip_tokenizer_from_bpe, default_bpe_path
    from hf_limber.hub import push_folder, write_model_card

    image = draw_image(work)
    outputs: dict[str, torch.Tensor] = {}

    clip = image_encoder("clip-vit").eval()
    clip_processor = ClipProcessor.for_config(clip.config, clip_tokenizer_from_bpe(default_bpe_path(), context_length=32))
    clip.save_pretrained(work / "clip")
    clip_processor.save_pretrained(work / "clip")
    recipe = work / "recipe.yaml"
    recipe.write_text("model_preset: tiny-vit\nlearning_rate: 5.0e-4\nmax_steps: 10\n")
    draw_image(work).save(work / "clip" / "zero_shot.png")
    write_model_card(work / "clip", repo_id=CLIP_REPO, results=RESULTS, datasets=[DATASET_REPO],
                     training={"recipe": recipe, "data": "tiny emoji set", "train_time": 75.0,
                               "styles": ["twemoji", "openmoji"], "batch_size": 8},
                     plots=["zero_shot.png"])
    push_folder(work / "clip", CLIP_REPO)
    clip.push_to_hub(CLIP_MIXIN_REPO)
    clip_processor.push_to_hub(CLIP_MIXIN_REPO)
    batch = clip_processor(text=CLIP_TEXTS, images=[image])
    with torch.no_grad():
        outputs["clip/logits"] = clip(**batch).logits_per_image
    outputs["clip/input_ids"], outputs["clip/pixel_values"] = batch["input_ids"], batch["pixel_values"]

    language_model("llama").save_pretrained(work / "llama")
    word_tokenizer().save_pretrained(work / "llama")
    push_folder(work / "llama", LM_REPO)

    # LiMBeR joined from the two Hub repos: its adapter form names them as its sources.
    limber = LimberForCausalLM.from_parts(CLIP_REPO, LM_REPO)
    torch.manual_seed(1)
    torch.nn.init.normal_(limber.projection.weight, std=0.5)
    processor = LimberProcessor.for_model(limber, AutoTokenizer.from_pretrained(LM_REPO))
    limber.push_to_hub(ADAPTER_REPO)
    processor.push_to_hub(ADAPTER_REPO)
    limber.push_to_hub(FULL_REPO, full=True)
    processor.push_to_hub(FULL_REPO)
    limber.save_pretrained(work / "limber", full=True)
    processor.save_pretrained(work / "limber")
    (work / "limber" / "checkpoint-5").mkdir()  # Trainer leftovers that must stay local
    (work / "limber" / "checkpoint-5" / "model.safetensors").write_bytes(b"stale")
    (work / "limber" / "training_args.bin").write_bytes(b"pickle")
    for private in PRIVATE_FILES:  # what a careless user leaves beside a model
        (work / "limber" / private).parent.mkdir(parents=True, exist_ok=True)
        (work / "limber" / private).write_text("secret")
    assert cli(["push", str(work / "limber"), CLI_REPO]) == 0  # writes the model card as it goes
    batch = processor(images=[image, image], text=LIMBER_TEXTS)
    with torch.no_grad():
        outputs["limber/logits"] = limber(**batch).logits
        outputs["limber/tokens"] = limber.generate(**batch, max_new_tokens=6, do_sample=False)
    outputs["limber/input_ids"] = batch["input_ids"]
    save_file({name: value.contiguous() for name, value in outputs.items()}, work / "pushed.safetensors")

    # With hf_limber, the LiMBeR card's second snippet (hf_limber's own classes) runs as written.
    (work / "limber_snippet.txt").write_text(run_snippet(python_blocks(ModelCard.load(CLI_REPO).text)[1]))

    features = Features({"image": ImageFeature(), "caption": Value("string"), "style": Value("string"),
                         "category": ClassLabel(names=["smileys", "animals", "objects"])})
    rows = {split: {"image": [draw_image(work).rotate(90 * i) for i in range(n)],
                    "caption": [f"{split} emoji {i}" for i in range(n)],
                    "style": ["twemoji", "openmoji", "noto"][:n], "category": list(range(n))}
            for split, n in (("train", 3), ("validation", 2))}
    dataset = DatasetDict({split: Dataset.from_dict(data, features=features) for split, data in rows.items()})
    dataset.save_to_disk(str(work / "emoji"))
    (work / "emoji" / "examples").mkdir()
    draw_image(work).save(work / "emoji" / "examples" / "twemoji.png")
    (work / "emoji" / "README.md").write_text(
        "---\npretty_name: Tiny emoji\nlicense:\n- cc-by-4.0\n---\n\n# Tiny emoji\n\n![twemoji](examples/twemoji.png)\n")
    assert cli(["push", str(work / "emoji"), DATASET_REPO]) == 0
    # Back from the Hub (this process has not cached it): the Parquet shards and the merged card.
    pulled = load_dataset(DATASET_REPO)
    summary = {split: {"caption": rows["caption"], "style": rows["style"], "category": rows["category"],
                       "pixels": [list(image.convert("RGBA").getdata())[:50] for image in rows["image"]]}
               for split, rows in ((name, pulled[name][:]) for name in pulled)}
    card = DatasetCard.load(DATASET_REPO).content
    (work / "dataset.json").write_text(json.dumps({"splits": summary, "card": card}))


def pull_step(work: Path) -> None:
    """Without hf_limber: load everything back from the Hub and write what came out."""
    try:
        import hf_limber  # noqa: F401
    except ImportError:
        pass
    else:
        raise AssertionError("hf_limber must not be importable in the pull step")
    from huggingface_hub import ModelCard
    from PIL import Image
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoProcessor

    image = Image.open(work / "image.png")
    outputs: dict[str, torch.Tensor] = {}
    summary: dict[str, object] = {"modules": {}}
    for repo in (CLIP_REPO, CLIP_MIXIN_REPO):
        model = AutoModel.from_pretrained(repo, trust_remote_code=True).eval()
        processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
        summary["modules"][repo] = [type(model).__module__, type(processor).__module__]
        batch = processor(text=CLIP_TEXTS, images=[image])
        with torch.no_grad():
            outputs[f"{repo}/logits"] = model(**batch).logits_per_image
        outputs[f"{repo}/input_ids"], outputs[f"{repo}/pixel_values"] = batch["input_ids"], batch["pixel_values"]
    for repo in (ADAPTER_REPO, FULL_REPO):
        model = AutoModel.from_pretrained(repo, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
        summary["modules"][repo] = [type(model).__module__, type(processor).__module__,
                                    type(model.image_encoder).__module__]
        batch = processor(images=[image, image], text=LIMBER_TEXTS)
        with torch.no_grad():
            outputs[f"{repo}/logits"] = model(**batch).logits
            outputs[f"{repo}/tokens"] = model.generate(**batch, max_new_tokens=6, do_sample=False)
        outputs[f"{repo}/input_ids"] = batch["input_ids"]
    save_file({name: value.contiguous() for name, value in outputs.items()}, work / "pulled.safetensors")

    cards = {repo: ModelCard.load(repo) for repo in (CLIP_REPO, CLI_REPO)}
    summary["snippets"] = {repo: run_snippet(python_blocks(card.text)[0]) for repo, card in cards.items()}
    summary["card_data"] = {repo: card.data.to_dict() for repo, card in cards.items()}
    summary["eval_results"] = [[result.task_type, result.dataset_split, result.metric_value]
                               for result in cards[CLIP_REPO].data.eval_results]
    (work / "pulled.json").write_text(json.dumps(summary))


# -- the tests ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def roundtrip(tmp_path_factory):
    work = tmp_path_factory.mktemp("hub")
    with LoopbackHub() as hub:
        run_step("push_step", work, hub_env(hub.url, work / "home-push"), hide_hf_limber=False)
        run_step("pull_step", work, hub_env(hub.url, work / "home-pull"), hide_hf_limber=True)
    from safetensors.torch import load_file

    return hub, work, load_file(work / "pushed.safetensors"), load_file(work / "pulled.safetensors"), \
        json.loads((work / "pulled.json").read_text())


def test_the_loopback_hub_served_every_request(roundtrip):
    hub, *_ = roundtrip
    assert hub.unknown == []


def test_clip_loads_from_the_hub_with_transformers_alone(roundtrip):
    _, _, pushed, pulled, summary = roundtrip
    for repo in (CLIP_REPO, CLIP_MIXIN_REPO):
        assert all(module.startswith("transformers_modules.") for module in summary["modules"][repo]), repo
        assert torch.equal(pulled[f"{repo}/input_ids"], pushed["clip/input_ids"])
        torch.testing.assert_close(pulled[f"{repo}/pixel_values"], pushed["clip/pixel_values"], rtol=0, atol=1e-6)
        torch.testing.assert_close(pulled[f"{repo}/logits"], pushed["clip/logits"], rtol=0, atol=1e-6)


def test_limber_loads_from_the_hub_with_transformers_alone_in_both_forms(roundtrip):
    _, _, pushed, pulled, summary = roundtrip
    for repo in (ADAPTER_REPO, FULL_REPO):
        assert all(module.startswith("transformers_modules.") for module in summary["modules"][repo]), repo
        assert torch.equal(pulled[f"{repo}/input_ids"], pushed["limber/input_ids"])
        torch.testing.assert_close(pulled[f"{repo}/logits"], pushed["limber/logits"], rtol=0, atol=1e-6)
        assert torch.equal(pulled[f"{repo}/tokens"], pushed["limber/tokens"])


def test_push_to_hub_keeps_the_adapter_or_full_choice(roundtrip):
    from safetensors.torch import load

    hub, *_ = roundtrip
    adapter = load(hub.files(ADAPTER_REPO)["model.safetensors"])
    full = load(hub.files(FULL_REPO)["model.safetensors"])
    assert set(adapter) == {"projection.weight", "projection.bias"}
    assert set(adapter) < set(full) and any(name.startswith("language_model.") for name in full)
    assert json.loads(hub.files(ADAPTER_REPO)["config.json"])["saved_parts"] == "adapter"
    assert json.loads(hub.files(FULL_REPO)["config.json"])["saved_parts"] == "full"
    # Both forms carry their own code and their CLIP tower's; the adapter names its parts' repos.
    for repo in (ADAPTER_REPO, FULL_REPO):
        files = hub.files(repo)
        assert {"modeling_limber.py", "processing_limber.py", "modeling_clip.py", "images.py"} <= set(files)
    config = json.loads(hub.files(ADAPTER_REPO)["config.json"])
    assert (config["vision_source"], config["text_source"]) == (CLIP_REPO, LM_REPO)


def test_cli_push_uploads_the_model_and_its_card_but_nothing_else(roundtrip):
    hub, *_ = roundtrip
    files = set(hub.files(CLI_REPO))
    assert {"README.md", "config.json", "model.safetensors", "modeling_limber.py", "processor_config.json"} <= files
    assert not any(name.startswith("checkpoint-") or name == "training_args.bin" for name in files)
    assert not files & set(PRIVATE_FILES)


def test_push_plan_is_an_allow_list_and_dry_run_uploads_nothing(tmp_path, capsys):
    from hf_limber import ClipConfig, ClipModel
    from hf_limber.cli import main
    from hf_limber.hub.push import upload_plan

    ClipModel(ClipConfig.from_preset("tiny-vit")).save_pretrained(tmp_path)
    (tmp_path / "README.md").write_text("# card\n\n![loss](plots/loss.png)\n")
    for name in (*PRIVATE_FILES, "plots/loss.png", "plots/unused.png", "helper.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    repo_type, included, left_out = upload_plan(tmp_path)
    assert repo_type == "model"
    code = [name for name in included if name.endswith(".py")]
    assert "configuration_clip.py" in code and "modeling_clip.py" in code and "helper.py" not in code
    assert [name for name in included if name not in code] == ["README.md", "config.json", "model.safetensors",
                                                                "plots/loss.png"]
    assert set(left_out) == {*PRIVATE_FILES, "plots/unused.png", "helper.py"}  # helper.py is not the model's code
    assert main(["push", str(tmp_path), "me/model", "--dry-run"]) == 0  # no token, no network: nothing pushed
    printed = capsys.readouterr().out
    assert f"uploading {len(included)} file(s)" in printed and "left out (" in printed and "  .env" in printed


def test_model_cards_parse_and_their_snippets_run(roundtrip):
    hub, work, _, _, summary = roundtrip
    clip_card = summary["card_data"][CLIP_REPO]
    assert clip_card["pipeline_tag"] == "zero-shot-image-classification"
    assert {"hf_limber", "clip"} <= set(clip_card["tags"]) and clip_card["datasets"] == [DATASET_REPO]
    assert clip_card["model-index"][0]["results"]
    assert summary["eval_results"] == [["zero-shot-image-classification", "test_openmoji", 0.25],
                                       ["zero-shot-image-classification", "validation", 0.5]]
    limber_card = summary["card_data"][CLI_REPO]
    assert limber_card["pipeline_tag"] == "image-text-to-text" and "limber" in limber_card["tags"]
    assert [example["example_title"] for example in limber_card["widget"]] == ["Caption", "Question"]
    assert sorted(limber_card["base_model"]) == sorted([CLIP_REPO, LM_REPO])
    probabilities = ast.literal_eval(summary["snippets"][CLIP_REPO])  # the snippet prints {label: probability}
    assert set(probabilities) == {"cat", "dog", "car"} and abs(sum(probabilities.values()) - 1) < 1e-5
    assert summary["snippets"][CLI_REPO].startswith("A picture of")
    assert (work / "limber_snippet.txt").read_text().strip()
    card = hub.files(CLIP_REPO)["README.md"].decode()
    assert "```yaml\nmodel_preset: tiny-vit" in card and "1 min 15 s" in card
    assert "![zero shot](zero_shot.png)" in card and "zero_shot.png" in hub.files(CLIP_REPO)
    assert "arXiv" in card and "2103.00020" in card and "CC-BY 4.0" in card and "CC BY-SA 4.0" in card


def test_dataset_round_trip_keeps_rows_and_card(roundtrip):
    from PIL import Image

    hub, work, *_ = roundtrip
    pulled = json.loads((work / "dataset.json").read_text())
    assert set(pulled["splits"]) == {"train", "validation"}
    image = Image.open(work / "image.png")
    for split, n in (("train", 3), ("validation", 2)):
        rows = pulled["splits"][split]
        assert rows["caption"] == [f"{split} emoji {i}" for i in range(n)] and rows["category"] == list(range(n))
        expected = [[list(pixel) for pixel in list(image.rotate(90 * i).convert("RGBA").getdata())[:50]]
                    for i in range(n)]
        assert rows["pixels"] == expected
    assert "# Tiny emoji" in pulled["card"] and "dataset_info" in pulled["card"]  # our card, plus datasets' metadata
    assert "examples/twemoji.png" in hub.files(DATASET_REPO, "dataset")


def test_push_folder_says_what_is_wrong(tmp_path, monkeypatch):
    import huggingface_hub

    from hf_limber.hub import push_folder

    with pytest.raises(FileNotFoundError, match="does not exist"):
        push_folder(tmp_path / "missing", "me/model")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="neither a model folder"):
        push_folder(tmp_path, "me/model")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="is a model folder but repo_type='dataset'"):
        push_folder(tmp_path, "me/model", repo_type="dataset")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(PermissionError, match="HF_TOKEN.*hf auth login"):
        push_folder(tmp_path, "me/model")


def test_model_card_of_a_local_folder(tmp_path):
    from huggingface_hub import ModelCard

    from hf_limber import ClipConfig, ClipModel
    from hf_limber.hub import write_model_card

    with pytest.raises(ValueError, match="found None. Save the model there"):
        write_model_card(tmp_path)
    ClipModel(ClipConfig.from_preset("tiny-resnet")).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="lacks \\['value'\\]"):
        write_model_card(tmp_path, results=[{"task": "t", "dataset": "d", "metric": "m"}])
    card = ModelCard.load(write_model_card(tmp_path))
    assert card.data.pipeline_tag == "zero-shot-image-classification" and card.data.eval_results is None
    assert f"your-name/{tmp_path.name}" in card.text and "modified ResNet" in card.text
    assert "## Training" not in card.text and "## Results" not in card.text and "## Data licences" not in card.text
