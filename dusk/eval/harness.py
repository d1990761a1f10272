"""Evaluate tasks with an engine: build each item's requests (prompt + few-shot), score them, aggregate (MMLU, H6).

DUSK_DATA_DIR=../shared/data dusk eval smollm2-135m --tasks arc_challenge --limit 10
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

from dusk.data.benchmarks import load_docs
from dusk.errors import DuskError
from dusk.eval import metrics
from dusk.eval.chat import ChatPrompts
from dusk.eval.fewshot import plan_fewshot
from dusk.eval.requests import GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult
from dusk.eval.subsets import subset_ids
from dusk.eval.tasks import Task, get_task
from dusk.eval.tasks.base import Mode, generation_request, loglikelihood_requests
from dusk.eval.tasks.mmlu import CATEGORY_OF
from dusk.h6 import H6_TASKS as H6
from dusk.h6 import HEADLINE_METRIC


@dataclass(frozen=True)
class Selection:
    """Which items of each task to score."""

    limit: int | None = None  # the first N items per task (per MMLU subject; leaderboard mode: of its shuffle);
    # with a subset: a seeded N of the subset's items per task (MMLU: N over all its subjects)
    subset: str | None = None  # a named subset (`tiny`): fixed doc ids per task


@dataclass
class EvalItem:
    """One scored item: its requests and, after scoring, what the model did."""

    doc_id: int
    doc: dict
    requests: list  # LoglikelihoodRequest per choice, or one GenerationRequest
    results: list = field(default_factory=list)  # LoglikelihoodResult per choice, or [generated text]
    scores: dict[str, float] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # prediction, gold, extracted answers ...


@dataclass
class TaskRun:
    """A task's items and its aggregated metrics."""

    task: Task
    items: list[EvalItem]
    values: dict[str, float] = field(default_factory=dict)
    stderrs: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Aggregate:
    """A group score (MMLU) or H6."""

    name: str
    metric: str
    value: float
    stderr: float | None
    n: int
    parts: list[str]


def _selected_ids(task: Task, selection: Selection) -> list[int] | None:
    return subset_ids(selection.subset, task.name, selection.limit) if selection.subset else None


def prepare_task(
    task: Task, mode: Mode, selection: Selection, max_new_tokens: int = 256, chat: ChatPrompts | None = None
) -> list[EvalItem]:
    """Read the task's docs, draw its shots as the mode's harness does, and build every item's requests (plain text,
    or with `chat` through a chat template / system instruction: the draws are the same)."""
    ids = _selected_ids(task, selection)
    if ids == []:
        return []
    docs = task.process(load_docs(task.dataset, task.split))
    pool = docs if task.fewshot_split is None else task.process(load_docs(task.dataset, task.fewshot_split))
    if ids is not None and max(ids) >= len(docs):
        raise DuskError(f"subset {selection.subset!r}: doc id {max(ids)} is past the {len(docs)} items of {task.name}")
    items = []
    for index, shot_ids in plan_fewshot(task, mode, docs, pool, selection.limit, ids):
        shots = [pool[j] for j in shot_ids]
        doc = docs[index]
        if chat is not None and not chat.plain:
            requests: list = (
                [chat.generation_request(task, doc, shots, mode, max_new_tokens)]
                if task.output == "generate"
                else chat.loglikelihood_requests(task, doc, shots)
            )
        elif task.output == "generate":
            requests = [generation_request(task, doc, shots, mode, max_new_tokens)]
        else:
            requests = loglikelihood_requests(task, doc, shots)
        items.append(EvalItem(index, doc, requests))
    return items


def score_item(task: Task, mode: Mode, item: EvalItem) -> None:
    """Per-item metrics from the engine's results (fills item.scores and item.extra)."""
    doc = item.doc
    if task.output == "generate":
        text = item.results[0]
        if mode == "leaderboard":
            extracted, correct = metrics.leaderboard_gsm8k(text, task.target(doc))
            item.scores = {"exact_match": correct}
            item.extra = {"generation": text, "extracted": extracted, "gold": task.target(doc)}
            return
        strict, flexible = metrics.strict_extract(text), metrics.flexible_extract(text)
        item.scores = {
            "exact_match": metrics.exact_match(strict, task.target(doc)),
            "exact_match_flexible": metrics.exact_match(flexible, task.target(doc)),
        }
        item.extra = {"generation": text, "extracted": strict, "extracted_flexible": flexible, "gold": task.target(doc)}
        return
    logprobs = [result.logprob for result in item.results]
    gold = task.gold(doc)
    if "mc2" in task.metrics:
        labels = doc["mc2_targets"]["labels"]
        item.scores = {"mc2": metrics.mc2(logprobs, labels)}
        item.extra = {"prediction": metrics.argmax(logprobs), "gold": [i for i, label in enumerate(labels) if label]}
        return
    choices = task.choices(doc)
    item.extra = {"prediction": metrics.argmax(logprobs), "gold": gold}
    if task.output == "partial":  # Winogrande: the choices sit in the contexts; only acc is reported
        item.scores = {"acc": float(item.extra["prediction"] == gold)}
        return
    scores = metrics.choice_scores(logprobs, choices, gold)
    item.scores = {name: scores[name] for name in task.metrics}
    normed = [lp / len(choice) for lp, choice in zip(logprobs, choices, strict=True)]
    item.extra["prediction_norm"] = metrics.argmax(normed)


def reported_metrics(run: TaskRun) -> list[str]:
    """The task's metrics that its items were scored on in this mode (leaderboard GSM8K has no flexible match)."""
    return [name for name in run.task.metrics if all(name in item.scores for item in run.items)]


def aggregate_task(run: TaskRun) -> None:
    for name in reported_metrics(run):
        values = [item.scores[name] for item in run.items]
        run.values[name] = metrics.mean(values)
        run.stderrs[name] = metrics.mean_stderr(values)


def run_engine(engine, runs: Sequence[TaskRun]) -> None:
    """Send every request of every task to the engine in one call per kind (the engine batches and shares)."""
    run_engine_items(engine, [item for run in runs for item in run.items])


def run_engine_items(engine, items: Sequence[EvalItem], progress: bool = True) -> None:
    """Fill each item's results: all log-likelihood requests in one engine call, all generations in another."""
    ll_requests = [r for item in items for r in item.requests if isinstance(r, LoglikelihoodRequest)]
    gen_requests = [r for item in items for r in item.requests if isinstance(r, GenerationRequest)]
    ll_results: list[LoglikelihoodResult] = list(engine.loglikelihood(ll_requests, progress)) if ll_requests else []
    gen_results: list[str] = list(engine.generate(gen_requests, progress)) if gen_requests else []
    ll_iter, gen_iter = iter(ll_results), iter(gen_results)
    for item in items:
        source = gen_iter if isinstance(item.requests[0], GenerationRequest) else ll_iter
        item.results = [next(source) for _ in item.requests]


def prepare_runs(
    task_names: Sequence[str],
    mode: Mode,
    selection: Selection,
    max_new_tokens: int = 256,
    chat: ChatPrompts | None = None,
) -> list[TaskRun]:
    """Read every task's data and build its requests (names already expanded); tasks with no items are left out."""
    tasks = list(map(get_task, task_names))
    runs = [TaskRun(task, prepare_task(task, mode, selection, max_new_tokens, chat)) for task in tasks]
    runs = [run for run in runs if run.items]
    if not runs:
        raise DuskError("no items to evaluate: the subset or limit selected nothing from these tasks")
    return runs


def score_runs(engine, runs: Sequence[TaskRun], mode: Mode) -> None:
    """Send the prepared requests to the engine, then score every item and aggregate every task."""
    run_engine(engine, runs)
    finish_runs(runs, mode)


def finish_runs(runs: Sequence[TaskRun], mode: Mode) -> None:
    """Score every item from its results and aggregate every task."""
    for run in runs:
        for item in run.items:
            score_item(run.task, mode, item)
        aggregate_task(run)


def evaluate(
    engine,
    task_names: Sequence[str],
    mode: Mode,
    selection: Selection,
    max_new_tokens: int = 256,
    chat: ChatPrompts | None = None,
) -> list[TaskRun]:
    """Prepare, score and aggregate each task (names already expanded from groups); tasks with no items are left out."""
    runs = prepare_runs(task_names, mode, selection, max_new_tokens, chat)
    score_runs(engine, runs, mode)
    return runs


def category_pooled_stderr(subjects: Sequence[str], stderrs: Sequence[float], sizes: Sequence[int]) -> float | None:
    """lm-eval 0.4.x's MMLU stderr: pooled over the subjects of each category, then over the categories."""
    by_category: dict[str, tuple[list[float], list[int]]] = {}
    for subject, stderr, size in zip(subjects, stderrs, sizes, strict=True):
        category_stderrs, category_sizes = by_category.setdefault(CATEGORY_OF[subject], ([], []))
        category_stderrs.append(stderr)
        category_sizes.append(size)
    pooled = [metrics.pooled_stderr(*parts) for parts in by_category.values()]
    if any(stderr is None for stderr in pooled):
        return None
    return metrics.pooled_stderr(pooled, [sum(parts[1]) for parts in by_category.values()])


def mmlu_aggregate(runs: Sequence[TaskRun], mode: Mode) -> Aggregate | None:
    """MMLU's headline: question-weighted mean of its subjects (harness) or their plain mean (leaderboard)."""
    subjects = [run for run in runs if run.task.group == "mmlu"]
    if not subjects:
        return None
    values = [run.values["acc"] for run in subjects]
    sizes = [len(run.items) for run in subjects]
    stderrs = [run.stderrs["acc"] or 0.0 for run in subjects]
    if mode == "harness":
        value = sum(v * n for v, n in zip(values, sizes, strict=True)) / sum(sizes)
        stderr = category_pooled_stderr([run.task.name.removeprefix("mmlu_") for run in subjects], stderrs, sizes)
        if stderr is None:  # a subject of one item: lm-eval's pooled formula is undefined, take the items as one sample
            stderr = metrics.mean_stderr([item.scores["acc"] for run in subjects for item in run.items])
    else:
        value, stderr = metrics.mean(values), metrics.unweighted_stderr(stderrs)
    return Aggregate("mmlu", "acc", value, stderr, sum(sizes), [run.task.name for run in subjects])


def h6_aggregate(runs: Sequence[TaskRun], mmlu: Aggregate | None) -> Aggregate | None:
    """The plain mean of the six headline scores, when all six ran. Its stderr is sqrt(sum se_i^2) / 6, the six
    tasks being independent samples (None when a task has none: fewer than 2 items)."""
    by_name = {run.task.name: run for run in runs}
    scores: dict[str, float] = {}
    stderrs: dict[str, float | None] = {}
    for name in H6:
        if name == "mmlu":
            if mmlu is None:
                return None
            scores[name], stderrs[name] = mmlu.value, mmlu.stderr
        elif name in by_name:
            metric = HEADLINE_METRIC[name]
            scores[name], stderrs[name] = by_name[name].values[metric], by_name[name].stderrs.get(metric)
        else:
            return None
    known = [se for se in stderrs.values() if se is not None]
    stderr = metrics.unweighted_stderr(known) if len(known) == len(H6) else None
    n = sum(len(run.items) for run in runs if run.task.name in H6 or run.task.group == "mmlu")
    return Aggregate("h6", "mean", metrics.mean(list(scores.values())), stderr, n, list(H6))
