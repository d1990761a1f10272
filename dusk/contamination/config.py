"""Settings of the contamination test (`dusk contamination`), kept apart from the test itself so the CLI can
read their defaults without importing torch.

    python -c "from dusk.contamination.config import *; print(ContaminationConfig(model='m', reference='r'))"
"""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dusk.config_flags import comma_separated
from dusk.devices import DEVICE_HELP, DeviceName, DtypeName

DEFAULT_SAMPLES = 10  # 6 tasks x 20 items in about 12 minutes on a 2-core CPU (SmolLM2); the public tool uses 100


class ContaminationConfig(BaseModel):
    """Settings of one `dusk contamination` run (every field is recorded in results.json)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="the model under test: built-in name, directory, .gguf file or hub id (org/name)")
    reference: str = Field(description="the model that samples continuations (e.g. the base model), named as `model`")
    tasks: tuple[str, ...] = Field(("h6",), description="tasks or groups to test, comma-separated (h6 = all six)")
    n: int = Field(100, ge=1, description="items per task, drawn with `seed` (all items if the split is smaller)")
    samples: int = Field(DEFAULT_SAMPLES, ge=1, description="continuations the reference samples per item")
    seed: int = Field(0, description="seed of the item draw and of every item's sampling generator")
    out: Path | None = Field(
        None, description="output directory: results.json, table.md, JSONL (default runs/contamination-<model name>)"
    )
    prefix_ratio: float = Field(0.4, gt=0, lt=1, description="share of an item's words given as the prefix")
    min_words: int = Field(5, ge=2, description="items with fewer words are skipped (and counted) as too short")
    sampler: Literal["reference", "model"] = Field(
        "reference",
        description="who samples the continuations: the reference (the paper's test) or the model under test "
        "(calibrated against the model's own writing, so a learned answer format alone is not suspicious)",
    )
    top_k: int = Field(50, ge=0, description="sample from the sampler's top-k tokens (0 = the full distribution)")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of the sampler")
    threshold: float = Field(0.1, gt=0, le=1, description="an item is suspicious when its score is below this")
    allow_pickle: bool = Field(
        False, description="load pickled weights (*.bin) when a model has no safetensors: only if you trust it"
    )
    device: DeviceName = Field("auto", description=f"where both models run: {DEVICE_HELP}")
    dtype: DtypeName = Field("auto", description="dtype both models run in (auto = bfloat16 on CUDA, float32 on CPU)")

    _split_tasks = field_validator("tasks", mode="before")(comma_separated)

    @field_validator("tasks")
    @classmethod
    def _some_tasks(cls, tasks: tuple[str, ...]) -> tuple[str, ...]:
        if not tasks:
            raise ValueError("no tasks given; name tasks or h6 (arc_challenge, gsm8k, ...)")
        return tasks
