"""Run lm-evaluation-harness 0.4.13 and dusk on the same local items and compare them item by item."""

import json
from pathlib import Path

from lm_eval_yaml import write_lm_eval_tasks

from dusk.eval import harness

GAP = 1e-4  # a differing prediction is allowed only when lm-eval's top two log-likelihoods are this close
LL_TOL = 1e-3  # per-choice log-likelihood tolerance


def run_lm_eval(model, tokenizer, tasks: list[str], limit: int, yaml_dir: Path, max_gen_toks: int, batch: int) -> dict:
    """lm-eval's per-task samples (simple_evaluate with HFLM on the model object, tasks from dusk's YAMLs)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    names = write_lm_eval_tasks(yaml_dir, tasks)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch)
    out = simple_evaluate(
        model=lm,
        tasks=list(names.values()),
        task_manager=TaskManager(include_path=str(yaml_dir)),
        limit=limit,
        log_samples=True,
        gen_kwargs=f"max_gen_toks={max_gen_toks}",
    )
    samples = {}
    for name, lm_name in names.items():
        rows = [s for s in out["samples"][lm_name] if s.get("filter") in (None, "none", "strict-match")]
        samples[name] = {s["doc_id"]: s for s in rows}
    return samples


def _contexts(sample: dict) -> list[tuple[str, object]]:
    pairs = []
    for argument in sample["arguments"]:
        values = list(argument.values()) if isinstance(argument, dict) else list(argument)
        pairs.append((values[0], values[1]))
    return pairs


def compare(runs: list[harness.TaskRun], samples: dict) -> list[str]:
    """Every difference between dusk's items and lm-eval's samples (empty = parity)."""
    problems = []
    for run in runs:
        for item in run.items:
            sample = samples[run.task.name].get(item.doc_id)
            where = f"{run.task.name} doc {item.doc_id}"
            if sample is None:
                problems.append(f"{where}: not scored by lm-eval")
                continue
            pairs = _contexts(sample)
            if [p[0] for p in pairs] != [r.context for r in item.requests]:
                problems.append(f"{where}: prompts differ")
                continue
            if run.task.output == "generate":
                if sample["resps"][0][0] != item.results[0]:
                    problems.append(f"{where}: generations differ {sample['resps'][0][0]!r} vs {item.results[0]!r}")
                continue
            problems += _compare_choices(where, run.task, item, [float(r[0][0]) for r in sample["resps"]])
    return problems


def _compare_choices(where: str, task, item: harness.EvalItem, theirs: list[float]) -> list[str]:
    ours = [r.logprob for r in item.results]
    problems = []
    worst = max(abs(a - b) for a, b in zip(ours, theirs, strict=True))
    if worst > LL_TOL:
        problems.append(f"{where}: log-likelihoods differ by {worst:.2e}")
    top = sorted(theirs, reverse=True)
    near_tie = len(top) > 1 and top[0] - top[1] < GAP
    if theirs.index(max(theirs)) != item.extra["prediction"] and not near_tie:
        problems.append(f"{where}: prediction {item.extra['prediction']} vs lm-eval {theirs.index(max(theirs))}")
    return problems


def dump(problems: list[str], path: Path) -> str:
    path.write_text(json.dumps(problems, indent=1))
    return "\n".join(problems[:20])
