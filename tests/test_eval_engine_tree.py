"""The engine's parts: the prefix tree (every needed position computed once, on the right prefix), the padding-aware
batches, and forwarding segments on top of a cached past (padding anywhere) equals forwarding whole sequences."""

import random

import pytest
import torch
from eval_engine_fixtures import one_thread  # noqa: F401 (a fixture, used by pytestmark)

from dusk.eval.batching import PAD_FRACTION, PAD_TOKENS, build_tree, chunks, compact, total_tokens, walk
from dusk.eval.kv_cache import KVState, forward_segments

pytestmark = pytest.mark.usefixtures("one_thread")


def _random_sequences(rng: random.Random, n: int) -> list[tuple[int, ...]]:
    """Sequences over a 3-token alphabet with shared prefixes of every kind (duplicates, prefixes of others)."""
    stems = [tuple(rng.choice((1, 2, 3)) for _ in range(rng.randint(1, 12))) for _ in range(4)]
    return [rng.choice(stems) + tuple(rng.choice((1, 2, 3)) for _ in range(rng.randint(0, 6))) for _ in range(n)]


def _replay(root, batch_size: int) -> tuple[dict, list[int]]:
    """Walk the tree with states that hold each row's tokens so far; return {mark payload: prefix seen} and the
    sizes of the chunks."""
    seen, sizes = {}, []

    def step(state: list[tuple[int, ...]], rows: list[int], nodes) -> list[tuple[int, ...]]:
        sizes.append(len(nodes))
        rows_tokens = [state[row] + tuple(node.tokens) for row, node in zip(rows, nodes, strict=True)]
        for tokens, node in zip(rows_tokens, nodes, strict=True):
            assert len(tokens) == node.start + len(node.tokens)  # the node sits right after its parent's tokens
            for position, payload in node.marks:
                seen.setdefault(payload, []).append(tokens[: position + 1])
        return rows_tokens

    walk(root, [()], batch_size, step)
    return seen, sizes


@pytest.mark.parametrize("min_shared", [1, 4, 50])
def test_every_mark_is_computed_once_on_its_own_prefix(min_shared: int):
    rng = random.Random(min_shared)
    sequences = _random_sequences(rng, 40)
    marks = [[(p, (i, p)) for p in range(len(seq)) if rng.random() < 0.4] for i, seq in enumerate(sequences)]
    tree = build_tree(sequences, marks)
    assert tree.unique_tokens == len({seq[: p + 1] for seq in sequences for p in range(len(seq))})
    compact(tree.root, min_shared)
    if min_shared == 1:
        assert total_tokens(tree.root) == tree.unique_tokens  # only single children merged: nothing duplicated
    seen, sizes = _replay(tree.root, batch_size=3)
    expected = {payload: sequences[payload[0]][: payload[1] + 1] for m in marks for _, payload in m}
    assert set(seen) == set(expected)
    for payload, prefixes in seen.items():
        assert prefixes == [expected[payload]]
    assert max(sizes) <= 3


def test_shared_runs_shorter_than_min_shared_are_copied_into_children():
    sequences = [(9, 9) + (1,) * 20, (9, 9) + (2,) * 20, (5,) * 30 + (1,), (5,) * 30 + (2,)]
    tree = build_tree(sequences, [[(len(s) - 1, i)] for i, s in enumerate(sequences)])
    compact(tree.root, min_shared=8)
    segments = sorted(len(node.tokens) for node in tree.root.children)
    assert segments == [22, 22, 30]  # (9, 9) copied into both children; the 30-token run shared by its two
    assert total_tokens(tree.root) == 22 + 22 + 30 + 2


def test_chunks_bound_padding_and_batch_size():
    rng = random.Random(0)
    lengths = [rng.randint(1, 400) for _ in range(200)]
    batches = chunks(lengths, batch_size=8)
    assert sorted(i for batch in batches for i in batch) == list(range(200))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 8
        assert all(longest - lengths[i] <= max(PAD_TOKENS, PAD_FRACTION * longest) for i in batch)


def test_segments_on_a_padded_past_equal_whole_sequences(tiny_llama):
    from dusk.models.io import load_model

    model = load_model(tiny_llama)
    decoder = model.get_decoder()
    prefix, middles, ends = [5, 6, 7, 8], [[10, 11, 12, 13, 14], [20], [30, 31]], [[40, 41, 42], [50]]
    _, root = forward_segments(decoder, KVState.empty("cpu"), [prefix], pad_id=0)
    _, level1 = forward_segments(decoder, root.select([0, 0, 0]), middles, pad_id=0)
    # second level reads rows with padding in the middle of their past (row 1 has 4 pad slots after its token)
    hidden, level2 = forward_segments(decoder, level1.select([1, 2]), ends, pad_id=0)
    with torch.no_grad():
        for row, (middle, end) in enumerate([(middles[1], ends[0]), (middles[2], ends[1])]):
            whole = decoder(input_ids=torch.tensor([prefix + middle + end])).last_hidden_state[0, -len(end) :]
            assert torch.allclose(hidden[row, : len(end)], whole, atol=1e-5)
    assert level2.lengths.tolist() == [4 + 1 + 3, 4 + 2 + 1]
    cut = level2.truncate(torch.tensor([4 + 5 + 1, 4 + 5 + 1]))  # keep the past and each row's first new token
    assert cut.lengths.tolist() == [4 + 1 + 1, 4 + 2 + 1]


def test_decoding_into_growing_buffers_equals_copying_the_past(tiny_llama):
    from dusk.models.io import load_model

    decoder = load_model(tiny_llama).get_decoder()
    _, start = forward_segments(decoder, KVState.empty("cpu").select([0, 0]), [[5, 6, 7], [8, 9]], pad_id=0)
    copied, grown = start.select([0, 1]), start.select([0, 1])
    for token in (11, 12, 13, 14):  # spare=1: the buffers must grow twice on the way
        hidden_copied, copied = forward_segments(decoder, copied, [[token], [token + 1]], pad_id=0)
        hidden_grown, grown = forward_segments(decoder, grown, [[token], [token + 1]], pad_id=0, spare=1)
        assert torch.allclose(hidden_copied, hidden_grown, atol=1e-6)
    assert grown.growing is not None and grown.lengths.tolist() == copied.lengths.tolist() == [7, 6]
    stale = forward_segments(decoder, start.select([0, 1]), [[11], [12]], pad_id=0, spare=4)[1]
    forward_segments(decoder, stale, [[1], [2]], pad_id=0)  # appends in place: `stale` is now behind its buffers
    again, _ = forward_segments(decoder, stale, [[1], [2]], pad_id=0)
    fresh = forward_segments(decoder, start.select([0, 1]), [[11], [12]], pad_id=0)[1]
    assert torch.allclose(again, forward_segments(decoder, fresh, [[1], [2]], pad_id=0)[0], atol=1e-6)
