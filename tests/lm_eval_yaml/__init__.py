"""lm-evaluation-harness task YAMLs that read the local benchmark files, so lm-eval and dusk score the same items.

Each YAML `include:`s lm-eval's own installed task config (prompts, choices, metrics, filters unchanged) and
overrides only where the data comes from (`dataset_path: json`, `data_files` on this machine) and the shot count
(the leaderboard's). Files already in the Hugging Face shape (Winogrande, GSM8K) are read in place; the others are
written as JSON Lines next to the YAMLs in that shape (HellaSwag as `activity_label`/`ctx_a`/`ctx_b=""`/`endings`,
so lm-eval's own `process_docs` cleans it). Paths are machine-local, so the YAMLs are generated, not shipped.

    cd tests && DUSK_DATA_DIR=../../shared/data python -m lm_eval_yaml /tmp/lmt gsm8k
    lm-eval --model hf --model_args pretrained=DIR --include_path /tmp/lmt --tasks dusk_gsm8k --limit 5
"""

import json
from pathlib import Path

import yaml

from dusk.data.benchmarks import WINOGRANDE_FILES, load_docs
from dusk.data.paths import data_file
from dusk.errors import DuskError
from dusk.eval.tasks import get_task

PREFIX = "dusk_"


def lm_eval_task_dir() -> Path:
    """The installed lm_eval/tasks folder."""
    try:
        import lm_eval
    except ImportError as exc:
        raise DuskError("lm-eval is not installed (pip install lm-eval==0.4.13)") from exc
    return Path(lm_eval.__file__).parent / "tasks"


def _write_jsonl(path: Path, docs: list[dict]) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        for doc in docs:
            handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return str(path)


def _hellaswag_hf(doc: dict) -> dict:
    label, _, ctx = doc["query"].partition(": ")
    return {"activity_label": label, "ctx_a": ctx, "ctx_b": "", "endings": doc["choices"], "label": str(doc["label"])}


def _spec(name: str, out: Path) -> tuple[str, dict]:
    """(included lm-eval YAML relative to lm_eval/tasks, overrides) for one dusk task."""
    if name == "arc_challenge" or name == "arc_easy":
        files = {s: _write_jsonl(out / f"{name}_{s}.jsonl", load_docs(name, s)) for s in ("train", "test")}
        return f"arc/{name}.yaml", {"data_files": files}
    if name == "hellaswag":
        docs = [_hellaswag_hf(d) for d in load_docs("hellaswag", "validation")]
        files = {"validation": _write_jsonl(out / "hellaswag_validation.jsonl", docs)}
        return "hellaswag/hellaswag.yaml", {"data_files": files, "training_split": None}
    if name == "truthfulqa_mc2":
        files = {"validation": _write_jsonl(out / "truthfulqa_validation.jsonl", load_docs("truthfulqa", "validation"))}
        return "truthfulqa/truthfulqa_mc2.yaml", {"data_files": files}
    if name == "winogrande":
        files = {
            "train": str(data_file("winogrande", f"{WINOGRANDE_FILES['train']}.jsonl")),
            "validation": str(data_file("winogrande", "dev.jsonl")),
        }
        return "winogrande/default.yaml", {"data_files": files}
    if name == "gsm8k":
        files = {s: str(data_file("gsm8k", f"{s}.jsonl")) for s in ("train", "test")}
        return "gsm8k/gsm8k.yaml", {"data_files": files}
    if name.startswith("mmlu_"):
        files = {s: _write_jsonl(out / f"{name}_{s}.jsonl", load_docs(name, s)) for s in ("dev", "test")}
        return f"mmlu/default/{name}.yaml", {"data_files": files}
    raise DuskError(f"no lm-eval YAML for task {name!r}")


def write_lm_eval_tasks(out_dir: str | Path, tasks: list[str]) -> dict[str, str]:
    """Write one YAML (and its data files) per dusk task into `out_dir`; return dusk name -> lm-eval task name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = {}
    for name in tasks:
        included, overrides = _spec(name, out)
        config = {
            "include": str(lm_eval_task_dir() / included),
            "task": PREFIX + name,
            "tag": [],
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": overrides.pop("data_files")},
            "num_fewshot": get_task(name).num_fewshot,
            **overrides,
        }
        (out / f"{PREFIX}{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        names[name] = PREFIX + name
    return names
