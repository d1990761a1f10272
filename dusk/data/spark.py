"""The decontamination and dedup job on PySpark: same rules, same functions, same output as the local engine.

The benchmark n-gram index is broadcast to the executors; each partition screens its records (Table 8 names, n-grams)
and computes exact keys and MinHash signatures; exact duplicates are grouped by key and near-duplicate candidates by
LSH band key across the cluster. Only the verified duplicate pairs come back to the driver, which resolves them in
record order exactly as the local engine does, so both engines drop the same records.

Point it at a cluster with any master URL (`spark://host:7077`, `yarn`, `k8s://...`); the executors need this
package installed (`pip install dusk[spark]`) and Java 17.

    DUSK_DATA_DIR=../shared/data dusk data decontaminate flan_cot --out /tmp/f.jsonl --engine spark
"""

import os
import sys
from collections.abc import Iterator

from dusk.data.decontam import DecontamConfig, Verdict, record_text, screen
from dusk.data.dedup import band_keys, bucket_edges, exact_key, resolve, signature
from dusk.data.ngrams import NgramIndex
from dusk.errors import DuskError


def require_pyspark() -> None:
    """Refuse `--engine spark` where PySpark is not installed, with the command that installs it."""
    try:
        import pyspark  # noqa: F401
    except ImportError as exc:
        raise DuskError("--engine spark needs PySpark and Java 17: pip install 'dusk[spark]'") from exc


def get_session(master: str = "local[2]"):
    """The active SparkSession, or a new one on `master` (UI off; executors use this Python)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName("dusk-decontaminate")
    return builder.config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "8").getOrCreate()


def _screen_partition(rows: Iterator, index: NgramIndex | None, cfg: DecontamConfig) -> Iterator[tuple]:
    """(record, verdict or None, text of a survivor or None) for one partition."""
    batch = list(rows)
    verdicts = screen([record for _, record in batch], index, cfg)
    for (position, record), verdict in zip(batch, verdicts, strict=True):
        yield position, verdict, None if verdict is not None else record_text(record)


def _exact_dropped(survivors) -> dict[int, int]:
    """Dropped -> first record with the same exact key, grouped by key on the cluster."""
    keyed = survivors.map(lambda row: (exact_key(row[1]), row[0])).groupByKey()
    pairs = keyed.flatMap(lambda group: [(other, min(group[1])) for other in sorted(group[1])[1:]])
    return dict(pairs.collect())


def _near_edges(survivors, threshold: float) -> list[tuple[int, int]]:
    """Verified near-duplicate pairs: signatures and buckets built on the cluster."""
    signed = survivors.map(lambda row: (row[0], signature(row[1])))
    buckets = signed.flatMap(lambda row: [(key, row) for key in band_keys(row[1])]).groupByKey()
    edges = buckets.flatMap(lambda bucket: bucket_edges(list(bucket[1]), threshold) if len(bucket[1]) > 1 else [])
    return edges.distinct().collect()


def decide_spark(records: list[dict], index: NgramIndex | None, cfg: DecontamConfig, master: str = "local[2]"):
    """Record index -> verdict for every dropped record, computed with Spark (same result as decide_local)."""
    context = get_session(master).sparkContext
    index_b = context.broadcast(index)
    slices = max(2, min(len(records) // 2000 + 1, 64))
    rows = context.parallelize(list(enumerate(records)), slices)
    screened = rows.mapPartitions(lambda part: _screen_partition(part, index_b.value, cfg)).cache()
    dropped = dict(screened.filter(lambda row: row[1] is not None).map(lambda row: (row[0], row[1])).collect())
    survivors = screened.filter(lambda row: row[1] is None).map(lambda row: (row[0], row[2]))
    if cfg.dedup:
        exact = _exact_dropped(survivors)
        dropped.update({i: Verdict("exact_dup", {"duplicate_of": kept}) for i, kept in exact.items()})
        survivors = survivors.filter(lambda row, gone=frozenset(exact): row[0] not in gone)
    if cfg.near_dedup:
        ids = survivors.map(lambda row: row[0]).collect()
        near = resolve(ids, _near_edges(survivors, cfg.threshold))
        dropped.update({i: Verdict("near_dup", {"duplicate_of": kept}) for i, kept in near.items()})
    screened.unpersist()
    index_b.unpersist()
    return dropped
