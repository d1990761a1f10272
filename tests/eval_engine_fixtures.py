"""Test helpers for the eval engine: a tiny Llama with peaked (varied) predictions and realistic request mixes."""

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from dusk.eval.requests import GenerationRequest, LoglikelihoodRequest

WORDS = (
    "the quick brown fox jumps over lazy dog water boils at sea level sun star moon earth question answer "
    "plants need light people walk store bread milk eggs rain ground wet trophy suitcase small"
).split()
LETTERS = (" A", " B", " C", " D")


def sharp_tiny_llama(tokenizer_dir: Path, dtype: torch.dtype = torch.float32):
    """(model, tokenizer): the tiny Llama initialised with a large range, so its generations vary with the prompt
    instead of repeating one character (a test that compares generations must be able to fail)."""
    from transformers import AutoModelForCausalLM

    from dusk.models.io import load_tokenizer
    from dusk.models.tiny import tiny_config

    tokenizer = load_tokenizer(tokenizer_dir)
    config = tiny_config("llama", len(tokenizer))
    config.initializer_range = 0.3
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).to(dtype).eval()
    return model, tokenizer


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and do not suffer when other jobs share the cores)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def mmlu_like(rng: random.Random, subjects: int = 2, questions: int = 5) -> list[LoglikelihoodRequest]:
    """Per subject a 5-shot prefix shared by all its questions; 4 one-token choices per question."""
    requests = []
    for subject in range(subjects):
        prefix = f"The following are multiple choice questions (with answers) about topic {subject}.\n\n"
        prefix += "".join(
            f"{sentence(rng, 4, 9)}\nA. x\nB. y\nC. z\nD. w\nAnswer:{rng.choice(LETTERS)}\n\n" for _ in range(5)
        )
        for _ in range(questions):
            context = prefix + f"{sentence(rng, 2, 14)}\nA. {sentence(rng, 1, 3)}\nB. no\nC. yes\nD. maybe\nAnswer:"
            requests += [LoglikelihoodRequest(context, letter) for letter in LETTERS]
    return requests


def mixed_workload(rng: random.Random) -> list[LoglikelihoodRequest]:
    """MMLU-like items plus ARC-like (multi-token choices, no shared prefix), Winogrande-like (different contexts,
    one shared continuation), an empty context, a trailing-space context, duplicates, and a context that is a
    prefix of another request's context."""
    requests = mmlu_like(rng)
    for _ in range(3):
        context = f"Question: {sentence(rng, 3, 12)}\nAnswer:"
        requests += [LoglikelihoodRequest(context, " " + sentence(rng, 1, 5)) for _ in range(4)]
    stem, rest = sentence(rng, 4, 8), " " + sentence(rng, 3, 6)
    requests += [LoglikelihoodRequest(f"{stem} {option}", rest) for option in ("the dog", "the sun")]
    requests += [
        LoglikelihoodRequest("", "hello world"),
        LoglikelihoodRequest("Answer: ", "water"),
        LoglikelihoodRequest("Question: water", " boils"),
        LoglikelihoodRequest("Question: water boils", " at sea level"),
    ]
    return requests + requests[:3]


def generation_workload(rng: random.Random) -> list[GenerationRequest]:
    """GSM8K-like: a shared few-shot prefix, questions of varied length, a few stop sets and lengths."""
    prefix = "".join(f"Question: {sentence(rng, 3, 8)}\nAnswer: {sentence(rng, 2, 5)}\n\n" for _ in range(3))
    stops = [("Question:",), ("\n\n", "the"), (), ("e",)]
    return [
        GenerationRequest(prefix + f"Question: {sentence(rng, 1, 10)}\nAnswer:", stops[i % 4], 6 + 5 * (i % 3))
        for i in range(7)
    ] + [GenerationRequest(f"The {sentence(rng, 1, 3)}", ("s",), 12)]
