"""dusk's eval engine vs lm-evaluation-harness 0.4.13's HFLM on the same MMLU-style log-likelihood requests.

SmolLM2-135M in fp32; the requests are 5-shot MMLU prompts (first 5 dev items, lm-eval's format) for the first
questions of two subjects, 4 choices each, read from $DUSK_DATA_DIR/mmlu with the csv module. Both run in this
process, one after the other (interleaved, `--repeats` times; the fastest run counts), on the same model: wall and
CPU time of each, the ratio, dusk's token efficiency, the largest log-likelihood difference and the count of
questions whose argmax choice differs (must be 0).
Target: dusk >= 3x faster than HFLM.

    DUSK_DATA_DIR=/work/shared/data .venv/bin/python bench/eval_engine.py [--questions 13] [--threads 1]
"""

import argparse
import csv
import os
import time
from pathlib import Path

import torch

from dusk.eval.engine import Engine
from dusk.eval.requests import LoglikelihoodRequest
from dusk.models.io import load_model, load_tokenizer, resolve_model

SUBJECTS = ("anatomy", "college_physics")
LETTERS = ("A", "B", "C", "D")


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [row for row in csv.reader(handle) if row]


def question_text(row: list[str]) -> str:
    options = "".join(f"{letter}. {choice}\n" for letter, choice in zip(LETTERS, row[1:5], strict=True))
    return f"{row[0].strip()}\n{options}Answer:"


def subject_requests(data: Path, subject: str, n_questions: int) -> list[LoglikelihoodRequest]:
    """4 requests (` A`..` D`) per test question, each context = description + 5 dev shots + the question."""
    shots = read_rows(data / "mmlu" / "dev" / f"{subject}_dev.csv")[:5]
    description = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
    prefix = description + "".join(f"{question_text(row)} {row[5]}\n\n" for row in shots)
    questions = read_rows(data / "mmlu" / "test" / f"{subject}_test.csv")[:n_questions]
    return [LoglikelihoodRequest(prefix + question_text(row), f" {letter}") for row in questions for letter in LETTERS]


def argmax_per_question(logprobs: list[float]) -> list[int]:
    return [max(range(4), key=lambda j: logprobs[i + j]) for i in range(0, len(logprobs), 4)]


class Timer:
    """Wall time and this process's CPU time (the machine may be shared: CPU time is the steadier figure)."""

    def __enter__(self) -> "Timer":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    @staticmethod
    def best(timers: list["Timer"]) -> "Timer":
        """The lowest wall time and the lowest CPU time over repeated runs."""
        best = Timer()
        best.wall, best.cpu = min(t.wall for t in timers), min(t.cpu for t in timers)
        return best


def run_dusk(model, tokenizer, requests, batch_size: int) -> tuple[Timer, list[float], Engine]:
    engine = Engine(model, tokenizer, batch_size=batch_size)
    with Timer() as timer:
        results = engine.loglikelihood(requests, progress=False)
    return timer, [r.logprob for r in results], engine


def run_hflm(model, tokenizer, requests, batch_size: int) -> tuple[Timer, list[float]]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device="cpu")
    instances = [Instance("loglikelihood", {}, (r.context, r.continuation), idx=i) for i, r in enumerate(requests)]
    with Timer() as timer:
        results = lm.loglikelihood(instances, disable_tqdm=True)
    return timer, [float(logprob) for logprob, _ in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=13, help="test questions per subject (4 requests each)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of both tools")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for both tools (0 = torch's default)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each tool; the fastest counts")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(os.environ.get("DUSK_DATA_DIR", "/work/shared/data"))
    model_dir = resolve_model("smollm2-135m")
    model, tokenizer = load_model(model_dir, dtype="float32"), load_tokenizer(model_dir)
    requests = [r for subject in SUBJECTS for r in subject_requests(data, subject, args.questions)]
    questions = f"{len(requests) // 4} questions of {', '.join(SUBJECTS)}"
    print(f"{len(requests)} requests ({questions}), {torch.get_num_threads()} threads")
    runs = []
    for _ in range(args.repeats):  # interleaved; the fastest run of each tool counts (the machine may be shared)
        runs.append(
            (
                run_dusk(model, tokenizer, requests, args.batch_size),
                run_hflm(model, tokenizer, requests, args.batch_size),
            )
        )
    (_, ours, engine), (_, theirs) = runs[0]
    dusk = Timer.best([run[0][0] for run in runs])
    hflm = Timer.best([run[1][0] for run in runs])
    stats = engine.stats
    differing = sum(a != b for a, b in zip(argmax_per_question(ours), argmax_per_question(theirs), strict=True))
    print(f"dusk engine : {dusk.wall:8.2f} s wall {dusk.cpu:8.2f} s CPU  ({stats.tokens_forwarded} tokens forwarded)")
    print(f"lm-eval HFLM: {hflm.wall:8.2f} s wall {hflm.cpu:8.2f} s CPU")
    print(f"speed-up    : {hflm.wall / dusk.wall:8.2f} x wall {hflm.cpu / dusk.cpu:8.2f} x CPU")
    print(f"token efficiency: {stats.token_efficiency:.3f} (minimum {stats.tokens_minimum} tokens)")
    print(f"max |log-likelihood difference|: {max(abs(a - b) for a, b in zip(ours, theirs, strict=True)):.2e}")
    print(f"questions whose argmax choice differs: {differing}")


if __name__ == "__main__":
    main()
