"""Push a saved model folder, a `datasets` folder or a built Space to the Hub (`hf-limber push`).

Model folders go up with `HfApi.upload_folder`, with a model card written first when the folder has
none: only what a model consists of (an allow-list: config, safetensors weights, processor and
tokenizer files, its code, the card and the plots the card shows), never notes, keys, logs, pickles
or training state, and what is left out is listed. Folders written
by `save_to_disk` go up through `datasets`' own `push_to_hub`, which stores Parquet shards and adds
the features and splits to the dataset card that the folder carries (hf-limber data writes one).
A folder written by `hf-limber space build` goes up as a gradio Space, only the files the build wrote.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

from huggingface_hub import HfApi, get_token

from .cards import model_kind, write_model_card
from .space import BUILD_MARKER, SPACE_FILES, SPACE_MODELS_FILE

DATASET_MARKERS = ("dataset_dict.json", "dataset_info.json")  # what save_to_disk writes (DatasetDict, Dataset)
MODEL_MARKERS = ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
# What a saved model consists of (top level only): anything else in the folder stays on this machine.
MODEL_FILES = ["config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
               "preprocessor_config.json", "processor_config.json", "image_processor_config.json",
               "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
               "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json",
               "adapter_config.json", "README.md"]
# The dataset card and the pictures it shows; the data itself goes through datasets.
DATASET_CARD_FILES = ["README.md", "examples/*"]
# What `hf-limber space build` writes, and nothing else that may lie beside it.
SPACE_UPLOAD = [*SPACE_FILES, "requirements.txt", SPACE_MODELS_FILE, "hf_limber/**"]


def folder_repo_type(folder: Path) -> str:
    """The repo type a folder needs: "dataset" for a save_to_disk folder, "model" for a save_pretrained one,
    "space" for a folder `hf-limber space build` wrote."""
    if (folder / BUILD_MARKER).is_file():
        return "space"
    if any((folder / marker).is_file() for marker in DATASET_MARKERS):
        return "dataset"
    if any((folder / marker).is_file() for marker in MODEL_MARKERS) or any(folder.glob("*.safetensors")):
        return "model"
    raise ValueError(
        f"{folder} is neither a model folder (save_pretrained: {', '.join(MODEL_MARKERS[:2])}, *.safetensors) nor a "
        f"datasets folder (save_to_disk: {' or '.join(DATASET_MARKERS)}) nor a Space (hf-limber space build). "
        "Pass the folder those wrote."
    )


def remote_code_files(folder: Path) -> list[str]:
    """The Python files that are a model's code: the modules its configs' auto_map names, and the
    modules those import relatively (what transformers copies for trust_remote_code)."""
    modules: set[str] = set()
    for config in ("config.json", "processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        if (folder / config).is_file():
            text = (folder / config).read_text()
            modules |= set(re.findall(r'"(?:[^"]*--)?(\w+)\.\w+"', text[text.find('"auto_map"'):]) if '"auto_map"' in text else [])
    files, queue = set(), [m for m in modules if (folder / f"{m}.py").is_file()]
    while queue:
        module = queue.pop()
        if f"{module}.py" in files:
            continue
        files.add(f"{module}.py")
        imported = re.findall(r"^\s*from \.(\w+) import", (folder / f"{module}.py").read_text(), re.MULTILINE)
        queue += [m for m in imported if (folder / f"{m}.py").is_file()]
    return sorted(files)


def model_files(folder: Path) -> tuple[list[str], list[str]]:
    """(files to upload, files left out) of a model folder: the allow-list plus the plots its card shows."""
    card = folder / "README.md"
    shown = set(re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", card.read_text())) if card.is_file() else set()
    patterns = MODEL_FILES + remote_code_files(folder)
    included, left_out = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        wanted = ("/" not in name and any(fnmatch.fnmatch(name, pattern) for pattern in patterns)) or name in shown
        (included if wanted else left_out).append(name)
    return included, left_out


def upload_plan(folder: str | os.PathLike) -> tuple[str, list[str], list[str]]:
    """(repo type, files that would go up, files left out) for a folder, without a network call.
    A dataset's rows go through `datasets` as Parquet; its listed files are the card and its pictures."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: pass the folder that save_pretrained or save_to_disk wrote.")
    repo_type = folder_repo_type(folder)
    if repo_type == "model":
        return repo_type, *model_files(folder)
    patterns = SPACE_UPLOAD if repo_type == "space" else DATASET_CARD_FILES
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    included = [name for name in files if any(fnmatch.fnmatch(name, pattern) for pattern in patterns)]
    return repo_type, included, [name for name in files if name not in included]


def push_folder(
    local_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    repo_type: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Create `repo_id` (if needed) and upload the folder to it; returns the repo's URL.

    `repo_type` ("model", "dataset" or "space") is read from the folder when None. A model folder of an
    hf_limber CLIP or LiMBeR model without README.md gets a model card (`write_model_card`) first.
    The token is `token`, else HF_TOKEN or the one `hf auth login` stored.
    """
    folder = Path(local_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist: pass the folder that save_pretrained or save_to_disk wrote.")
    found_type = folder_repo_type(folder)
    repo_type = repo_type or found_type
    if repo_type != found_type:
        raise ValueError(f"{folder} is a {found_type} folder but repo_type={repo_type!r} was asked for: "
                         f"push it as a {found_type} repo.")
    token = token or get_token()
    if token is None:
        raise PermissionError("No Hugging Face token: set HF_TOKEN, run `hf auth login`, or pass token= "
                              "(a token with write access).")
    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, repo_type=repo_type, exist_ok=True,
                          space_sdk="gradio" if repo_type == "space" else None)
    if repo_type == "space":
        api.upload_folder(folder_path=folder, repo_id=url.repo_id, repo_type="space", allow_patterns=SPACE_UPLOAD,
                          commit_message=commit_message or "Upload the hf_limber demo Space")
        return str(url)
    if repo_type == "dataset":
        _push_dataset(api, folder, url.repo_id, private, commit_message)
        return str(url)
    if not (folder / "README.md").exists() and model_kind(folder):
        write_model_card(folder, repo_id=url.repo_id)
    included, _ = model_files(folder)
    api.upload_folder(folder_path=folder, repo_id=url.repo_id, repo_type="model", allow_patterns=included,
                      commit_message=commit_message or "Upload model with hf_limber")
    return str(url)


def _push_dataset(api: HfApi, folder: Path, repo_id: str, private: bool, commit_message: str | None) -> None:
    from datasets import load_from_disk

    # The card (and its example grids) first: push_to_hub then adds the features and splits to it.
    if (folder / "README.md").exists():
        api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset",
                          allow_patterns=DATASET_CARD_FILES, commit_message="Dataset card")
    load_from_disk(str(folder)).push_to_hub(repo_id, private=private, token=api.token,
                                            commit_message=commit_message or "Upload dataset with hf_limber")
