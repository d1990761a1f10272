"""A model's summary from its files alone (no weights loaded): architecture, layers, sizes, dtype, tokenizer.

dusk info smollm2-135m
"""

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from dusk.errors import DuskError
from dusk.models.architecture import read_model_config
from dusk.models.io import has_tokenizer
from dusk.models.safetensors_io import ModelTensors


@dataclass(frozen=True)
class ModelSummary:
    path: str
    architecture: str
    model_type: str
    layers: int
    hidden_size: int
    vocab_size: int
    parameters: int
    dtype: str
    tied_embeddings: bool
    tokenizer: str
    chat_template: bool

    def as_rows(self) -> list[tuple[str, str]]:
        return [
            (
                key.replace("_", " "),
                f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value),
            )
            for key, value in asdict(self).items()
        ]


def _json_object(path: Path) -> dict:
    """A JSON file holding an object, or one line naming the file and what is wrong."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DuskError(f"{path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise DuskError(f"{path}: expected a JSON object, got a JSON {type(data).__name__}")
    return data


def _tokenizer_summary(model_dir: Path) -> tuple[str, bool]:
    if not has_tokenizer(model_dir):
        return "none", False
    config_path = model_dir / "tokenizer_config.json"
    config = _json_object(config_path) if config_path.exists() else {}
    template = (
        bool(config.get("chat_template"))
        or (model_dir / "chat_template.jinja").exists()
        or (model_dir / "chat_template.json").exists()
    )
    kind = config.get("tokenizer_class") or ("tokenizer.json" if (model_dir / "tokenizer.json").exists() else "?")
    return kind, template


def summarize(model_dir: Path) -> ModelSummary:
    """Summarize a model directory from config.json, safetensors headers and tokenizer files."""
    model_dir = Path(model_dir)
    config = read_model_config(model_dir)
    tensors = ModelTensors(model_dir)
    specs = [tensors.spec(name) for name in tensors.names()]
    dtypes = Counter(spec.dtype for spec in specs)
    tokenizer, template = _tokenizer_summary(model_dir)
    return ModelSummary(
        path=str(model_dir),
        architecture=(config.get("architectures") or ["?"])[0],
        model_type=config.get("model_type", "?"),
        layers=config.get("num_hidden_layers", 0),
        hidden_size=config.get("hidden_size", 0),
        vocab_size=config.get("vocab_size", 0),
        parameters=sum(spec.numel for spec in specs),
        dtype=", ".join(dtype for dtype, _count in dtypes.most_common()),
        tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        tokenizer=tokenizer,
        chat_template=template,
    )


def print_info(model: str) -> int:
    """Print a model's summary as `key  value` lines (dusk info, and after dusk upscale)."""
    from dusk.models.io import resolve_model

    summary = summarize(resolve_model(model))
    width = max(len(key) for key, _value in summary.as_rows())
    for key, value in summary.as_rows():
        print(f"{key:<{width}}  {value}")
    return 0
