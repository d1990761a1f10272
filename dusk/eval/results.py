"""Write an evaluation's results: `results.json` (scores, stderr, n, H6, and every setting that produced them) and
`samples_<task>.jsonl` (one line per item: prompt, per-choice log-likelihoods, prediction, gold, metric values).

    dusk eval smollm2-135m --tasks gsm8k --limit 5 --out runs/eval-gsm8k && head -c 600 runs/eval-gsm8k/results.json
"""

import json
from pathlib import Path

from dusk import __version__
from dusk.data.benchmarks import source_file
from dusk.eval.fewshot import HARNESS_FEWSHOT_SEED, LEADERBOARD_SEED
from dusk.eval.harness import Aggregate, EvalItem, TaskRun
from dusk.eval.requests import GenerationRequest
from dusk.hashing import sha256_file
from dusk.run_output import RESULTS, samples_name, write_run_files


def data_hashes(runs: list[TaskRun]) -> dict[str, str]:
    """sha256 of every data file the runs read (scored and few-shot splits)."""
    files = set()
    for run in runs:
        task = run.task
        files.add(source_file(task.dataset, task.split))
        if task.fewshot_split and task.num_fewshot:
            files.add(source_file(task.dataset, task.fewshot_split))
    return {str(path): sha256_file(path) for path in sorted(files)}


def seeds(mode: str) -> dict[str, int | None]:
    if mode == "harness":
        return {"random_seed": 0, "numpy_seed": 1234, "torch_seed": 1234, "fewshot_seed": HARNESS_FEWSHOT_SEED}
    return {"shuffle_and_fewshot_seed": LEADERBOARD_SEED}


def results_document(runs: list[TaskRun], aggregates: list[Aggregate], settings: dict) -> dict:
    tasks = {}
    for run in runs:
        tasks[run.task.name] = {
            "metrics": {name: {"value": value, "stderr": run.stderrs[name]} for name, value in run.values.items()},
            "headline": run.task.headline,
            "n": len(run.items),
            "num_fewshot": run.task.num_fewshot,
            "split": run.task.split,
            "fewshot_split": run.task.fewshot_split or run.task.split,
        }
    groups = {
        a.name: {"metric": a.metric, "value": a.value, "stderr": a.stderr, "n": a.n, "parts": a.parts}
        for a in aggregates
    }
    return {"tasks": tasks, "groups": groups, "settings": {**settings, "dusk_version": __version__}}


def sample_line(item: EvalItem) -> dict:
    first = item.requests[0]
    line = {"doc_id": item.doc_id, "prompt": first.context}
    if isinstance(first, GenerationRequest):
        line["stop"] = list(first.stop)
    else:
        line["continuations"] = [request.continuation for request in item.requests]
        line["logprobs"] = [result.logprob for result in item.results]
        line["is_greedy"] = [result.is_greedy for result in item.results]
    return {**line, **item.extra, "metrics": item.scores}


def write_results(out: Path, runs: list[TaskRun], aggregates: list[Aggregate], settings: dict) -> Path:
    """Write results.json and one samples file per task into `out` (dropping an earlier run's samples files of
    other tasks); return the results.json path."""
    files = {
        samples_name(run.task.name): "".join(
            json.dumps(sample_line(item), ensure_ascii=False) + "\n" for item in run.items
        )
        for run in runs
    }
    document = results_document(runs, aggregates, {**settings, "seeds": seeds(settings["mode"])})
    document["settings"]["data_files"] = data_hashes(runs)
    files[RESULTS] = json.dumps(document, indent=2) + "\n"
    return write_run_files(out, files, "eval")
