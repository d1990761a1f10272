"""lm-evaluation-harness 0.4.13's tokenization of requests (HFLM, causal models), so dusk scores the same tokens.

Rules taken from `lm_eval/api/model.py` (`loglikelihood`, `_encode_pair`) and `lm_eval/models/huggingface.py`
(`tok_encode`, `tok_batch_encode`, `_loglikelihood_tokens`, `generate_until`):
- trailing spaces of the context move to the start of the continuation;
- context+continuation are encoded together and the context alone; the continuation is what follows the
  context's tokens in the whole encoding (BPE may merge across the boundary: the rule is the harness's);
- the tokenizer's own special-token behaviour applies (no `add_bos_token` override), except that a string
  already starting with the prefix token's text is encoded without special tokens;
- an empty context becomes the prefix token (BOS, else EOS), unless the continuation already starts with it;
- sequences longer than `max_length + 1` lose tokens on the left.

    python -c "from dusk.eval.tokenization import *; from dusk.models.io import *; \
print(encode_pair(load_tokenizer(resolve_model('tiny-llama')), 'Question: 1+1? Answer: ', '2'))"
"""

from dataclasses import dataclass

from dusk.errors import DuskError
from dusk.eval.requests import LoglikelihoodRequest

DEFAULT_MAX_LENGTH = 2048  # HFLM's default when neither the config nor the tokenizer gives a length
TOKENIZER_INFINITY = int(1e30)  # transformers' "no limit" value of `model_max_length`


@dataclass(frozen=True)
class ScoredSequence:
    """One log-likelihood request as tokens: the model reads `tokens[:-1]` and scores the last `n_continuation`."""

    tokens: tuple[int, ...]
    n_continuation: int

    @property
    def forwarded(self) -> tuple[int, ...]:
        """The tokens the model reads (the last token is only a target)."""
        return self.tokens[:-1]

    @property
    def targets(self) -> tuple[int, ...]:
        return self.tokens[-self.n_continuation :]


def prefix_token_id(tokenizer) -> int:
    """The token that stands for an empty context: BOS, else EOS (HFLM.prefix_token_id)."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode_text(tokenizer, text: str, add_special_tokens: bool | None = None) -> list[int]:
    """HFLM.tok_encode: the tokenizer's default special tokens, none when `text` already starts with the prefix."""
    kwargs = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
    if add_special_tokens is None and text.startswith(tokenizer.decode(prefix_token_id(tokenizer))):
        kwargs = {"add_special_tokens": False}
    return list(tokenizer.encode(text, **kwargs))


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context tokens, continuation tokens) exactly as lm-eval's `loglikelihood` builds them."""
    if context == "":
        cont = encode_text(tokenizer, continuation, add_special_tokens=False)
        prefix = prefix_token_id(tokenizer)
        if cont and cont[0] == prefix:
            return cont[:1], cont[1:]
        return [prefix], cont
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = encode_text(tokenizer, context + continuation)
    n_context = len(encode_text(tokenizer, context))
    return whole[:n_context], whole[n_context:]


def encode_request(tokenizer, request: LoglikelihoodRequest, max_length: int) -> ScoredSequence:
    """The request's tokens, left-truncated to `max_length + 1` as HFLM does (the model then reads `max_length`)."""
    context, continuation = encode_pair(tokenizer, request.context, request.continuation)
    if not continuation:
        raise DuskError(f"request {request!r}: the continuation encodes to no tokens (nothing to score)")
    if len(continuation) > max_length:
        raise DuskError(f"request {request!r}: continuation of {len(continuation)} tokens exceeds {max_length}")
    return ScoredSequence(tuple((context + continuation)[-(max_length + 1) :]), len(continuation))


def encode_context(tokenizer, context: str, max_new_tokens: int, max_length: int) -> list[int]:
    """A generation prompt as HFLM.tok_batch_encode builds it, left-truncated to leave room for the new tokens."""
    room = max_length - max_new_tokens
    if room <= 0:
        raise DuskError(f"max_new_tokens {max_new_tokens} leaves no room for a prompt within {max_length} tokens")
    bos = tokenizer.bos_token
    tokens = list(
        tokenizer.encode(context, add_special_tokens=False)
        if bos and context.startswith(bos)
        else tokenizer.encode(context)
    )
    return (tokens or [prefix_token_id(tokenizer)])[-room:]


def resolve_max_length(model_config, tokenizer, default: int = DEFAULT_MAX_LENGTH) -> int:
    """The model's context length, looked up as HFLM does: text config, config, tokenizer, then `default`."""
    config = getattr(model_config, "text_config", None) or model_config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, attr, None)
        if value is not None:
            return int(value)
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is not None and limit != TOKENIZER_INFINITY:
        return int(limit)
    return default
