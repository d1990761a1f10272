"""Convert a GGUF file once into a plain safetensors model directory, cached by the file's sha256.

transformers can load GGUF (dequantizing to fp32) but refuses `save_pretrained` on such a model, so dusk
writes the dequantized state dict with its own safetensors writer, plus config, tokenizer and chat template.

    dusk info path/to/model.Q4_1.gguf      # converts on first use, then reuses ~/.cache/dusk/gguf/<sha>
"""

import json
import logging
from pathlib import Path

from dusk.atomic import atomic_output_dir
from dusk.errors import DuskError
from dusk.hashing import sha256_file
from dusk.models.safetensors_io import SAFETENSORS_DTYPES, TensorSpec, write_sharded
from dusk.settings import cache_dir

log = logging.getLogger(__name__)


def converted_dir(gguf_path: Path) -> Path:
    """Where the conversion of this exact file lives (keyed by content, not by name or location)."""
    return cache_dir() / "gguf" / sha256_file(gguf_path)[:32]


def convert_gguf(gguf_path: Path) -> Path:
    """Return a safetensors model directory equal to the GGUF file's model, converting it on first use."""
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise DuskError(f"{gguf_path}: GGUF file not found")
    out = converted_dir(gguf_path)
    if (out / "config.json").exists():
        return out
    log.info("converting %s to safetensors in %s (once)", gguf_path.name, out)
    with atomic_output_dir(out, force=False) as tmp:
        _convert_into(gguf_path, tmp)
    return out


def _convert_into(gguf_path: Path, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    except Exception as exc:  # transformers raises many types for unreadable or unsupported GGUF
        raise DuskError(f"{gguf_path}: transformers could not load this GGUF file ({exc})") from exc
    state = model.state_dict()
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)  # tied: stored once, as the embedding
    specs = [TensorSpec(key, SAFETENSORS_DTYPES[value.dtype], tuple(value.shape)) for key, value in state.items()]
    write_sharded(out, specs, lambda spec: state[spec.name])
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config["architectures"] = [type(model).__name__]
    config["dtype"] = "float32"
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "dusk_source.json").write_text(json.dumps({"gguf": gguf_path.name, "sha256": sha256_file(gguf_path)}) + "\n")
