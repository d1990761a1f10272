"""Greedy decoding for the engine: prompts whose KV cache the prefix-tree walk computed wait in a pool, then decode
together token by token until EOS, a stop sequence or `max_new_tokens`; finished rows leave the batch at once.

The text is decoded without special tokens and cut at the first occurrence of any stop sequence, as
lm-evaluation-harness 0.4's `generate_until` does. `generate_plain` is the reference: transformers'
`model.generate(do_sample=False)` on one prompt.

    python -c "from dusk.eval.decoding import cut_at_stops; print(cut_at_stops('42 Question: 1+1?', ['Question:']))"
"""

import torch

from dusk.eval.kv_cache import KVState
from dusk.eval.requests import GenerationRequest


def cut_at_stops(text: str, stops: tuple[str, ...] | list[str]) -> str:
    """`text` up to the first occurrence of any (non-empty) stop sequence."""
    for stop in stops:
        if stop:
            text = text.split(stop)[0]
    return text


def stop_token_ids(model, tokenizer) -> set[int]:
    """Token ids that end a generation: the tokenizer's EOS and the model's generation-config EOS ids."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(configured) if isinstance(configured, list) else ({configured} if configured is not None else set())
    return ids


def is_finished(tokenizer, tokens: list[int], request: GenerationRequest, stop_ids: set[int]) -> bool:
    if tokens[-1] in stop_ids or len(tokens) >= request.max_new_tokens:
        return True
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    return any(stop and stop in text for stop in request.stop)


class Decoder:
    """Decodes the prompts that end in the chunks of the walk, writing each finished text into `outputs`.

    A decode step reads every weight whatever its row count (8 rows cost ~2.5x one row on a CPU, not 8x), so prompts
    are not decoded chunk by chunk: each prompt's state waits in a pool until `pool_size` prompts are ready (or the
    walk ends), and the pool decodes as one batch."""

    def __init__(self, engine, requests: list[GenerationRequest], outputs: list[str], bar, pool_size: int) -> None:
        self.engine, self.requests, self.outputs, self.bar = engine, requests, outputs, bar
        self.tokenizer = engine.tokenizer
        self.stop_ids = stop_token_ids(engine.model, engine.tokenizer)
        self.pool_size = pool_size
        self.pool: list[tuple[KVState, list[int], list[int]]] = []  # (state, first tokens, request indices)

    def _next_tokens(self, hidden_rows: torch.Tensor) -> list[int]:
        return self.engine.head(hidden_rows).float().argmax(-1).tolist()

    @torch.no_grad()
    def add(self, hidden: torch.Tensor, state: KVState, ends: list[tuple[int, int, int]]) -> None:
        """`ends`: (row of the chunk, offset in its segment of the prompt's last token, request index). A decode batch
        holds at most `pool_size` prompts: ends beyond the pool's room wait for the next one."""
        room = self.pool_size - self._pooled()
        if len(ends) > room:
            self.add(hidden, state, ends[:room])  # fills the pool, which decodes
            self.add(hidden, state, ends[room:])
            return
        rows = [row for row, _, _ in ends]
        offsets = [offset for _, offset, _ in ends]
        segment_start = state.past - hidden.shape[1]
        keep = torch.tensor([segment_start + offset + 1 for offset in offsets])
        if rows != list(range(state.mask.shape[0])):  # not every row of the chunk, or a row twice: copy them
            state = state.select(rows)
        state = state.truncate(keep)  # a prompt may end inside a segment that other prompts continue
        first = self._next_tokens(hidden[torch.tensor(rows), torch.tensor(offsets)])
        self.pool.append((state.trim(), first, [index for _, _, index in ends]))
        if self._pooled() >= self.pool_size:
            self.flush()

    def _pooled(self) -> int:
        return sum(len(indices) for _, _, indices in self.pool)

    def flush(self) -> None:
        """Decode every prompt waiting in the pool, as one batch."""
        if self.pool:
            pool, self.pool = self.pool, []
            self._decode(pool)

    @torch.no_grad()
    def _decode(self, pool: list[tuple[KVState, list[int], list[int]]]) -> None:
        """Join the pool's rows into one state and decode them; the pool is emptied first, so the entries' states
        are not kept alive beside the joined one while it decodes."""
        state = KVState.concat([entry[0] for entry in pool])
        next_tokens, active = [t for entry in pool for t in entry[1]], [i for entry in pool for i in entry[2]]
        pool.clear()
        generated: dict[int, list[int]] = {index: [] for index in active}
        while True:
            still = []
            for j, index in enumerate(active):
                generated[index].append(next_tokens[j])
                if is_finished(self.tokenizer, generated[index], self.requests[index], self.stop_ids):
                    self._finish(index, generated[index])
                else:
                    still.append(j)
            if not still:
                return
            if len(still) < len(active):
                state, active = state.select(still), [active[j] for j in still]
            spare = max(self.requests[index].max_new_tokens - len(generated[index]) for index in active)
            hidden, state = self.engine._forward(state, [[generated[index][-1]] for index in active], spare)
            self.engine.stats.tokens_minimum += len(active)
            next_tokens = self._next_tokens(hidden[:, 0])

    def _finish(self, index: int, tokens: list[int]) -> None:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        self.outputs[index] = cut_at_stops(text, self.requests[index].stop)
        self.bar.update(1)


class _StopOnText:
    """A transformers stopping criterion: stop once a stop sequence appears in the generated text."""

    def __init__(self, tokenizer, stops: tuple[str, ...], prompt_length: int) -> None:
        self.tokenizer, self.stops, self.prompt_length = tokenizer, stops, prompt_length

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        text = self.tokenizer.decode(input_ids[0, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([any(stop and stop in text for stop in self.stops)], device=input_ids.device)


@torch.no_grad()
def generate_plain(model, tokenizer, context: list[int], request: GenerationRequest, pad_id: int) -> list[int]:
    """The generated token ids of plain `model.generate(do_sample=False)` on this one prompt."""
    from transformers import StoppingCriteriaList

    device = next(model.parameters()).device
    ids = torch.tensor([context], device=device)
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        do_sample=False,
        max_new_tokens=request.max_new_tokens,
        eos_token_id=sorted(stop_token_ids(model, tokenizer)),  # the tokenizer's EOS too, as lm-eval and the pool
        stopping_criteria=StoppingCriteriaList([_StopOnText(tokenizer, request.stop, len(context))]),
        pad_token_id=pad_id,
    )
    return out[0, len(context) :].tolist()
