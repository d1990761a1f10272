"""What dusk needs to know about a decoder's layout: which tensors belong to which layer, found from names.

Llama-family models in transformers (Llama, Mistral, Qwen2/3, Gemma, ...) name per-layer tensors
`<prefix>layers.<i>.<rest>` (`model.layers.3.mlp.up_proj.weight`); everything else (embeddings, final norm,
lm head) is shared. dusk finds the prefix from the tensor names and the layer count from the config, so no
architecture is hard-coded.

    dusk upscale tiny-qwen2 --drop 1 --out runs/tiny-dus
"""

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from dusk.errors import DuskError
from dusk.models.io import read_config

LAYER_NAME = re.compile(r"^(?P<prefix>(?:.*\.)?layers\.)(?P<index>\d+)\.(?P<rest>.+)$")
# Config keys that must agree for layers of two models to be stacked together.
STRUCTURAL_KEYS = (
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
)
NON_LAYER_LIST_KEYS = {"architectures"}
# Config keys that point transformers at Python files to run on load (`trust_remote_code`).
REMOTE_CODE_KEYS = ("auto_map",)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LayerLayout:
    """A model's per-layer tensor naming: `prefix + str(i) + '.' + rest` for each `rest` in `suffixes`."""

    prefix: str
    num_layers: int
    suffixes: tuple[str, ...]
    shared: tuple[str, ...]  # tensors outside the layers

    def name(self, layer: int, suffix: str) -> str:
        return f"{self.prefix}{layer}.{suffix}"


def read_model_config(model_dir: Path) -> dict:
    """The model's config.json, which must be a JSON object (a list or a number is refused, naming the file)."""
    config = read_config(model_dir)
    if not isinstance(config, dict):
        raise DuskError(
            f"{Path(model_dir) / 'config.json'}: expected a JSON object, got a JSON {type(config).__name__}"
        )
    return config


def split_layer_name(name: str) -> tuple[str, int, str] | None:
    """(prefix, layer index, rest) for a per-layer tensor name, else None."""
    match = LAYER_NAME.match(name)
    return (match["prefix"], int(match["index"]), match["rest"]) if match else None


def layer_layout(config: dict, tensor_names: list[str], where: str) -> LayerLayout:
    """Find and check the layer layout of a model from its config and tensor names; explain what is unsupported."""
    model_type = config.get("model_type", "?")
    if config.get("is_encoder_decoder"):
        raise DuskError(
            f"{where}: model_type {model_type!r} is an encoder-decoder; DUS stacks the layers of a decoder-only model"
        )
    num_layers = config.get("num_hidden_layers")
    if not isinstance(num_layers, int):
        raise DuskError(
            f"{where}: model_type {model_type!r} has no integer num_hidden_layers in config.json; dusk "
            "supports Llama-family decoders (llama, mistral, qwen2, qwen3, gemma, ...)"
        )
    prefixes: set[str] = set()
    per_layer: dict[int, set[str]] = {}
    shared: list[str] = []
    for name in tensor_names:
        parts = split_layer_name(name)
        if parts is None:
            shared.append(name)
            continue
        prefixes.add(parts[0])
        per_layer.setdefault(parts[1], set()).add(parts[2])
    if len(prefixes) != 1:
        found = ", ".join(sorted(prefixes)) or "none"
        raise DuskError(
            f"{where}: model_type {model_type!r} is not supported: dusk needs one stack of tensors named "
            f"'<prefix>layers.<i>.*' (found prefixes: {found})"
        )
    if sorted(per_layer) != list(range(num_layers)):
        raise DuskError(
            f"{where}: config says {num_layers} layers but tensors exist for layers "
            f"{sorted(per_layer)[:5]}...; the weights do not match config.json"
        )
    suffixes = per_layer[0]
    for index, names in per_layer.items():
        if names != suffixes:
            raise DuskError(
                f"{where}: model_type {model_type!r} is not supported: layer {index} has different "
                f"tensors from layer 0 ({sorted(names ^ suffixes)[:3]}), so layers are not interchangeable"
            )
    return LayerLayout(prefixes.pop(), num_layers, tuple(sorted(suffixes)), tuple(shared))


def check_compatible(base: dict, other: dict, base_where: str, other_where: str) -> None:
    """Raise naming the first structural config field on which two models differ."""
    for key in STRUCTURAL_KEYS:
        if base.get(key) != other.get(key):
            raise DuskError(
                f"cannot stack layers of {other_where} onto {base_where}: {key} differs "
                f"({other.get(key)!r} vs {base.get(key)!r})"
            )


def per_layer_config_keys(config: dict) -> list[str]:
    """Config fields holding one value per layer (e.g. `layer_types`), which must follow the layers when stacking."""
    count = config.get("num_hidden_layers")
    return [
        key
        for key, value in config.items()
        if isinstance(value, list) and len(value) == count and key not in NON_LAYER_LIST_KEYS
    ]


def without_remote_code(config: dict, where: str) -> dict:
    """The output config without remote-code pointers (`auto_map`), with a warning naming what was dropped.

    An output of dusk is built from weights only: the Python files `auto_map` names are not copied, and a merged or
    stacked model must not run code on load that the user did not choose for it.
    """
    dropped = [key for key in REMOTE_CODE_KEYS if key in config]
    if not dropped:
        return config
    log.warning(
        "%s: dropped %s (remote-code pointers: %s) from the output config.json; dusk writes weights only, "
        "the output loads with the standard transformers classes",
        where,
        ", ".join(dropped),
        ", ".join(str(value) for key in dropped for value in _values(config[key])),
    )
    return {key: value for key, value in config.items() if key not in dropped}


def _values(mapping: object) -> list[object]:
    return list(mapping.values()) if isinstance(mapping, dict) else [mapping]


# The per-layer modules whose output is added to the residual stream, per model_type: set to zero (weight and bias),
# the layer adds nothing and passes its input through (LLaMA-Pro's identity-initialised block expansion). A norm
# applied to such an output (Gemma 2/3 and OLMo 2 post-norms) maps zero to zero, so those layers qualify too.
LLAMA_WRITERS = ("self_attn.o_proj", "mlp.down_proj")
RESIDUAL_WRITERS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "olmo2", "phi3", "granite"),
        LLAMA_WRITERS,
    ),
    "opt": ("self_attn.out_proj", "fc2"),
}


def residual_writers(config: dict, where: str) -> tuple[str, ...]:
    """The modules to zero so that a copied layer is the identity; refuse architectures where that is not so."""
    model_type = config.get("model_type", "?")
    if model_type == "opt" and config.get("do_layer_norm_before", True) is False:
        raise DuskError(
            f"{where}: model_type 'opt' with do_layer_norm_before: false normalizes after the residual sum "
            "(x -> LayerNorm(x + f(x))), so a layer with zeroed projections is not the identity; --expand needs a "
            "pre-norm decoder"
        )
    if model_type not in RESIDUAL_WRITERS:
        raise DuskError(
            f"{where}: model_type {model_type!r} is not in dusk's expansion table (known: "
            f"{', '.join(sorted(RESIDUAL_WRITERS))}), so dusk cannot tell which projections to zero for --expand"
        )
    return RESIDUAL_WRITERS[model_type]
