"""Where the trainers get their records: the one small adapter between `--data` and the data layer (dusk.data).

The trainers consume plain records of three kinds, with prompts already rendered into model text:
  text         {"text": str}                                     (continued pretraining)
  instruction  {"prompt": str, "response": str}                  (SFT)
  preference   {"prompt": str, "chosen": str, "rejected": str}   (DPO, sDPO)

`load_records(data_arg, kind, template, tokenizer)`:
1. reads normalized records: through `dusk.data.registry.load_records` (a dataset name such as `alpaca_gpt4`, or
   a JSON/JSONL/TSV/text file in any format it detects) or `dusk.data.mixture` (a mixture `.yaml`);
2. renders prompts with `template` (`dusk.data.templates`: `alpaca` = `### User:\n{prompt}\n\n### Assistant:\n`,
   `stanford_alpaca`, `chat` = the model's chat template), or `none` when the prompts already are model text.

    python -c "from dusk.train.data_source import load_records; print(load_records('alpaca_gpt4', 'instruction')[0])"
"""

from pathlib import Path
from typing import Literal

from dusk.errors import DuskError

Kind = Literal["text", "instruction", "preference"]
FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "instruction": ("prompt", "response"),
    "preference": ("prompt", "chosen", "rejected"),
}


def load_records(
    data_arg: str,
    kind: Kind,
    template: str = "none",
    tokenizer=None,
    split: str | None = None,
    data_kind: str | None = None,
) -> list[dict]:
    """Records of `kind` from a dataset name, a file or a mixture YAML, prompts rendered with `template`; `split` and
    `data_kind` as --split and --data-kind state how to read a hub dataset or a file."""
    records = _normalized(data_arg, kind, split, data_kind)
    records = [_checked(record, kind, data_arg, i) for i, record in enumerate(records)]
    if kind == "text" or template == "none":
        return records
    return [_rendered(record, kind, template, tokenizer) for record in records]


def _normalized(data_arg: str, kind: Kind, split: str | None = None, data_kind: str | None = None) -> list[dict]:
    """Records of a mixture YAML, a dataset name or a file, through the data layer (dusk.data)."""
    from dusk.data.mixture import build, load_mixture
    from dusk.data.registry import load_records as registry_records

    if Path(data_arg).expanduser().suffix in (".yaml", ".yml"):
        records, _stats = build(load_mixture(Path(data_arg).expanduser()).model_copy(update={"kind": kind}))
        return records
    return registry_records(data_arg, kind=kind, split=split, data_kind=data_kind)


def _rendered(record: dict, kind: Kind, template: str, tokenizer) -> dict:
    from dusk.data.templates import render, render_preference

    if kind == "instruction":
        prompt, response = render(record, template, tokenizer)
        return {"prompt": prompt, "response": response}
    prompt, chosen, rejected = render_preference(record, template, tokenizer)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _checked(record: object, kind: Kind, source: str, index: int) -> dict:
    """The record, if it is a mapping with the kind's string fields."""
    if not isinstance(record, dict):
        raise DuskError(f"{source}: record {index} is a {type(record).__name__}, expected a {kind} record object")
    missing = [name for name in FIELDS[kind] if not isinstance(record.get(name), str)]
    if missing:
        raise DuskError(
            f"{source}: record {index} lacks string field(s) {', '.join(missing)} of a {kind} record "
            f"({', '.join(FIELDS[kind])}); it has {', '.join(record) or 'no fields'}"
        )
    return record
