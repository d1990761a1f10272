"""Resolve a model argument (built-in name, Hugging Face directory, or .gguf file) and load models and tokenizers.

from dusk.models.io import resolve_model, load_model
model = load_model(resolve_model("smollm2-135m"))
"""

import json
import os
from pathlib import Path

import torch

from dusk.errors import DuskError
from dusk.hub import SIDE_FILES, parse_hub_id, resolve_hub_model
from dusk.models.builtin import BUILTIN_MODELS, builtin_model, packaged_gguf

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def resolve_model(arg: str | Path, allow_pickle: bool = False) -> Path:
    """Return a Hugging Face model directory for a built-in name, a model directory, a .gguf file, or a hub id
    `org/name[@revision]` that is not a local path (fetched or found in the hub cache by dusk.hub)."""
    text = str(arg)
    if text in BUILTIN_MODELS:
        return _resolve_builtin(text)
    path = Path(text).expanduser()
    hub_id = None if path.exists() else parse_hub_id(text)
    if hub_id is not None:
        return resolve_hub_model(hub_id, allow_pickle or pickle_allowed())
    if not path.exists() and _looks_like_a_path(text):
        raise DuskError(f"{path}: no such model directory or .gguf file")
    if not path.exists():
        builtin_model(text)  # raises the unknown-name error, listing the known names
    check_model_path(path)
    if path.is_file():
        from dusk.models.gguf import convert_gguf

        return convert_gguf(path)
    return path


def _looks_like_a_path(text: str) -> bool:
    """A model argument meant as a path (not a built-in name): it has a folder part or a weight-file suffix."""
    return "/" in text or text.startswith(("~", ".")) or text.endswith((".gguf", ".safetensors"))


def check_model_path(path: Path) -> None:
    """An existing path names a model: a directory with config.json, or a .gguf file (nothing else is read)."""
    if path.is_dir():
        if (path / "config.json").is_file():
            return
        if (path / "final" / "config.json").is_file():
            raise DuskError(
                f"{path}: not a model directory (no config.json); the model is {path / 'final'} (sDPO writes each "
                "step and the final model in sub-directories)"
            )
        raise DuskError(f"{path}: a directory but not a model directory (no config.json)")
    if path.is_file() and path.suffix == ".gguf":
        return
    raise DuskError(f"{path}: neither a model directory (with config.json) nor a .gguf file")


def _resolve_builtin(name: str) -> Path:
    model = builtin_model(name)
    if model.tiny_model_type:
        from dusk.models.tiny import cached_tiny_model

        return cached_tiny_model(model.tiny_model_type)
    from dusk.models.gguf import convert_gguf

    return convert_gguf(packaged_gguf(model))


def read_config(model_dir: Path) -> dict:
    """The model's config.json as a dict (no transformers import needed)."""
    path = Path(model_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DuskError(f"{path}: cannot read model config ({exc})") from exc
    if not isinstance(config, dict):
        raise DuskError(f"{path}: a model config is a JSON object, got {type(config).__name__}")
    return config


def known_layer_count(arg: str) -> int | None:
    """A model argument's decoder layer count when it is known without loading or converting anything."""
    if arg in BUILTIN_MODELS:
        return BUILTIN_MODELS[arg].num_layers
    path = Path(arg).expanduser()
    if (path / "config.json").is_file():
        layers = read_config(path).get("num_hidden_layers")
        return layers if isinstance(layers, int) else None
    return None


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise DuskError(f"dtype {name!r}: expected one of {', '.join(DTYPES)}")
    return DTYPES[name]


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
ALLOW_PICKLE_ENV = "DUSK_ALLOW_PICKLE"


def pickle_allowed() -> bool:
    """The user's explicit opt-in to unpickling weight files (`DUSK_ALLOW_PICKLE=1`): pickles can run code."""
    return os.environ.get(ALLOW_PICKLE_ENV, "") == "1"


def weights_use_safetensors(model_dir: Path, allow_pickle: bool = False) -> bool:
    """True when the directory's weights are safetensors; refuse pickled-only weights unless the user opted in
    (`allow_pickle`, the --allow-pickle flag, or DUSK_ALLOW_PICKLE=1)."""
    model_dir = Path(model_dir)
    if any(model_dir.glob("*.safetensors")):
        return True
    pickles = sorted(p.name for p in model_dir.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not pickles:
        raise DuskError(f"{model_dir}: no weight files (*.safetensors)")
    if allow_pickle or pickle_allowed():
        return False
    raise DuskError(
        f"{model_dir}: holds only pickled weights ({', '.join(pickles)}), which can run code when loaded; dusk loads "
        f"safetensors only (convert them, or set {ALLOW_PICKLE_ENV}=1 if you trust the file)"
    )


ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")  # the ones dusk's eval engine feeds its 4D masks to (docs/eval_engine.md)


def load_model(
    model_dir: Path,
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
    attention: str | None = None,
    allow_pickle: bool = False,
):
    """Load a causal LM from a model directory with plain transformers, in eval mode (safetensors weights only).

    `device` and `dtype` take the flags' values (`auto` included: dusk.devices resolves them); `attention` is the
    transformers attention implementation (None = transformers' default, SDPA where the model supports it)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as transformers_logging

    from dusk.devices import resolve_device, resolve_dtype

    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    options = {} if attention is None else {"attn_implementation": attention}
    transformers_logging.disable_progress_bar()  # dusk shows its own; these filled stderr around one-line errors
    try:
        model = AutoModelForCausalLM.from_pretrained(
            model_dir,
            dtype=torch_dtype(dtype),
            trust_remote_code=trust_remote_code,
            use_safetensors=weights_use_safetensors(model_dir, allow_pickle),
            **options,
        )
    except ValueError as exc:
        if attention is None or attention not in str(exc):
            raise
        reason = str(exc).splitlines()[0]
        raise DuskError(f"{model_dir}: this model does not support --attention {attention} ({reason})") from exc
    return model.to(device).eval()


def has_tokenizer(model_dir: Path) -> bool:
    return any((Path(model_dir) / name).exists() for name in TOKENIZER_FILES)


def load_tokenizer(model_dir: Path, trust_remote_code: bool = False):
    """Load the model directory's tokenizer, or say clearly that it has none."""
    from transformers import AutoTokenizer

    if not has_tokenizer(model_dir):
        raise DuskError(
            f"{model_dir}: no tokenizer files ({', '.join(TOKENIZER_FILES)}); copy the base model's tokenizer into it"
        )
    return AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)


def copy_side_files(source_dir: Path, out_dir: Path) -> list[str]:
    """Copy tokenizer, chat template and generation config files from `source_dir`; return the names copied."""
    import shutil

    copied = []
    for name in SIDE_FILES:
        if (Path(source_dir) / name).is_file():
            shutil.copyfile(Path(source_dir) / name, Path(out_dir) / name)
            copied.append(name)
    return copied
