"""The benchmark n-gram index: which training texts share a 13-gram with a benchmark item, fast and exact.

Normalisation is lm-evaluation-harness's (`lm_eval/decontamination/janitor.py`): ASCII letters lower-cased, every
character of `string.punctuation` deleted, then split on whitespace; an n-gram is n consecutive words. Items shorter
than n words have no n-gram and so never match (as in the harness).

Speed: words map to integer ids through the benchmark vocabulary (a word no benchmark uses cannot be part of a
matching n-gram), a batch of texts becomes one id array, every window gets a 64-bit polynomial hash with numpy, and
hashes are looked up by binary search in the sorted index. Each hash hit is then checked word by word, so a hash
collision can never drop a record.

    DUSK_DATA_DIR=../shared/data python -c "from dusk.data.ngrams import *; print(NgramIndex.build([]).stats())"
"""

import string
from dataclasses import dataclass

import numpy as np

TRANSLATION = str.maketrans(string.ascii_uppercase, string.ascii_lowercase, string.punctuation)
_FILTER_SIZE = 1 << 24  # bits of the hash pre-filter (16 MiB of bools; ~7% filled by 1.1M n-grams)
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the rolling hash (wraps mod 2**64)


def normalize_words(text: str) -> list[str]:
    """lm-eval's decontamination normalisation: lower-case ASCII, delete punctuation, split on whitespace."""
    return text.translate(TRANSLATION).split()


@dataclass(frozen=True)
class Item:
    """One scored benchmark item (its question and answer text are indexed together)."""

    task: str  # benchmark name (arc_challenge, hellaswag, mmlu, truthfulqa, winogrande, gsm8k)
    doc_id: str  # the item's id within its scored split
    question: str  # question / context text
    answer: str = ""  # the gold answer text

    @property
    def text(self) -> str:
        return f"{self.question}\n{self.answer}" if self.answer else self.question


@dataclass(frozen=True)
class Match:
    """A training text's first n-gram shared with a benchmark item."""

    task: str
    doc_id: str
    ngram: str  # the shared n-gram, normalised


class _Vocab(dict):
    def __missing__(self, key: str) -> int:
        return 0  # not a benchmark word


def _window_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """Polynomial hash of every length-n window of `ids` (len(ids) - n + 1 values)."""
    count = len(ids) - n + 1
    hashes = np.zeros(max(count, 0), dtype=np.uint64)
    if count <= 0:
        return hashes
    values = ids.astype(np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            hashes = hashes * _BASE + values[k : k + count]
    return hashes


class NgramIndex:
    """Sorted n-gram hashes of all benchmark items, with the position of each n-gram for exact checking."""

    def __init__(self, items: list[Item], n: int, vocab: dict, item_ids: np.ndarray, offsets: np.ndarray) -> None:
        self.items, self.n, self.vocab = items, n, _Vocab(vocab)
        self.item_ids, self.offsets = item_ids, offsets  # all items' word ids concatenated; item i starts at offsets[i]
        starts = [np.arange(offsets[i], offsets[i + 1] - n + 1) for i in range(len(items))]
        positions = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        hashes = _window_hashes(item_ids, n)[positions] if len(positions) else np.zeros(0, dtype=np.uint64)
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.positions = hashes[order], positions[order].astype(np.int64)
        self.filter = np.zeros(_FILTER_SIZE, dtype=bool)  # one-probe pre-check before the binary search
        self.filter[(self.hashes & np.uint64(_FILTER_SIZE - 1)).astype(np.int64)] = True
        self.by_id = {(item.task, item.doc_id): item for item in items}

    @classmethod
    def build(cls, items: list[Item], n: int = 13) -> "NgramIndex":
        """Index every n-gram of every item's question + answer text."""
        vocab: dict[str, int] = {}
        arrays, offsets = [], [0]
        for item in items:
            ids = [vocab.setdefault(word, len(vocab) + 1) for word in normalize_words(item.text)]
            arrays.append(np.asarray(ids, dtype=np.int64))
            offsets.append(offsets[-1] + len(ids))
        item_ids = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        return cls(items, n, vocab, item_ids, np.asarray(offsets, dtype=np.int64))

    def stats(self) -> dict:
        """Index size: items, n-grams, vocabulary, short items (no n-gram), and bytes of the numpy arrays."""
        lengths = np.diff(self.offsets)
        arrays = self.hashes.nbytes + self.positions.nbytes + self.item_ids.nbytes + self.offsets.nbytes
        arrays += self.filter.nbytes
        return {
            "items": len(self.items),
            "ngrams": int(len(self.hashes)),
            "distinct_ngrams": int(len(np.unique(self.hashes))),
            "vocabulary": len(self.vocab),
            "items_shorter_than_n": int((lengths < self.n).sum()),
            "array_bytes": int(arrays),
        }

    def _item_at(self, position: int) -> int:
        return int(np.searchsorted(self.offsets, position, side="right") - 1)

    def _verify(self, ids: np.ndarray, start: int, hash_value: np.uint64) -> int | None:
        """The item index whose n-gram equals ids[start:start+n] (exact word comparison), or None."""
        window = ids[start : start + self.n]
        low = np.searchsorted(self.hashes, hash_value, side="left")
        high = np.searchsorted(self.hashes, hash_value, side="right")
        for entry in range(low, high):
            position = self.positions[entry]
            if np.array_equal(self.item_ids[position : position + self.n], window):
                return self._item_at(position)
        return None

    def _match(self, item: int, words: list[str], start: int) -> Match:
        found = self.items[item]
        return Match(found.task, found.doc_id, " ".join(words[start : start + self.n]))

    def find(self, texts: list[str]) -> list[Match | None]:
        """For each text, its first n-gram (in text order) shared with a benchmark item, or None."""
        words = [normalize_words(text) for text in texts]
        flat = [word for text_words in words for word in text_words]
        ids = np.fromiter(map(self.vocab.__getitem__, flat), dtype=np.int64, count=len(flat))
        bounds = np.cumsum([0] + [len(w) for w in words])
        hashes = _window_hashes(ids, self.n)
        if not len(hashes) or not len(self.hashes):
            return [None] * len(texts)
        zeros = np.concatenate([[0], np.cumsum(ids == 0)])
        clean = zeros[self.n :] == zeros[: -self.n]  # no out-of-vocabulary word in the window
        owner = np.searchsorted(bounds, np.arange(len(hashes)), side="right") - 1
        inside = np.arange(len(hashes)) + self.n <= bounds[owner + 1]  # the window does not cross texts
        windows = np.flatnonzero(clean & inside)
        windows = windows[self.filter[(hashes[windows] & np.uint64(_FILTER_SIZE - 1)).astype(np.int64)]]
        slot = np.minimum(np.searchsorted(self.hashes, hashes[windows]), len(self.hashes) - 1)
        hits = windows[self.hashes[slot] == hashes[windows]]
        results: list[Match | None] = [None] * len(texts)
        for start in hits:
            text = int(owner[start])
            if results[text] is None and (item := self._verify(ids, int(start), hashes[start])) is not None:
                results[text] = self._match(item, words[text], int(start - bounds[text]))
        return results
