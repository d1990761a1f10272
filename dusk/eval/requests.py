"""What tasks ask of a model, and what the engine answers: the contract between `eval/tasks` and `eval/engine`.

Example: `LoglikelihoodRequest(context="Question: 2+2?\\nAnswer:", continuation=" 4")` asks for log p(" 4" | context).
"""

from dataclasses import dataclass

from dusk.errors import DuskError


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score `continuation` given `context` (tokenized together, as lm-evaluation-harness does)."""

    context: str
    continuation: str


@dataclass(frozen=True)
class LoglikelihoodResult:
    """Summed log-probability of the continuation's tokens, and whether greedy decoding would produce them all."""

    logprob: float
    is_greedy: bool


@dataclass(frozen=True)
class GenerationRequest:
    """Greedy generation from `context` until a stop sequence or `max_new_tokens`; the stop text is cut off."""

    context: str
    stop: tuple[str, ...]
    max_new_tokens: int = 256

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise DuskError(f"max_new_tokens {self.max_new_tokens}: expected at least 1 token to generate")


@dataclass
class EngineStats:
    """Work done by the engine: tokens forwarded through the model vs the unique tokens of all requests."""

    tokens_forwarded: int = 0
    tokens_minimum: int = 0
    forward_calls: int = 0

    @property
    def token_efficiency(self) -> float:
        return self.tokens_minimum / self.tokens_forwarded if self.tokens_forwarded else 1.0
