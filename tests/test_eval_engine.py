"""The eval engine: the fast path (shared prefixes, KV cache reuse, batching) gives the plain path's scores and
generations, lm-evaluation-harness 0.4.13's HFLM gives the same log-likelihoods, and the token accounting holds."""

import copy
import random

import pytest
import torch
from eval_engine_fixtures import (
    generation_workload,
    mixed_workload,
    mmlu_like,
    one_thread,  # noqa: F401 (a fixture, used by pytestmark)
    sharp_tiny_llama,
)

from dusk.errors import DuskError
from dusk.eval.decoding import cut_at_stops, generate_plain
from dusk.eval.engine import Engine
from dusk.eval.requests import GenerationRequest, LoglikelihoodRequest
from dusk.eval.tokenization import encode_context, encode_pair, encode_request

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sharp(tiny_llama):
    return sharp_tiny_llama(tiny_llama)


def _choices(results, n: int = 4) -> list[int]:
    return [max(range(n), key=lambda j: results[i + j].logprob) for i in range(0, len(results), n)]


def _assert_same_scores(fast, plain, tol: float = 1e-4) -> None:
    worst = max(abs(a.logprob - b.logprob) for a, b in zip(fast, plain, strict=True))
    assert worst < tol, f"fast and plain log-likelihoods differ by {worst:.2e}"
    assert [a.is_greedy for a in fast] == [b.is_greedy for b in plain]


def _hflm(model, tokenizer, batch_size: int, max_length: int | None = None):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device="cpu", max_length=max_length)


def _hflm_loglikelihood(lm, requests: list[LoglikelihoodRequest]) -> list[tuple[float, bool]]:
    from lm_eval.api.instance import Instance

    instances = [Instance("loglikelihood", {}, (r.context, r.continuation), idx=i) for i, r in enumerate(requests)]
    return lm.loglikelihood(instances, disable_tqdm=True)


def test_fast_path_matches_plain_path_on_a_realistic_mix(sharp):
    model, tokenizer = sharp
    requests = mixed_workload(random.Random(0))
    fast, plain = Engine(model, tokenizer, batch_size=3), Engine(model, tokenizer, fast=False)
    greedy = GenerationRequest(requests[-1].context, (), 3)
    greedy_text = Engine(model, tokenizer).generate([greedy], progress=False)[0]
    requests.append(LoglikelihoodRequest(requests[-1].context, greedy_text))  # the model's own greedy choice
    ours, reference = fast.loglikelihood(requests, progress=False), plain.loglikelihood(requests, progress=False)
    _assert_same_scores(ours, reference)
    assert _choices(ours[:40]) == _choices(reference[:40])  # the MMLU-like items: same choice per question
    assert any(r.is_greedy for r in reference) and not all(r.is_greedy for r in reference)
    assert fast.stats.tokens_minimum == plain.stats.tokens_minimum
    assert fast.stats.tokens_forwarded < plain.stats.tokens_forwarded / 3
    assert fast.stats.forward_calls < plain.stats.forward_calls


def test_results_do_not_depend_on_batch_size_or_sharing_threshold(sharp):
    model, tokenizer = sharp
    requests = mixed_workload(random.Random(1))
    one = Engine(model, tokenizer, batch_size=1, min_shared=1).loglikelihood(requests, progress=False)
    many = Engine(model, tokenizer, batch_size=16, min_shared=64).loglikelihood(requests, progress=False)
    _assert_same_scores(one, many)


def test_token_efficiency_on_mmlu_like_work(sharp):
    model, tokenizer = sharp
    requests = mmlu_like(random.Random(2), subjects=2, questions=12)
    engine = Engine(model, tokenizer, batch_size=8)
    engine.loglikelihood(requests, progress=False)
    sequences = [encode_request(tokenizer, r, engine.max_length).forwarded for r in requests]
    prefixes = {seq[: i + 1] for seq in sequences for i in range(len(seq))}
    assert engine.stats.tokens_minimum == len(prefixes)
    assert engine.stats.token_efficiency >= 0.9, engine.stats


def test_log_likelihoods_match_lm_eval_hflm(tiny_llama):
    from dusk.models.io import load_model, load_tokenizer

    model, tokenizer = load_model(tiny_llama), load_tokenizer(tiny_llama)
    requests = mixed_workload(random.Random(3))
    ours = Engine(model, tokenizer, batch_size=4).loglikelihood(requests, progress=False)
    theirs = _hflm_loglikelihood(_hflm(model, tokenizer, batch_size=4), requests)
    worst = max(abs(a.logprob - logprob) for a, (logprob, _) in zip(ours, theirs, strict=True))
    assert worst < 1e-4, f"dusk and lm-eval differ by {worst:.2e}"
    assert [a.is_greedy for a in ours] == [greedy for _, greedy in theirs]


def test_tokenization_is_lm_eval_s(sharp):
    model, tokenizer = sharp
    lm = _hflm(model, tokenizer, batch_size=1)
    for request in mixed_workload(random.Random(4)):
        if request.context:
            assert encode_pair(tokenizer, request.context, request.continuation) == lm._encode_pair(
                request.context, request.continuation
            )
    context, continuation = encode_pair(tokenizer, "", "hello")
    assert context == [tokenizer.bos_token_id] and continuation == tokenizer.encode("hello", add_special_tokens=False)
    context, continuation = encode_pair(tokenizer, "Answer:  ", "4")
    assert tokenizer.decode(continuation) == "  4" and tokenizer.decode(context) == "Answer:"


def test_left_truncation_matches_lm_eval(sharp):
    model, tokenizer = sharp
    requests = mmlu_like(random.Random(5), subjects=1, questions=3)
    fast = Engine(model, tokenizer, batch_size=4, max_length=64).loglikelihood(requests, progress=False)
    plain = Engine(model, tokenizer, fast=False, max_length=64).loglikelihood(requests, progress=False)
    theirs = _hflm_loglikelihood(_hflm(model, tokenizer, batch_size=4, max_length=64), requests)
    _assert_same_scores(fast, plain)
    assert max(abs(a.logprob - b) for a, (b, _) in zip(fast, theirs, strict=True)) < 1e-4
    untruncated = Engine(model, tokenizer, fast=False).loglikelihood(requests[:1], progress=False)
    assert abs(untruncated[0].logprob - plain[0].logprob) > 1e-3  # the window really cut the context


def test_bfloat16_fast_path_agrees_with_plain_path(tiny_llama):
    model, tokenizer = sharp_tiny_llama(tiny_llama, torch.bfloat16)
    requests = mmlu_like(random.Random(6), subjects=1, questions=4)
    fast = Engine(model, tokenizer, batch_size=4).loglikelihood(requests, progress=False)
    plain = Engine(model, tokenizer, fast=False).loglikelihood(requests, progress=False)
    assert max(abs(a.logprob - b.logprob) for a, b in zip(fast, plain, strict=True)) < 0.1  # bf16 rounding
    assert all(torch.isfinite(torch.tensor(a.logprob)) for a in fast)


def test_generation_matches_hf_generate_one_request_at_a_time(sharp):
    model, tokenizer = sharp
    requests = generation_workload(random.Random(7))
    engine = Engine(model, tokenizer, batch_size=3)
    ours = engine.generate(requests, progress=False)
    for request, text in zip(requests, ours, strict=True):
        context = encode_context(tokenizer, request.context, request.max_new_tokens, engine.max_length)
        reference = generate_plain(model, tokenizer, context, request, engine.pad_id)
        assert text == cut_at_stops(tokenizer.decode(reference, skip_special_tokens=True), request.stop)
        assert not any(stop and stop in text for stop in request.stop)
    assert len({text for text in ours}) > 3  # the model's generations vary: the comparison can fail
    assert ours == Engine(model, tokenizer, fast=False).generate(requests, progress=False)
    assert engine.stats.token_efficiency >= 0.9


def test_generation_stops_at_the_first_stop_sequence(sharp):
    model, tokenizer = sharp
    free = GenerationRequest("Question: what is the sun?\nAnswer:", (), 24)
    (text,) = Engine(model, tokenizer).generate([free], progress=False)
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    assert stop.strip()
    (cut,) = Engine(model, tokenizer).generate([GenerationRequest(free.context, (stop,), 24)], progress=False)
    assert cut == text[: text.index(stop)]


def test_bad_requests_and_settings_raise(sharp, monkeypatch: pytest.MonkeyPatch):
    model, tokenizer = sharp
    with monkeypatch.context() as patch:  # a model whose logits are not its head applied to the hidden states
        patch.setattr(model, "get_output_embeddings", lambda: lambda hidden: 2 * model.lm_head(hidden))
        with pytest.raises(DuskError, match="use fast=False"):
            Engine(model, tokenizer)
    with pytest.raises(DuskError, match="batch_size"):
        Engine(model, tokenizer, batch_size=0)
    with pytest.raises(DuskError, match="no tokens"):
        Engine(model, tokenizer).loglikelihood([LoglikelihoodRequest("Question:", "")], progress=False)
    with pytest.raises(DuskError, match="no room"):
        Engine(model, tokenizer, max_length=8).generate([GenerationRequest("hi", (), 8)], progress=False)
    with pytest.raises(DuskError, match="max_new_tokens 0: expected at least 1"):
        GenerationRequest("hi", (), 0)


@pytest.mark.slow
def test_smollm2_fast_plain_and_lm_eval_agree():
    from dusk.models.io import load_model, load_tokenizer, resolve_model

    model_dir = resolve_model("smollm2-135m")
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    requests = mmlu_like(random.Random(8), subjects=1, questions=2) + mixed_workload(random.Random(8))[-7:]
    fast = Engine(model, tokenizer, batch_size=8).loglikelihood(requests, progress=False)
    plain = Engine(model, tokenizer, fast=False).loglikelihood(requests, progress=False)
    theirs = _hflm_loglikelihood(_hflm(model, tokenizer, batch_size=8), requests)
    _assert_same_scores(fast, plain)
    assert max(abs(a.logprob - b) for a, (b, _) in zip(fast, theirs, strict=True)) < 1e-4
    assert _choices(fast[:8]) == _choices([type(fast[0])(lp, g) for lp, g in theirs[:8]])
    gen = [GenerationRequest("Question: What is the capital of France?\nAnswer:", ("\n", "Question:"), 16)]
    assert (
        Engine(model, tokenizer).generate(gen * 2, progress=False)
        == Engine(model, tokenizer, fast=False).generate(gen, progress=False) * 2
    )


def test_prompts_of_different_chunks_decode_as_one_batch(sharp):
    """Prompts whose prefill lands in different chunks (lengths far apart) wait in one pool and decode together:
    the decode steps are those of the longest generation, not their sum, and the texts equal one-at-a-time ones."""
    model, tokenizer = sharp
    rng = random.Random(11)
    long_context = " ".join(f"word{rng.randrange(50)}" for _ in range(60))
    requests = [GenerationRequest("Hi", (), 12), GenerationRequest(long_context, (), 12),
                GenerationRequest(long_context[:90], (), 12)]  # fmt: skip
    engine = Engine(model, tokenizer, batch_size=4)
    ours = engine.generate(requests, progress=False)
    assert ours == Engine(model, tokenizer, fast=False).generate(requests, progress=False)
    prefill_chunks = engine.stats.forward_calls - 11  # 12 tokens each: 1 from the prefill, 11 decode steps
    assert 2 <= prefill_chunks <= len(requests)  # the lengths kept them in separate chunks, and yet ...
    assert engine.stats.forward_calls == prefill_chunks + 11  # ... one decode loop served all three


def test_a_decode_batch_never_holds_more_than_batch_size_prompts(sharp):
    """The pool decodes at most batch_size prompts at once (the engine's rows per forward call), even when a chunk
    brings more ends than the pool has room for: six copies of one prompt end in one row of one chunk."""
    model, tokenizer = sharp
    rng = random.Random(5)
    longs = [" ".join(f"word{rng.randrange(50)}" for _ in range(60)) for _ in range(3)]
    contexts = [f"Hi {i}" for i in range(3)] + longs + ["Same prompt"] * 6
    requests = [GenerationRequest(context, (), 6) for context in contexts]
    engine = Engine(model, tokenizer, batch_size=4)
    rows: list[int] = []
    forward = engine._forward
    engine._forward = lambda state, segments, spare=0: rows.append(len(segments)) or forward(state, segments, spare)
    ours = engine.generate(requests, progress=False)
    assert max(rows) == 4 and sum(rows) > 4 * 5  # full decode batches, and not one of more than 4 rows
    assert ours == Engine(model, tokenizer, fast=False).generate(requests, progress=False)
    assert len(set(ours[6:])) == 1 and len(set(ours[:6])) > 1


def test_the_plain_path_stops_at_the_tokenizers_eos_as_the_pool_does(sharp):
    """lm-eval ends a generation at the tokenizer's EOS; so do the pool and (the reference) the plain path, even
    when the model's generation config names another EOS or none."""
    model, tokenizer = copy.deepcopy(sharp[0]), copy.deepcopy(sharp[1])
    request = GenerationRequest("Question: what is the sun?\nAnswer:", (), 12)
    context = encode_context(tokenizer, request.context, request.max_new_tokens, Engine(model, tokenizer).max_length)
    free = generate_plain(model, tokenizer, context, request, 0)
    stop_at = next(k for k in range(2, len(free)) if free[k] not in free[:k])  # a token first produced at step k
    model.generation_config.eos_token_id = None
    tokenizer.eos_token_id = free[stop_at]
    assert generate_plain(model, tokenizer, context, request, 0) == free[: stop_at + 1]
    fast, plain = (Engine(model, tokenizer, fast=f).generate([request], progress=False) for f in (True, False))
    assert fast == plain == [tokenizer.decode(free[: stop_at + 1], skip_special_tokens=True)]  # ends at that token


def test_kv_states_concatenate_with_their_own_pasts(sharp):
    from dusk.eval.kv_cache import KVState, forward_segments

    model, _ = sharp
    decoder = model.get_decoder()
    _, short = forward_segments(decoder, KVState.empty("cpu"), [[5, 6, 7]], 0)
    _, long = forward_segments(decoder, KVState.empty("cpu"), [[9, 8, 7, 6, 5, 4]], 0)
    alone = [forward_segments(decoder, state, [[3]], 0)[0][0, 0] for state in (short, long)]
    both, _ = forward_segments(decoder, KVState.concat([short, long]), [[3], [3]], 0)
    assert torch.allclose(both[:, 0], torch.stack(alone), atol=1e-5)
    trimmed = KVState.concat([short, long]).truncate(torch.tensor([2, 6])).select([0]).trim()
    assert trimmed.past == 2 and trimmed.lengths.tolist() == [2]
