"""The six Open LLM Leaderboard v1 tasks (H6), spelled once: every module takes from here the names it needs.

A benchmark has two names: its data folder under DUSK_DATA_DIR (`truthfulqa`) and the evaluation task that scores it
(`truthfulqa_mc2`); the table gives both, with the headline metric and the column title the reports print.

    python -c "from dusk.h6 import H6_TASKS; print(H6_TASKS)"
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Benchmark:
    """One of the six: where its data lives, which task scores it, its headline metric and its column title."""

    dataset: str  # the data folder (DUSK_DATA_DIR/<dataset>) and the decontamination/contamination name
    task: str  # the `dusk eval` task (or task group: mmlu) and the results store's task name
    metric: str  # the metric H6 averages
    title: str  # the column title in tables


H6 = (
    Benchmark("arc_challenge", "arc_challenge", "acc_norm", "ARC"),
    Benchmark("hellaswag", "hellaswag", "acc_norm", "HellaSwag"),
    Benchmark("mmlu", "mmlu", "acc", "MMLU"),
    Benchmark("truthfulqa", "truthfulqa_mc2", "mc2", "TruthfulQA"),
    Benchmark("winogrande", "winogrande", "acc", "Winogrande"),
    Benchmark("gsm8k", "gsm8k", "exact_match", "GSM8K"),
)
H6_DATASETS = tuple(benchmark.dataset for benchmark in H6)
H6_TASKS = tuple(benchmark.task for benchmark in H6)
DATASET_OF_TASK = {benchmark.task: benchmark.dataset for benchmark in H6}
HEADLINE_METRIC = {benchmark.task: benchmark.metric for benchmark in H6}
TITLE_OF_TASK = {benchmark.task: benchmark.title for benchmark in H6}
