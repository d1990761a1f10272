"""Exact and near-duplicate detection that keeps one copy of every duplicate group (the first, in input order).

Exact: records whose normalised content text is identical. Near: MinHash (`datasketch`, word 5-gram shingles,
128 permutations) with LSH banding (16 bands x 8 rows); a candidate pair in a shared band is a duplicate when its
estimated Jaccard similarity is at least the threshold (0.8). A record is dropped when it is a duplicate of an
earlier record that was kept, so a group always keeps its first member. The Spark engine uses these same functions.

    python -c "from dusk.data.dedup import near_duplicates; print(near_duplicates(['a b c d e f', 'a b c d e f']))"
"""

import functools
import hashlib
from collections import defaultdict
from collections.abc import Iterable

import numpy as np
from datasketch import MinHash

from dusk.data.ngrams import normalize_words

NUM_PERM = 128
BANDS = 16
SHINGLE = 5
THRESHOLD = 0.8


def exact_key(text: str) -> str:
    """A digest of the normalised words: equal for texts differing only in case, punctuation, whitespace."""
    return hashlib.sha1(" ".join(normalize_words(text)).encode()).hexdigest()


@functools.cache
def _permutations(num_perm: int) -> np.ndarray:
    """datasketch's seed-1 permutations, made once (building them costs more than hashing a record)."""
    return MinHash(num_perm=num_perm, seed=1).permutations


def signature(text: str, num_perm: int = NUM_PERM) -> np.ndarray:
    """MinHash signature (datasketch, seed 1) over the word 5-gram shingles of the normalised text."""
    words = normalize_words(text)
    shingles = {" ".join(words[i : i + SHINGLE]) for i in range(max(len(words) - SHINGLE + 1, 1))}
    minhash = MinHash(num_perm=num_perm, seed=1, permutations=_permutations(num_perm), scheme="affine32")
    minhash.update_batch([shingle.encode() for shingle in shingles])
    return minhash.hashvalues.astype(np.uint64)


def band_keys(sig: np.ndarray, bands: int = BANDS) -> list[str]:
    """One key per LSH band: records sharing a key are candidate duplicates."""
    rows = len(sig) // bands
    return [f"{band}:{sig[band * rows : (band + 1) * rows].tobytes().hex()}" for band in range(bands)]


def similar(a: np.ndarray, b: np.ndarray, threshold: float = THRESHOLD) -> bool:
    """Estimated Jaccard similarity (share of equal MinHash values) at least `threshold`."""
    return float(np.mean(a == b)) >= threshold


def bucket_edges(members: list[tuple[int, np.ndarray]], threshold: float = THRESHOLD) -> list[tuple[int, int]]:
    """Verified (earlier, later) duplicate pairs among the records of one LSH bucket."""
    members = sorted(members, key=lambda member: member[0])
    edges = []
    for i, (first, sig_a) in enumerate(members):
        for second, sig_b in members[i + 1 :]:
            if similar(sig_a, sig_b, threshold):
                edges.append((first, second))
    return edges


def resolve(ids: Iterable[int], edges: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Dropped record -> the kept record it duplicates: walk in order, drop a record joined to an earlier kept one."""
    earlier = defaultdict(set)
    for first, second in edges:
        earlier[max(first, second)].add(min(first, second))
    dropped: dict[int, int] = {}
    for record in sorted(ids):
        kept = sorted(other for other in earlier.get(record, ()) if other not in dropped)
        if kept:
            dropped[record] = kept[0]
    return dropped


def exact_duplicates(keys: list[tuple[int, str]]) -> dict[int, int]:
    """Dropped record -> the first record with the same exact key."""
    first: dict[str, int] = {}
    dropped = {}
    for record, key in sorted(keys):
        if key in first:
            dropped[record] = first[key]
        else:
            first[key] = record
    return dropped


def near_edges(signatures: dict[int, np.ndarray], threshold: float = THRESHOLD) -> set[tuple[int, int]]:
    """All verified near-duplicate pairs, from LSH buckets."""
    buckets: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
    for record, sig in signatures.items():
        for key in band_keys(sig):
            buckets[key].append((record, sig))
    edges: set[tuple[int, int]] = set()
    for members in buckets.values():
        if len(members) > 1:
            edges.update(bucket_edges(members, threshold))
    return edges


def near_duplicates(texts: list[str], threshold: float = THRESHOLD) -> dict[int, int]:
    """Dropped index -> kept index for a list of texts (the local engine's near-dedup)."""
    signatures = {index: signature(text) for index, text in enumerate(texts)}
    return resolve(signatures, near_edges(signatures, threshold))
