"""The benchmark n-gram index: which training texts share a 13-gram with a benchmark item, fast and exact.

Normalisation is lm-evaluation-harness's (`lm_eval/decontamination/janitor.py`): ASCII letters lower-cased, every
character of `string.punctuation` deleted, then split on whitespace; an n-gram is n consecutive words.

Items shorter than n words have no n-gram. The harness lets them never match; here such an item matches as a whole
(its complete normalised word sequence must appear, contiguous, in the training text), which is the GPT-3 paper's
variable-length rule (Appendix C: the overlap length shrinks for short examples). Items shorter than `min_words`
words are left out: a sequence like "yes" or "the answer is 4" occurs in unrelated texts (see docs/data.md for the
measurement behind the default).

Speed: words map to integer ids through the benchmark vocabulary (a word no benchmark uses cannot be part of a
matching window), a batch of texts becomes one id array, every window gets a 64-bit polynomial hash with numpy (the
hashes of length k are built from those of length k - 1, so all lengths up to n cost one pass each), and hashes are
looked up by binary search in a sorted table per length. Each hash hit is then checked word by word, so a hash
collision can never drop a record.

    DUSK_DATA_DIR=../shared/data python -c "from dusk.data.ngrams import *; print(NgramIndex.build([]).stats())"
"""

import string
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

TRANSLATION = str.maketrans(string.ascii_uppercase, string.ascii_lowercase, string.punctuation)
MIN_WORDS = 8  # shortest item matched as a whole (the GPT-3 paper's smallest overlap length); see docs/data.md
_FILTER_SIZE = 1 << 24  # bits of the hash pre-filter (16 MiB of bools; ~7% filled by 1.1M n-grams)
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the rolling hash (wraps mod 2**64)


def normalize_words(text: str) -> list[str]:
    """lm-eval's decontamination normalisation: lower-case ASCII, delete punctuation, split on whitespace."""
    return text.translate(TRANSLATION).split()


@dataclass(frozen=True)
class BenchmarkItem:
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
    """A training text's first window shared with a benchmark item."""

    task: str
    doc_id: str
    ngram: str  # the shared words, normalised (n of them, or the whole of a short item)
    whole_item: bool = False  # a short item (fewer than n words) found complete


@dataclass(frozen=True)
class _Table:
    """Sorted hashes of the indexed length-k windows, with where each window starts in the items' word ids."""

    k: int
    hashes: np.ndarray
    positions: np.ndarray


class _Vocab(dict):
    def __missing__(self, key: str) -> int:
        return 0  # not a benchmark word


def _growing_hashes(ids: np.ndarray, longest: int) -> Iterator[tuple[int, np.ndarray]]:
    """(k, polynomial hash of every length-k window of `ids`) for k = 1..longest; length k extends length k - 1."""
    values = ids.astype(np.uint64)
    hashes = values
    with np.errstate(over="ignore"):
        for k in range(1, longest + 1):
            if k > 1:
                hashes = hashes[:-1] * _BASE + values[k - 1 :]
            yield k, hashes


def _table(k: int, hashes: np.ndarray, positions: np.ndarray) -> _Table:
    order = np.argsort(hashes, kind="stable")
    return _Table(k, hashes[order], positions[order].astype(np.int64))


class NgramIndex:
    """Hash tables of the benchmark items: every n-gram, and every short item whole, for exact checking."""

    def __init__(
        self, items: list[BenchmarkItem], n: int, vocab: dict, item_ids: np.ndarray, offsets: np.ndarray, min_words: int
    ) -> None:
        self.items, self.n, self.min_words, self.vocab = items, n, min_words, _Vocab(vocab)
        self.item_ids, self.offsets = item_ids, offsets  # all items' word ids concatenated; item i starts at offsets[i]
        self.lengths = np.diff(offsets)
        short = sorted({int(k) for k in self.lengths if min_words <= k < n})
        self.tables: dict[int, _Table] = {}
        for k, hashes in _growing_hashes(item_ids, n):
            if k == n:
                starts = [np.arange(offsets[i], offsets[i + 1] - n + 1) for i in range(len(items))]
                positions = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
                self.tables[k] = _table(k, hashes[positions], positions)
            elif k in short:
                positions = offsets[:-1][self.lengths == k]
                self.tables[k] = _table(k, hashes[positions], positions)
        if n not in self.tables:  # no item words at all
            self.tables[n] = _Table(n, np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64))
        self.filter = np.zeros(_FILTER_SIZE, dtype=bool)  # one-probe pre-check of n-grams before the binary search
        self.filter[(self.tables[n].hashes & np.uint64(_FILTER_SIZE - 1)).astype(np.int64)] = True
        self.by_id = {(item.task, item.doc_id): item for item in items}

    @classmethod
    def build(cls, items: list[BenchmarkItem], n: int = 13, min_words: int = MIN_WORDS) -> "NgramIndex":
        """Index every n-gram of every item's question + answer text, and every item of min_words..n-1 words whole."""
        vocab: dict[str, int] = {}
        arrays, offsets = [], [0]
        for item in items:
            ids = [vocab.setdefault(word, len(vocab) + 1) for word in normalize_words(item.text)]
            arrays.append(np.asarray(ids, dtype=np.int64))
            offsets.append(offsets[-1] + len(ids))
        item_ids = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        return cls(items, n, vocab, item_ids, np.asarray(offsets, dtype=np.int64), min_words)

    def stats(self) -> dict:
        """Index size: items, n-grams, vocabulary, short items (matched whole / too short), bytes of the arrays."""
        grams = self.tables[self.n].hashes
        arrays = sum(table.hashes.nbytes + table.positions.nbytes for table in self.tables.values())
        arrays += self.item_ids.nbytes + self.offsets.nbytes + self.filter.nbytes
        short = self.lengths < self.n
        return {
            "items": len(self.items),
            "ngrams": int(len(grams)),
            "distinct_ngrams": int(len(np.unique(grams))),
            "vocabulary": len(self.vocab),
            "items_shorter_than_n": int(short.sum()),
            "items_matched_whole": int((short & (self.lengths >= self.min_words)).sum()),
            "items_too_short": int((self.lengths < min(self.min_words, self.n)).sum()),
            "array_bytes": int(arrays),
        }

    def _item_at(self, position: int) -> int:
        return int(np.searchsorted(self.offsets, position, side="right") - 1)

    def _verify(self, table: _Table, ids: np.ndarray, start: int, hash_value: np.uint64) -> int | None:
        """The item index whose indexed window equals ids[start:start+k] (exact word comparison), or None."""
        window = ids[start : start + table.k]
        low = np.searchsorted(table.hashes, hash_value, side="left")
        high = np.searchsorted(table.hashes, hash_value, side="right")
        for entry in range(low, high):
            position = table.positions[entry]
            if np.array_equal(self.item_ids[position : position + table.k], window):
                return self._item_at(position)
        return None

    def _candidates(self, table: _Table, hashes: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Window starts whose hash is in the table (n-grams go through the one-probe pre-filter first)."""
        windows = np.flatnonzero(valid)
        if table.k == self.n:
            windows = windows[self.filter[(hashes[windows] & np.uint64(_FILTER_SIZE - 1)).astype(np.int64)]]
        slot = np.minimum(np.searchsorted(table.hashes, hashes[windows]), len(table.hashes) - 1)
        return windows[table.hashes[slot] == hashes[windows]]

    def find(self, texts: list[str]) -> list[Match | None]:
        """For each text, its first n-gram (in text order) shared with a benchmark item; failing that, the first
        short item it contains whole (the longest where several start at the same word); else None."""
        words = [normalize_words(text) for text in texts]
        flat = [word for text_words in words for word in text_words]
        ids = np.fromiter(map(self.vocab.__getitem__, flat), dtype=np.int64, count=len(flat))
        bounds = np.cumsum([0] + [len(w) for w in words])
        best: dict[int, tuple[tuple[int, int, int], Match]] = {}
        zeros = np.concatenate([[0], np.cumsum(ids == 0)])
        owner = np.searchsorted(bounds, np.arange(len(ids)), side="right") - 1
        for k, hashes in _growing_hashes(ids, self.n):
            table = self.tables.get(k)
            if table is None or not len(table.hashes) or not len(hashes):
                continue
            starts = np.arange(len(hashes))
            clean = zeros[k:] == zeros[:-k]  # no out-of-vocabulary word in the window
            inside = starts + k <= bounds[owner[: len(hashes)] + 1]  # the window does not cross texts
            for start in self._candidates(table, hashes, clean & inside):
                text, offset = int(owner[start]), int(start - bounds[owner[start]])
                rank = (int(k < self.n), offset, -k)
                if text in best and best[text][0] <= rank:
                    continue
                if (item := self._verify(table, ids, int(start), hashes[start])) is not None:
                    found = self.items[item]
                    match = Match(found.task, found.doc_id, " ".join(words[text][offset : offset + k]), k < self.n)
                    best[text] = (rank, match)
        return [best[text][1] if text in best else None for text in range(len(texts))]
