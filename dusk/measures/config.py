"""Settings of the measures (`dusk perplexity`, `dusk heldout`, recipe kinds `perplexity` and `heldout`), kept apart
from the measures themselves so the CLI and the recipe reader get their fields without importing torch.

    python -c "from dusk.measures.config import PerplexityConfig; print(PerplexityConfig(models=['m']))"
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dusk.devices import DEVICE_HELP, DeviceName

RecordKind = Literal["instruction", "preference"]


def one_label_per_model(labels: list[str] | None, info) -> list[str] | None:
    """`labels`, when given, name each model once."""
    models = info.data.get("models") or []
    if labels is not None and len(labels) != len(models):
        raise ValueError(f"{len(labels)} labels for {len(models)} models; give one label per model")
    return labels


class PerplexityConfig(BaseModel):
    """Settings of one held-out perplexity measurement (every field is recorded in results.json)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: list[str] = Field(min_length=1, description="models to score (stages, built-in names or dirs); the "
                              "first is the reference of the paired differences")  # fmt: skip
    labels: list[str] | None = Field(None, description="row labels, one per model (default: stage or model name)")
    data: str = Field("gutenberg", description="held-out text: a text dataset or file (not the training text)")
    exclude: list[str] = Field(default_factory=list, description="text data whose records are left out (the "
                               "training text: mix stages, datasets or files)")  # fmt: skip
    seq_len: int = Field(256, ge=8, description="tokens per scored sequence")
    sequences: int = Field(32, ge=2, description="sequences cut evenly from the text (the n of the standard error)")
    batch_size: int = Field(8, ge=1, description="sequences per forward pass")
    title: str | None = Field(None, description="the report section's title")
    device: DeviceName = Field("auto", description=f"where the models run: {DEVICE_HELP}")
    out: Path = Field(Path("runs/perplexity"), description="output directory (results.json)")

    _labels = field_validator("labels")(one_label_per_model)


class HeldoutConfig(BaseModel):
    """Settings of one held-out measurement (every field is recorded in results.json)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: list[str] = Field(min_length=1, description="models to score (stages, built-in names or dirs); the "
                              "first is the reference of the paired differences")  # fmt: skip
    labels: list[str] | None = Field(None, description="row labels, one per model (default: stage or model name)")
    data: list[str] = Field(min_length=1, description="held-out datasets or files, all instruction or all preference")
    exclude: list[str] = Field(default_factory=list, description="data whose records are not held out (the "
                               "training data: mix stages, datasets or files)")  # fmt: skip
    examples: int = Field(32, ge=2, description="records drawn per dataset (the n of the standard errors)")
    seed: int = Field(0, description="seed of the draw")
    template: Literal["alpaca", "solar", "stanford_alpaca", "chat", "none"] = Field(
        "alpaca", description="prompt rendering, as the model was trained (alpaca, chat, none, ...)"
    )
    seq_len: int = Field(256, ge=8, description="tokens per example (as training cuts them)")
    reference: str | None = Field(None, description="preference data: the reference model (default: the first model)")
    beta: float = Field(0.1, gt=0, description="preference data: DPO's beta (scales the rewards)")
    batch_size: int = Field(8, ge=1, description="examples per forward pass")
    title: str | None = Field(None, description="the report section's title")
    device: DeviceName = Field("auto", description=f"where the models run: {DEVICE_HELP}")
    out: Path = Field(Path("runs/heldout"), description="output directory (results.json)")

    _labels = field_validator("labels")(one_label_per_model)
