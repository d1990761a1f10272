"""Test helpers for the eval tasks: a plain, unbatched scorer (one forward pass per request, lm-eval's tokenization
rule), used to check tasks and the harness independently of dusk's fast engine."""

from pathlib import Path

import pytest
import torch

from dusk.eval.requests import EngineStats, GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult

DATA_DIR = Path("/work/shared/data")


def real_data_dir() -> Path:
    """The benchmark data folder ($DUSK_DATA_DIR, else ../shared/data); skip the test if there is none."""
    import os

    root = Path(os.environ.get("DUSK_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not (root / "gsm8k" / "test.jsonl").is_file():
        pytest.skip(f"benchmark data not found at {root}; set DUSK_DATA_DIR")
    return root


def parse_eval(argv: list[str]):
    """`dusk eval ARGV` parsed by the eval area's own parser (no dispatch): the namespace its handler would get."""
    import argparse

    from dusk.eval import commands

    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    return parser.parse_args(["eval", *argv])


class PlainScorer:
    """Score each request alone: encode context+continuation together, split off the context's tokens."""

    def __init__(self, model, tokenizer) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.stats = EngineStats()

    def _pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.tokenizer.encode(context + continuation)
        n_context = len(self.tokenizer.encode(context))
        return whole[:n_context], whole[n_context:]

    @torch.no_grad()
    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        out = []
        for request in requests:
            context, continuation = self._pair(request.context, request.continuation)
            tokens = torch.tensor([context + continuation])
            logits = self.model(tokens[:, :-1]).logits.float().log_softmax(-1)[0, -len(continuation) :]
            target = torch.tensor(continuation)
            logprob = logits.gather(-1, target[:, None]).sum().item()
            out.append(LoglikelihoodResult(logprob, bool((logits.argmax(-1) == target).all())))
        return out

    @torch.no_grad()
    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        out = []
        for request in requests:
            tokens = self.tokenizer.encode(request.context)
            generated: list[int] = []
            text = ""
            for _ in range(request.max_new_tokens):
                logits = self.model(torch.tensor([tokens + generated])).logits[0, -1]
                generated.append(int(logits.argmax()))
                text = self.tokenizer.decode(generated)
                if generated[-1] == self.tokenizer.eos_token_id or any(s in text for s in request.stop):
                    break
            for stop in request.stop:
                text = text.split(stop)[0]
            out.append(text)
        return out
