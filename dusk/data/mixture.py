"""Data mixtures: a YAML list of (dataset, max_examples or weight) -> one shuffled JSONL of normalized records.

```yaml
seed: 0                 # optional (default 0); the same seed gives the same output, byte for byte
kind: instruction       # optional; default: the kind of the first source
sources:                # or the YAML document is just this list
  - {dataset: alpaca_gpt4, max_examples: 500}      # a random 500 (all if fewer)
  - {dataset: flan_cot, weight: 0.1}               # round(0.1 * size) records; weight > 1 repeats records
  - {dataset: data/my.jsonl, max_chars: 4000}      # a file; drop records longer than 4000 characters
```

Each output line is a normalized record plus `provenance: {dataset, index}` (index = position in the source's
normalized records).

    DUSK_DATA_DIR=../shared/data dusk data mix recipes/mix.yaml --out runs/mix.jsonl --tokenizer smollm2-135m
"""

import json
import random
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dusk.atomic import atomic_output_file
from dusk.data.registry import check_training_source, load_records
from dusk.data.templates import render_text
from dusk.errors import DuskError
from dusk.yaml_file import read_yaml


class Source(BaseModel):
    """One dataset in a mixture."""

    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(min_length=1, description="registry name or file path")
    max_examples: int | None = Field(None, gt=0, description="take at most this many records (random, no repeats)")
    weight: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="take round(weight * size) records; above 1 repeats records"
    )
    max_chars: int | None = Field(None, gt=0, description="drop records whose text is longer than this")

    @model_validator(mode="after")
    def _one_amount(self) -> "Source":
        if self.max_examples is not None and self.weight is not None:
            raise ValueError("give max_examples or weight, not both")
        return self


class Mixture(BaseModel):
    """A mixture file."""

    model_config = ConfigDict(extra="forbid")
    sources: list[Source] = Field(min_length=1, description="the datasets and how much of each")
    seed: int = Field(0, description="seed of every random choice (sampling and the final shuffle)")
    kind: Literal["text", "instruction", "preference"] | None = Field(
        None, description="text, instruction or preference (default: the first source's kind)"
    )

    @model_validator(mode="after")
    def _distinct_datasets(self) -> "Mixture":
        names = [source.dataset for source in self.sources]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"dataset {twice[0]!r} is listed twice; give it once with the combined amount")
        return self


class MixRun(BaseModel):
    """`dusk data mix`: a mixture file (a `Mixture`, as the recipe's mix stage) into one JSONL; its flags."""

    model_config = ConfigDict(extra="forbid")
    mixture: Path = Field(description="mixture YAML: a list of {dataset, max_examples | weight, max_chars}")
    out: Path = Field(description="output JSONL (normalized records, each with its provenance)")
    tokenizer: str | None = Field(None, description="model whose tokenizer counts tokens per source")
    template: str = Field("alpaca", description="template that renders records for the token counts")
    force: bool = Field(False, description="replace --out if it exists")


def _problem(error: dict) -> str:
    """One validation error as `where: what (got value)`, unknown keys with the keys that are allowed."""
    where = ".".join(map(str, error["loc"])) or "mixture"
    if error["type"] == "extra_forbidden":
        model = Source if len(error["loc"]) == 3 else Mixture
        return f"{where}: unknown key; expected one of {', '.join(model.model_fields)}"
    if error["type"] == "missing":
        return f"{where}: missing required key"
    if error["type"] in ("model_type", "dict_type"):
        return (
            f"{where}: expected a mapping such as {{dataset: alpaca_gpt4, max_examples: 500}}, got {error['input']!r}"
        )
    message = error["msg"].removeprefix("Value error, ")
    shown = "input" in error and error["loc"] and error["type"] != "value_error"
    return f"{where}: {message}" + (f" (got {error['input']!r})" if shown else "")


def load_mixture(path: Path) -> Mixture:
    """Parse and validate a mixture YAML (a list of sources, or a mapping with `sources`)."""
    data = read_yaml(path, "mixture")
    expected = "expected a list of sources ({dataset, max_examples|weight}) or a mapping with a 'sources' list"
    if data is None:
        raise DuskError(f"{path}: the mixture is empty; {expected}")
    if isinstance(data, list):
        data = {"sources": data}
    if not isinstance(data, dict):
        raise DuskError(f"{path}: {expected}, got {type(data).__name__} {data!r:.60}")
    if "sources" not in data:
        raise DuskError(f"{path}: no 'sources' key (found {', '.join(map(str, data))}); {expected}")
    try:
        return Mixture.model_validate(data)
    except ValidationError as exc:
        raise DuskError(f"{path}: invalid mixture: {'; '.join(_problem(e) for e in exc.errors())}") from exc


def _count(source: Source, size: int) -> int:
    if source.max_examples is not None:
        return min(source.max_examples, size)
    if source.weight is not None:
        return round(source.weight * size)
    return size


def sample_indices(size: int, count: int, rng: random.Random) -> list[int]:
    """`count` indices of `size` records: whole shuffled passes, then a shuffled partial pass (no repeats within)."""
    chosen: list[int] = []
    while len(chosen) < count and size:
        order = list(range(size))
        rng.shuffle(order)
        chosen.extend(order[: count - len(chosen)])
    return chosen


def _source_records(source: Source, kind: str, seed: int, stats: dict) -> list[dict]:
    records = load_records(source.dataset, kind=kind)
    stats.update(available=len(records))
    keep = list(range(len(records)))
    if source.max_chars is not None:
        keep = [i for i in keep if len(render_text(records[i])) <= source.max_chars]
        stats["removed_by_max_chars"] = len(records) - len(keep)
    rng = random.Random(f"{seed}:{source.dataset}")
    picked = [keep[i] for i in sample_indices(len(keep), _count(source, len(keep)), rng)]
    stats["selected"] = len(picked)
    return [{**records[i], "provenance": {"dataset": source.dataset, "index": i}} for i in picked]


def _empty_message(stats: dict) -> str:
    reasons = []
    for name, entry in stats.items():
        why = (
            f"max_chars removed all {entry['available']}"
            if entry.get("removed_by_max_chars") == entry["available"]
            else f"{entry['available']} available, {entry['selected']} selected"
        )
        reasons.append(f"{name}: {why}")
    return "mixture is empty after filtering: " + "; ".join(reasons)


def build(mixture: Mixture) -> tuple[list[dict], dict]:
    """The mixed records (shuffled under the seed) and per-source statistics."""
    for source in mixture.sources:  # every name checked before the first (maybe long) load
        check_training_source(source.dataset)
    kind = mixture.kind or _kind_of(mixture.sources[0].dataset)
    records: list[dict] = []
    stats: dict[str, dict] = {}
    for source in mixture.sources:
        entry = stats.setdefault(source.dataset, {})
        records.extend(_source_records(source, kind, mixture.seed, entry))
    if not records:
        raise DuskError(_empty_message(stats))
    random.Random(mixture.seed).shuffle(records)
    return records, stats


def _kind_of(dataset: str) -> str:
    from dusk.data.registry import DATASETS, convert_rows, load_raw

    if dataset in DATASETS:
        return DATASETS[dataset].kind
    return convert_rows(load_raw(dataset)[:1], dataset)[0]


def token_counts(records: list[dict], tokenizer, template: str = "alpaca") -> dict[str, int]:
    """Tokens per source dataset of each record rendered with `template` (no special tokens added)."""
    counts: dict[str, int] = {}
    texts = [render_text(record, template, tokenizer) for record in records]
    for start in range(0, len(texts), 512):
        encoded = tokenizer(texts[start : start + 512], add_special_tokens=False)["input_ids"]
        for record, ids in zip(records[start : start + 512], encoded, strict=True):
            name = record["provenance"]["dataset"]
            counts[name] = counts.get(name, 0) + len(ids)
    return counts


def write_mixture(records: list[dict], out: Path) -> Path:
    """Write records as JSONL atomically (nothing is left behind on failure)."""
    with atomic_output_file(out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return out


def summary(stats: dict, tokens: dict[str, int] | None = None) -> str:
    """Counts per source (and tokens when counted) as a small table."""
    lines = [f"{'dataset':<28} {'available':>9} {'selected':>9}" + (f" {'tokens':>11}" if tokens else "")]
    for name, entry in stats.items():
        line = f"{name:<28} {entry['available']:>9} {entry['selected']:>9}"
        lines.append(line + (f" {tokens.get(name, 0):>11}" if tokens else ""))
    total = sum(entry["selected"] for entry in stats.values())
    lines.append(f"{'TOTAL':<28} {'':>9} {total:>9}" + (f" {sum(tokens.values()):>11}" if tokens else ""))
    return "\n".join(lines)
