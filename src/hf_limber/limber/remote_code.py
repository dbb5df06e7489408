"""What a saved LiMBeR folder carries so that transformers alone loads it with `trust_remote_code=True`.

transformers copies a class registered with `register_for_auto_class` next to the weights, with the
files it imports as `from .name import ...` from its own folder. Two things that leaves out:

- the code of a frozen part that transformers does not ship (hf_limber's CLIP image tower): the
  config copies it with `save_part_code` and names it in the part's nested config (`auto_map`);
  on load, `register_part_code` registers those classes with the Auto classes before the nested
  config is built, so everything downstream (AutoConfig.for_model, AutoModel.from_config) works
  as it does with hf_limber installed. Registering runs the shipped code, so it happens only with
  `trust_remote_code=True` (or when this very code was itself loaded as trusted remote code);
- code a module takes from another hf_limber sub-package (the processor's image helpers from
  `hf_limber.images`): `copy_code` puts it into the flat folder.

This file is itself copied into saved folders, so it imports nothing but transformers.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import transformers
from transformers import AutoConfig, PretrainedConfig
from transformers.dynamic_module_utils import get_class_from_dynamic_module, get_relative_imports
from transformers.models.auto.configuration_auto import CONFIG_MAPPING
from transformers.utils.hub import TRANSFORMERS_DYNAMIC_MODULE_NAME

# What locates a saved folder on the Hub and in the cache; the rest of `from_pretrained`'s options
# (dtype, ...) are for the model.
HUB_OPTIONS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")


# A Hub id: "name" or "namespace/name".
HUB_ID = re.compile(r"[\w][\w.-]*(/[\w][\w.-]*)?")


def hub_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {key: kwargs[key] for key in HUB_OPTIONS if kwargs.get(key) is not None}


def check_location(location: str | os.PathLike, what: str = "model") -> None:
    """A location that can only be a local path (not a Hub id) must exist: say so, instead of the Hub
    client's "Repo id must be in the form 'repo_name' or 'namespace/repo_name'"."""
    text = str(location)
    if os.path.exists(os.path.expanduser(text)) or HUB_ID.fullmatch(text):
        return
    raise FileNotFoundError(f"The {what} folder {text} does not exist (and it is not a Hub id such as 'user/name'). "
                            "Check the path.")


def module_file(cls: type) -> Path:
    return Path(sys.modules[cls.__module__].__file__)


def copy_code(folder: str | os.PathLike, *module_files: str | os.PathLike) -> None:
    """Copy module files into `folder` with every relative import that lies beside them (recursively),
    the way transformers gathers remote code."""
    pending, done = [Path(file) for file in module_files], set()
    while pending:
        source = pending.pop()
        if source in done:
            continue
        done.add(source)
        shutil.copyfile(source, Path(folder) / source.name)
        # An import that is not beside the file (`.images` seen from hf_limber/limber) is
        # copied by the caller, which knows where it lives.
        pending += [source.parent / f"{name}.py" for name in get_relative_imports(source)
                    if (source.parent / f"{name}.py").exists()]


class RemoteCodeNotTrusted(ValueError):
    """A saved folder ships Python code for one of its parts and the caller did not say to trust it."""


def runs_as_remote_code(cls: type) -> bool:
    """Whether `cls` was itself loaded from a saved folder's code (which took `trust_remote_code=True`)."""
    return cls.__module__.split(".", 1)[0] == TRANSFORMERS_DYNAMIC_MODULE_NAME


def save_part_code(folder: str | os.PathLike, part_config: PretrainedConfig | None, auto_name: str,
                   model_mapping: Mapping[type, type]) -> None:
    """Copy the code of a part whose classes were registered for sharing (`register_for_auto_class`,
    as hf_limber's CLIP classes are) and name it in the part's config; transformers' own classes need
    nothing. `model_mapping` is the Auto class's public mapping (MODEL_MAPPING for AutoModel, ...)."""
    if part_config is None:
        return
    config_class = type(part_config)
    model_class = model_mapping.get(config_class, None)
    if getattr(config_class, "_auto_class", None) is None or getattr(model_class, "_auto_class", None) is None:
        return
    part_config.auto_map = {
        "AutoConfig": f"{module_file(config_class).stem}.{config_class.__name__}",
        auto_name: f"{module_file(model_class).stem}.{model_class.__name__}",
    }
    copy_code(folder, module_file(config_class), module_file(model_class))


def register_part_code(config_dict: dict[str, Any], source: str | os.PathLike, trust_remote_code: bool = False,
                       **hub_kwargs: Any) -> None:
    """Register the code a saved folder carries for each part whose model type transformers does not
    know (hf_limber is not installed), before the nested configs are built from `config_dict`.
    Importing that code runs it: without `trust_remote_code` nothing is imported and the load is refused."""
    for key in ("vision_config", "text_config"):
        part = config_dict.get(key) or {}
        model_type = part.get("model_type")
        if model_type is None or model_type in CONFIG_MAPPING:
            continue
        auto_map = dict(part.get("auto_map") or {})
        if "AutoConfig" not in auto_map:
            raise ValueError(
                f"{source}: its {key} is a {model_type!r} model, which transformers does not know, and the folder "
                "carries no code for it. Install the package that defines it (hf_limber for limber_clip_* models)."
            )
        if not trust_remote_code:
            files = sorted({reference.split(".")[0] + ".py" for reference in auto_map.values()})
            raise RemoteCodeNotTrusted(
                f"{source}: its {key} is a {model_type!r} model whose code ships with the folder ({', '.join(files)}); "
                "loading it would run that code. Pass trust_remote_code=True (hf-limber: --trust-remote-code) only "
                "if you trust this source, or install the package that defines the model."
            )
        # The config class first: the model's module imports it and must find the same class.
        config_class = get_class_from_dynamic_module(auto_map.pop("AutoConfig"), source, **hub_kwargs)
        AutoConfig.register(model_type, config_class, exist_ok=True)
        for auto_name, reference in auto_map.items():
            model_class = get_class_from_dynamic_module(reference, source, **hub_kwargs)
            getattr(transformers, auto_name).register(config_class, model_class, exist_ok=True)
