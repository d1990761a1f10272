"""dusk's evaluation engine: log-likelihoods and greedy generations, with every shared token prefix forwarded once.

Requests are tokenized exactly as lm-evaluation-harness 0.4.13's HFLM does (`dusk.eval.tokenization`). The fast
path (default) puts all requests' token sequences in one prefix tree (`dusk.eval.batching`): a few-shot prefix
shared by a whole subject, a question shared by its choices, are forwarded once and their KV cache reused by
everything below them (`dusk.eval.kv_cache`); siblings are batched by length. The plain path (`fast=False`)
forwards each request alone, whole, as the reference the fast path is tested against. `engine.stats` counts
tokens forwarded vs the minimum (the unique tokens of all requests): token efficiency = minimum / forwarded.

    python -c "from dusk.eval.engine import Engine; from dusk.eval.requests import LoglikelihoodRequest as R; \
from dusk.models.io import *; d = resolve_model('tiny-llama'); e = Engine(load_model(d), load_tokenizer(d)); \
print(e.loglikelihood([R('Question: 2+2?\\nAnswer:', ' 4'), R('Question: 2+2?\\nAnswer:', ' 5')]), e.stats)"
"""

from dataclasses import dataclass

import torch
from tqdm import tqdm

from dusk.errors import DuskError
from dusk.eval.batching import Node, build_tree, compact, total_tokens, unique_token_count, walk
from dusk.eval.decoding import Decoder, cut_at_stops, generate_plain
from dusk.eval.kv_cache import KVState, forward_segments
from dusk.eval.requests import EngineStats, GenerationRequest, LoglikelihoodRequest, LoglikelihoodResult
from dusk.eval.tokenization import ScoredSequence, encode_context, encode_request, resolve_max_length


@dataclass(frozen=True)
class EngineConfig:
    """How the engine batches and shares work (none of it changes a score beyond float rounding)."""

    batch_size: int = 8  # rows per forward call
    fast: bool = True  # share prefixes through the KV cache; False = each request forwarded alone, whole
    max_length: int | None = None  # context window in tokens; None = the model's, looked up as lm-eval does
    min_shared: int = 8  # a shared run shorter than this is copied into each request rather than forwarded alone

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise DuskError(f"batch_size {self.batch_size}: expected at least 1")
        if self.min_shared < 1:
            raise DuskError(f"min_shared {self.min_shared}: expected at least 1")


FAST_ATTENTION = ("sdpa", "eager")  # take the 4D masks of dusk.eval.kv_cache; flash/flex attention do not


def check_attention(model) -> None:
    """The fast path attends through 4D masks (a row's padded past, causal within a segment): refuse others."""
    used = getattr(model.config, "_attn_implementation", None) or "sdpa"
    if used not in FAST_ATTENTION:
        raise DuskError(
            f"{type(model).__name__} uses attention {used!r}: dusk's engine shares prefixes through 4D attention "
            f"masks, which only {' and '.join(FAST_ATTENTION)} take; load it with attn_implementation='sdpa'"
        )


class Engine:
    """Scores and generates for one causal LM and its tokenizer; `stats` accumulates over calls."""

    def __init__(self, model, tokenizer, batch_size: int = 8, **options) -> None:
        self.config = EngineConfig(batch_size=batch_size, **options)
        self.model, self.tokenizer = model, tokenizer
        self.decoder, self.head = model.get_decoder(), model.get_output_embeddings()
        self.device = next(model.parameters()).device
        self.max_length = self.config.max_length or resolve_max_length(model.config, tokenizer)
        self.pad_id = next(i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if i is not None)
        self.stats = EngineStats()
        if self.config.fast:
            check_attention(model)
            self._check_head()

    @torch.no_grad()
    def _check_head(self) -> None:
        """The fast path computes logits as head(decoder(...)) at the positions it needs; make sure that is the
        model's own computation (no soft-capping or scaling in between)."""
        vocab = self.head.out_features if hasattr(self.head, "out_features") else self.model.config.vocab_size
        ids = (torch.arange(1, 6, device=self.device)[None] * 7919) % vocab  # a few ordinary tokens (not padding)
        ours = self.head(self.decoder(input_ids=ids).last_hidden_state)
        if not torch.allclose(ours.float(), self.model(ids).logits.float(), atol=1e-4, rtol=1e-4):
            raise DuskError(f"{type(self.model).__name__}: logits are not lm_head(hidden states); use fast=False")

    # ---- log-likelihood ---------------------------------------------------------------------------------------

    def loglikelihood(self, requests: list[LoglikelihoodRequest], progress: bool = True) -> list[LoglikelihoodResult]:
        """Summed log-probability of each continuation given its context, and whether greedy decoding yields it."""
        sequences = [encode_request(self.tokenizer, request, self.max_length) for request in requests]
        if not self.config.fast:
            self.stats.tokens_minimum += unique_token_count([s.forwarded for s in sequences])
            return [self._score_plain(s) for s in tqdm(sequences, desc="loglikelihood", disable=not progress)]
        return self._score_fast(sequences, progress)

    @torch.no_grad()
    def _score_plain(self, sequence: ScoredSequence) -> LoglikelihoodResult:
        ids = torch.tensor([sequence.forwarded], device=self.device)
        logits = self.model(ids).logits[0, -sequence.n_continuation :].float().log_softmax(-1)
        targets = torch.tensor(sequence.targets, device=self.device)
        self.stats.tokens_forwarded += ids.shape[1]
        self.stats.forward_calls += 1
        logprob = logits.gather(-1, targets[:, None]).sum()
        return LoglikelihoodResult(float(logprob), bool((logits.argmax(-1) == targets).all()))

    def _score_fast(self, sequences: list[ScoredSequence], progress: bool) -> list[LoglikelihoodResult]:
        forwarded, marks = [s.forwarded for s in sequences], []
        for i, (seq, read) in enumerate(zip(sequences, forwarded, strict=True)):
            # position p reads tokens[:p+1] and predicts tokens[p+1]; the continuation is predicted by the last n_cont
            span = range(len(read) - seq.n_continuation, len(read))
            marks.append([(p, (i, k, seq.tokens[p + 1])) for k, p in enumerate(span)])
        tree = build_tree(forwarded, marks)
        del forwarded
        self.stats.tokens_minimum += tree.unique_tokens
        compact(tree.root, self.config.min_shared)
        logprobs = [torch.zeros(s.n_continuation) for s in sequences]
        greedy = [torch.zeros(s.n_continuation, dtype=torch.bool) for s in sequences]
        bar = tqdm(total=total_tokens(tree.root), desc="loglikelihood", unit="tok", disable=not progress)

        def step(state: KVState, rows: list[int], nodes: list[Node]) -> KVState:
            hidden, chunk_state = self._forward(state.select(rows), [node.tokens for node in nodes])
            self._score_marks(hidden, nodes, logprobs, greedy)
            bar.update(sum(len(node.tokens) for node in nodes))
            return chunk_state

        walk(tree.root, KVState.empty(self.device), self.config.batch_size, step)
        bar.close()
        return [LoglikelihoodResult(float(lp.sum()), bool(g.all())) for lp, g in zip(logprobs, greedy, strict=True)]

    def _forward(self, state: KVState, segments: list[list[int]], spare: int = 0) -> tuple[torch.Tensor, KVState]:
        """One forward call: a segment per row on top of the rows' cached past (`spare`: see forward_segments)."""
        self.stats.tokens_forwarded += len(segments) * max(len(s) for s in segments)
        self.stats.forward_calls += 1
        return forward_segments(self.decoder, state, segments, self.pad_id, spare)

    @torch.no_grad()
    def _score_marks(self, hidden: torch.Tensor, nodes: list[Node], logprobs: list, greedy: list) -> None:
        """Log-softmax at the marked positions only (the LM head never runs on positions nobody scores)."""
        slots: dict[tuple[int, int], int] = {}
        entries = []
        for row, node in enumerate(nodes):
            for position, payload in node.marks:
                entries.append((slots.setdefault((row, position - node.start), len(slots)), payload))
        if not entries:
            return
        rows, cols = (torch.tensor(axis, device=hidden.device) for axis in zip(*slots, strict=True))
        logits = self.head(hidden[rows, cols]).float().log_softmax(-1)
        best = logits.argmax(-1)
        slot = torch.tensor([e[0] for e in entries], device=hidden.device)
        target = torch.tensor([e[1][2] for e in entries], device=hidden.device)
        values, hits = logits[slot, target].cpu(), (best[slot] == target).cpu()
        for j, (_, (i, k, _)) in enumerate(entries):
            logprobs[i][k], greedy[i][k] = values[j], hits[j]

    # ---- generation -------------------------------------------------------------------------------------------

    def generate(self, requests: list[GenerationRequest], progress: bool = True) -> list[str]:
        """Greedy continuation of each context, cut at the first stop sequence (lm-eval's `until`)."""
        contexts = [encode_context(self.tokenizer, r.context, r.max_new_tokens, self.max_length) for r in requests]
        self.stats.tokens_minimum += unique_token_count(contexts)
        bar = tqdm(total=len(requests), desc="generate", disable=not progress)
        if not self.config.fast:
            outputs = [self._generate_plain(ctx, request, bar) for ctx, request in zip(contexts, requests, strict=True)]
        else:
            outputs = self._generate_fast(contexts, requests, bar)
        bar.close()
        return outputs

    def _generate_plain(self, context: list[int], request: GenerationRequest, bar: tqdm) -> str:
        tokens = generate_plain(self.model, self.tokenizer, context, request, self.pad_id)
        self.stats.tokens_forwarded += len(context) + max(len(tokens) - 1, 0)
        self.stats.tokens_minimum += max(len(tokens) - 1, 0)
        self.stats.forward_calls += len(tokens)
        bar.update(1)
        return cut_at_stops(self.tokenizer.decode(tokens, skip_special_tokens=True), request.stop)

    def _generate_fast(self, contexts: list[list[int]], requests: list[GenerationRequest], bar: tqdm) -> list[str]:
        tree = build_tree(contexts, [[(len(ctx) - 1, i)] for i, ctx in enumerate(contexts)])
        compact(tree.root, self.config.min_shared)
        outputs = [""] * len(requests)
        decoder = Decoder(self, requests, outputs, bar, pool_size=self.config.batch_size)

        def step(state: KVState, rows: list[int], nodes: list[Node]) -> KVState:
            ends = [(row, position - node.start, i) for row, node in enumerate(nodes) for position, i in node.marks]
            spare = max((requests[i].max_new_tokens for _, _, i in ends), default=0)  # decode in place afterwards
            hidden, chunk_state = self._forward(state.select(rows), [node.tokens for node in nodes], spare)
            if ends:
                decoder.add(hidden, chunk_state, ends)
            return chunk_state

        walk(tree.root, KVState.empty(self.device), self.config.batch_size, step)
        decoder.flush()
        return outputs
