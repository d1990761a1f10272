"""The body of a dusk model card: what was done, from what, with which data, and how to do it again (Markdown).

    python -c "from dusk.cards.card import render_card; from dusk.cards.provenance import read_provenance as r; \
print(render_card(r('runs/dus'), None, 'runs/dus'))"
"""

import json
import math
from pathlib import Path

from dusk import __version__
from dusk.cards.provenance import Provenance
from dusk.cards.rebuild import Rebuild

STAGE_TEXT = {
    "upscale": "Depth Up-Scaling (SOLAR): layer ranges of the parent stacked into a deeper model",
    "merge": "a merge of the parents' weights",
    "pretrain": "continued pretraining of the parent",
    "sft": "supervised fine-tuning of the parent",
    "dpo": "DPO (direct preference optimization) of the parent",
    "sdpo": "staged DPO (sDPO) of the parent",
}


def h6_scores(document: dict) -> list[tuple[object, float]]:
    """(benchmark, score) for each H6 benchmark the results hold, in H6 order."""
    from dusk.h6 import H6

    scores = []
    for benchmark in H6:
        task = document.get("tasks", {}).get(benchmark.task, {})
        value = task.get("metrics", {}).get(benchmark.metric, {}).get("value")
        group = document.get("groups", {}).get(benchmark.task, {})
        value = group.get("value") if value is None and group.get("metric") == benchmark.metric else value
        if isinstance(value, int | float) and math.isfinite(value):
            scores.append((benchmark, float(value)))
    return scores


def body(prov: Provenance, results: dict | None, name: str, again: Rebuild) -> str:
    what = STAGE_TEXT.get(prov.stage, prov.stage)
    title = Path(name).name or name
    parts = [f"# {title}\n", f"Made by dusk {__version__} into `{name}`, stage `{prov.stage}`: {what}.\n"]
    parts.append(_parents(prov))
    if prov.stage == "upscale":
        parts.append(_slices(prov.record))
    if prov.stage == "merge":
        parts.append(_merge(prov.record))
    if prov.data:
        parts.append(_data(prov))
    if prov.stage not in ("upscale", "merge"):
        parts.append(_training(prov))
    if results:
        parts.append(_results(results))
    parts.append(_rebuild(again))
    return "\n".join(parts)


def _parents(prov: Provenance) -> str:
    rows = "".join(f"| `{parent.name}` | `{parent.sha256}` |\n" for parent in prov.parents)
    return (
        "## Parents\n\n(sha256 over each parent's `*.safetensors` files: relative name and file hash, sorted)\n\n"
        f"| model | sha256 of its weights |\n|---|---|\n{rows}"
    )


def _slices(record: dict) -> str:
    lines = ["## DUS slices\n", f"Method `{record.get('method', 'dus')}`; output layers in order (half-open ranges):\n"]
    for index, item in enumerate(record.get("slices", [])):
        source = item["sources"][0]
        start, end = source["layer_range"]
        lines.append(f"{index + 1}. `{source['model']}` layers [{start}, {end})")
    layers = record.get("layer_sources", [])
    lines.append(f"\n{len(layers)} layers in all.")
    for key in ("expand", "blend", "new_layers", "choice"):
        if record.get(key) is not None:
            lines.append(f"- {key}: `{json.dumps(record[key])}`")
    return "\n".join(lines) + "\n"


def _merge(record: dict) -> str:
    from dusk.cards.provenance import merge_models

    shown = {key: value for key, value in record.items() if key != "layer_sources" and value is not None}
    models = ", ".join(f"`{name}`" for name in merge_models(record))
    return (
        f"## Merge\n\nMethod `{record.get('merge_method')}` (formula: docs/merge.md) of {models}; "
        f"config as dusk ran it:\n\n```json\n{json.dumps(shown, indent=2)}\n```\n"
    )


def _data(prov: Provenance) -> str:
    lines = ["## Data\n", "| data | role | hub id | file | sha256 |", "|---|---|---|---|---|"]
    for source in prov.data:
        files = source.files or {"(not found now)": "-"}
        for path, digest in files.items():
            lines.append(f"| `{source.name}` | {source.role} | {source.hub_id or '-'} | `{path}` | `{digest}` |")
    for source in prov.data:
        if source.decontamination:
            lines.append(_decontamination(source.name, source.decontamination))
    return "\n".join(lines) + "\n"


def _decontamination(name: str, report: dict) -> str:
    total = report.get("total", {})
    dropped = ", ".join(f"{rule} {count}" for rule, count in (total.get("dropped") or {}).items())
    config = report.get("config", {})
    tasks = ", ".join(config.get("tasks", [])) or "none"
    return (
        f"\nDecontamination of `{name}` (dusk data decontaminate, {config.get('n', '?')}-grams against {tasks}): "
        f"{total.get('in', '?')} records in, {total.get('out', '?')} kept; dropped: {dropped or 'none'}."
    )


def _training(prov: Provenance) -> str:
    record = prov.record
    train = [row for row in prov.train_log if row.get("kind", "train") == "train" and "loss" in row]
    evals = [row for row in prov.train_log if row.get("kind") == "eval"]
    lines = ["## Training\n", f"- steps: {record.get('steps')}, tokens: {record.get('tokens')}, "
             f"seconds: {record.get('seconds')}"]  # fmt: skip
    if train:
        low = min(train, key=lambda row: row["loss"])
        lines.append(
            f"- training loss: {_num(train[0]['loss'])} at step {train[0]['step']}, lowest {_num(low['loss'])} at "
            f"step {low['step']}, {_num(train[-1]['loss'])} at step {train[-1]['step']} (last)"
        )
    for row in evals[:1] + evals[-1:] if len(evals) > 1 else evals:
        metrics = ", ".join(f"{k} {_num(v)}" for k, v in row.items() if k not in ("step", "kind"))
        lines.append(f"- held-out at step {row['step']}: {metrics}")
    if record.get("eval") and not evals:
        lines.append(f"- held-out at the end: {', '.join(f'{k} {_num(v)}' for k, v in record['eval'].items())}")
    config = json.dumps(record.get("config", {}), indent=2)
    lines.append(f"\nConfig as dusk ran it:\n\n```json\n{config}\n```")
    return "\n".join(lines) + "\n"


def _num(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) and math.isfinite(value) else str(value)


def _results(results: dict) -> str:
    scores = h6_scores(results)
    lines = ["## Evaluation (H6)\n", "| benchmark | metric | score |", "|---|---|---|"]
    lines += [f"| {b.title} | {b.metric} | {100 * value:.2f} |" for b, value in scores]
    if len(scores) == 6:
        lines.append(f"| **H6 average** | | {100 * sum(v for _b, v in scores) / 6:.2f} |")
    settings = results.get("settings", {})
    how = f"mode {settings.get('mode', '?')}, limit {settings.get('limit')}{prompt_format(settings)}"
    lines.append(f"\nScored by dusk eval ({how}).")
    return "\n".join(lines) + "\n"


def prompt_format(settings: dict) -> str:
    """How an evaluation's prompts were rendered, as a suffix for its settings line: `, chat template (few-shot as
    turns), system instruction "..."`; empty for plain-text prompts (lm-eval's default)."""
    text = ""
    if settings.get("apply_chat_template"):
        shots = "few-shot as turns" if settings.get("fewshot_as_multiturn") else "few-shot in one message"
        text += f", chat template ({shots})"
    instruction = settings.get("system_instruction")
    if instruction is not None:
        shown = instruction if len(instruction) <= 60 else instruction[:57] + "..."
        text += f", system instruction {json.dumps(shown, ensure_ascii=False)}"
    return text


def _rebuild(again: Rebuild) -> str:
    text = "## Rebuild\n\n"
    if again.file_name:
        text += f"With this `{again.file_name}`:\n\n```yaml\n{again.file_text}```\n\n"
    return text + f"```bash\n{again.command}\n```\n"
