"""Shared token prefixes as a tree, walked in batches, so a prefix shared by many requests is forwarded once.

Every request is a token sequence the model must read. The sequences form a prefix tree (a radix tree: one node
per run of tokens between branch points); forwarding each node once, on top of its parent's KV cache, computes
every request's hidden states with the fewest tokens (the tree's size). Two adjustments trade a few tokens for
fewer, fuller forward calls: a node with one child absorbs it, and a shared run shorter than `min_shared` tokens
is copied into its children instead of being forwarded on its own. The walk visits parents before children, in
chunks of at most `batch_size` nodes sorted by length, depth first, so only one path of KV caches is alive.

    python -c "from dusk.eval.batching import build_tree; print(build_tree([(1, 2, 3), (1, 2, 4)], [[], []]))"
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

State = TypeVar("State")
Mark = tuple[int, Any]  # (absolute token position, payload): a position whose hidden state a request needs
PAD_TOKENS = 16  # padding a row may always take (a forward call costs about as much as a few dozen tokens)
PAD_FRACTION = 0.1  # and padding as a share of the batch's longest segment


@dataclass(eq=False)
class Node:
    """A run of tokens shared by every sequence below this node, starting at position `start` of each."""

    start: int
    tokens: list[int]
    children: list["Node"] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Node(start={self.start}, n={len(self.tokens)}, children={len(self.children)}, marks={len(self.marks)})"


@dataclass
class PrefixTree:
    """The root (no tokens) and the number of distinct prefixes, the least number of tokens any method forwards."""

    root: Node
    unique_tokens: int


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


def _split(node: Node, at: int) -> None:
    """Cut `node` at absolute position `at`: the tail becomes its only child (keeping the old children)."""
    cut = at - node.start
    tail = Node(at, node.tokens[cut:], node.children, [m for m in node.marks if m[0] >= at])
    node.tokens, node.children = node.tokens[:cut], [tail]
    node.marks = [m for m in node.marks if m[0] < at]


def _attach(path: list[Node], marks: list[Mark]) -> None:
    """Give each mark to the node of `path` (root to leaf) that holds its position."""
    for mark in marks:
        node = next(n for n in reversed(path) if n.start <= mark[0])
        node.marks.append(mark)


def build_tree(sequences: Sequence[Sequence[int]], marks: Sequence[list[Mark]]) -> PrefixTree:
    """The radix tree of `sequences` (each non-empty), with `marks[i]` attached along sequence i's path."""
    merged: dict[tuple[int, ...], list[Mark]] = {}
    for seq, seq_marks in zip(sequences, marks, strict=True):
        merged.setdefault(tuple(seq), []).extend(seq_marks)
    root = Node(0, [])
    path, previous, unique = [root], np.zeros(0, dtype=np.int64), 0
    for seq in sorted(merged):  # a prefix sorts before its extensions, so the new sequence never ends early
        current = np.asarray(seq, dtype=np.int64)
        shared = _common_prefix(previous, current)
        while len(path) > 1 and path[-1].start >= shared:
            path.pop()
        top = path[-1]
        if top.start + len(top.tokens) > shared:
            _split(top, shared)
        node = Node(shared, list(seq[shared:]))
        top.children.append(node)
        path.append(node)
        _attach(path, merged[seq])
        unique += len(seq) - shared
        previous = current
    return PrefixTree(root, unique)


def compact(node: Node, min_shared: int, is_root: bool = True) -> list[Node]:
    """Merge single children into their parent and copy short shared runs into the children (bottom-up)."""
    kids = [kid for child in node.children for kid in compact(child, min_shared, is_root=False)]
    while len(kids) == 1 and not is_root:
        (kid,) = kids
        node.tokens, node.marks, kids = node.tokens + kid.tokens, node.marks + kid.marks, kid.children
    node.children = kids
    if is_root or not kids or len(node.tokens) >= min_shared:
        return [node]
    for kid in kids:
        kid.tokens, kid.start = node.tokens + kid.tokens, node.start
    kids[0].marks.extend(node.marks)  # every kid computes the shared positions; the first one reports them
    return kids


def walk(
    root: Node,
    state: State,
    batch_size: int,
    step: Callable[[State, list[int], list[Node]], State],
) -> None:
    """Call `step(parent_state, parent_rows, nodes)` for every node once, parents first; `step` returns the
    chunk's state (row i = nodes[i]), whose rows the children's chunks then select."""
    items = [(0, child) for child in root.children]
    _walk(state, items, batch_size, step)


def chunks(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices of `lengths`, longest first, cut into batches of at most `batch_size` whose padding stays small:
    an item joins the current batch only if it is at most PAD_TOKENS or PAD_FRACTION shorter than the longest."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size:
            longest = lengths[batches[-1][0]]
            if longest - lengths[i] <= max(PAD_TOKENS, PAD_FRACTION * longest):
                batches[-1].append(i)
                continue
        batches.append([i])
    return batches


def _walk(state: State, items: list[tuple[int, Node]], batch_size: int, step: Callable) -> None:
    for batch in chunks([len(node.tokens) for _, node in items], batch_size):
        chunk = [items[i] for i in batch]
        nodes = [node for _, node in chunk]
        chunk_state = step(state, [row for row, _ in chunk], nodes)
        children = [(row, child) for row, node in enumerate(nodes) for child in node.children]
        if children:
            _walk(chunk_state, children, batch_size, step)


def total_tokens(node: Node) -> int:
    """Tokens the walk will forward for this subtree (without padding)."""
    return len(node.tokens) + sum(total_tokens(child) for child in node.children)


def unique_token_count(sequences: Sequence[Sequence[int]]) -> int:
    """Size of the token trie of `sequences`: the tokens any method must forward at least once."""
    total, previous = 0, np.zeros(0, dtype=np.int64)
    for seq in sorted({tuple(s) for s in sequences}):
        current = np.asarray(seq, dtype=np.int64)
        total += len(seq) - _common_prefix(previous, current)
        previous = current
    return total
