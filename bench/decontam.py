"""Decontamination speed and memory: ~40k real training records (flan_cot + alpaca + dolly + alpaca_gpt4) against
the scored items of all six H6 benchmarks, local engine vs Spark local[2], each in its own process, in one run.

Reports per engine: benchmark index build time and size, records/s of the benchmark screen (Table 8 names +
13-gram index, the index in memory), records/s of the whole job with exact and MinHash near dedup, peak RSS of the
process tree (sampled; for Spark it includes the JVM and Python workers), and whether both engines dropped the
same records. Target: local screen >= 20k records/s on a 2-core machine.

`--short-items` measures instead what matching short benchmark items whole costs: per training set, the records the
n-gram rule drops without it (the harness's behaviour) and with it at several minimum item lengths, plus a sample of
the records it adds, with the item each one matched (the table in docs/data.md).

    DUSK_DATA_DIR=../shared/data .venv/bin/python bench/decontam.py
    DUSK_DATA_DIR=../shared/data .venv/bin/python bench/decontam.py --short-items --min-words 4,6,8,10
"""

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

SETS = ("flan_cot", "alpaca", "dolly", "alpaca_gpt4")
TRAINING_SETS = (
    "alpaca_gpt4",
    "alpaca",
    "dolly",
    "flan_cot",
    "gsm8k_train",
    "ultrafeedback",
    "hh_rlhf",
    "hh_rlhf_test_sample",
    "orca_dpo_pairs",
    "llamafactory_dpo_demo",
    "gutenberg",
    "tinyshakespeare",
    "llamafactory_text_demo",
)


class PeakRss:
    """Peak summed RSS of this process and its descendants, sampled every 50 ms."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def tree_cpu_seconds() -> float:
    """User + system CPU seconds of this process and its live descendants (the JVM and Python workers for Spark)."""
    total = 0.0
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def worker(engine: str, result_path: Path) -> None:
    """Run one engine and write its figures as JSON."""
    rss = PeakRss()
    from dusk.data.decontam import DecontamConfig, benchmark_items_for, decide_local
    from dusk.data.ngrams import NgramIndex
    from dusk.data.registry import load_raw
    from dusk.h6 import H6_DATASETS

    records = [row.fields for name in SETS for row in load_raw(name)]
    start = time.perf_counter()
    index = NgramIndex.build(benchmark_items_for(H6_DATASETS))
    figures = {"records": len(records), "index_build_s": time.perf_counter() - start, "index": index.stats()}
    decide = decide_local
    if engine == "spark":
        from dusk.data.spark import decide_spark, get_session

        start = time.perf_counter()
        get_session("local[2]").sparkContext.setLogLevel("ERROR")
        figures["spark_startup_s"] = time.perf_counter() - start
        decide = decide_spark
    for label, cfg in (("screen", DecontamConfig(dedup=False, near_dedup=False)), ("full", DecontamConfig())):
        start, cpu = time.perf_counter(), tree_cpu_seconds()
        dropped = decide(records, index, cfg)
        seconds, cpu = time.perf_counter() - start, tree_cpu_seconds() - cpu
        figures[label] = {
            "seconds": seconds,
            "cpu_s": cpu,
            "records_per_s": len(records) / seconds,
            "dropped": {str(i): v.rule for i, v in sorted(dropped.items())},
        }
    figures["peak_rss_mib"] = rss.stop()
    result_path.write_text(json.dumps(figures))


def _summary(engine: str, figures: dict) -> str:
    rules: dict[str, int] = {}
    for rule in figures["full"]["dropped"].values():
        rules[rule] = rules.get(rule, 0) + 1
    cpu = figures["screen"]["cpu_s"]
    cpu_note = f", screen CPU {cpu:.2f} s = {figures['records'] / cpu:,.0f} rec/CPU-s"
    startup = f", Spark startup {figures['spark_startup_s']:.1f} s" if "spark_startup_s" in figures else ""
    return (
        f"{engine:>5}: screen {figures['screen']['records_per_s']:>9,.0f} rec/s ({figures['screen']['seconds']:.2f} s)"
        f" | full job {figures['full']['records_per_s']:>7,.0f} rec/s ({figures['full']['seconds']:.1f} s)"
        f" | peak RSS {figures['peak_rss_mib']:,.0f} MiB{startup}{cpu_note} | dropped {rules}"
    )


def _ngram_drops(records: list[dict], index) -> dict[int, dict]:
    """Record index -> n-gram verdict detail (rule 2 only: no task names, no dedup)."""
    from dusk.data.decontam import DecontamConfig, decide_local

    cfg = DecontamConfig(task_names=False, dedup=False, near_dedup=False)
    return {i: v.detail for i, v in decide_local(records, index, cfg).items()}


def short_items(thresholds: list[int], samples: int) -> None:
    """Print, per training set, n-gram drops without short-item matching and with it at each minimum length, then a
    sample of the added drops at the smallest threshold."""
    import random

    from dusk.data.decontam import benchmark_items_for, record_text
    from dusk.data.ngrams import NgramIndex
    from dusk.data.registry import load_raw
    from dusk.h6 import H6_DATASETS

    items = benchmark_items_for(H6_DATASETS)
    data = {name: [row.fields for row in load_raw(name)] for name in TRAINING_SETS}
    columns = {"off": NgramIndex.build(items, 13, 13), **{f">={m}": NgramIndex.build(items, 13, m) for m in thresholds}}
    drops = {
        label: {name: _ngram_drops(records, index) for name, records in data.items()}
        for label, index in columns.items()
    }
    print(f"{'dataset':<24} {'records':>8} " + " ".join(f"{label:>6}" for label in columns))
    for name, records in data.items():
        print(f"{name:<24} {len(records):>8} " + " ".join(f"{len(drops[label][name]):>6}" for label in columns))
    totals = " ".join(f"{sum(len(d) for d in drops[label].values()):>6}" for label in columns)
    print(f"{'TOTAL':<24} {sum(map(len, data.values())):>8} {totals}")
    for label in list(columns)[1:]:
        added = [(name, i, detail) for name in data for i, detail in drops[label][name].items() if detail["whole_item"]]
        print(f"\n{label} words: {len(added)} records dropped by a whole short item; a sample:")
        for name, i, detail in random.Random(0).sample(added, min(samples, len(added))):
            text = " ".join(record_text(data[name][i]).split())
            where = text.lower().find(detail["ngram"].split()[0])
            context = text[max(where - 60, 0) : where + 140]
            print(f"  {name}#{i} {detail['task']}/{detail['doc_id']} [{detail['ngram']}] ... {context} ...")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=["local", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--engines", default="local,spark", help="comma-separated engines to run")
    parser.add_argument("--short-items", action="store_true", help="measure whole-item matching of short items")
    parser.add_argument("--min-words", default="1,4,6,8,10", help="minimum item lengths for --short-items")
    parser.add_argument("--samples", type=int, default=25, help="added drops shown per threshold (--short-items)")
    args = parser.parse_args()
    if args.short_items:
        return short_items([int(m) for m in args.min_words.split(",")], args.samples)
    if args.worker:
        return worker(args.worker, args.result)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines.split(","):
            path = Path(tmp) / f"{engine}.json"
            subprocess.run(
                [sys.executable, __file__, "--worker", engine, "--result", str(path)],
                check=True,
                stderr=subprocess.DEVNULL,
            )
            results[engine] = json.loads(path.read_text())
    first = next(iter(results.values()))
    index = first["index"]
    print(f"load average at the end: {', '.join(f'{x:.1f}' for x in psutil.getloadavg())} on {psutil.cpu_count()} CPUs")
    print(f"{first['records']} records ({' + '.join(SETS)}) vs 6 benchmarks")
    print(
        f"index: {index['items']} items, {index['ngrams']:,} 13-grams ({index['distinct_ngrams']:,} distinct), "
        f"vocabulary {index['vocabulary']:,} words, {index['array_bytes'] / 2**20:.1f} MiB of arrays, "
        f"built in {first['index_build_s']:.2f} s; {index['items_shorter_than_n']} items shorter than 13 words"
    )
    for engine, figures in results.items():
        print(_summary(engine, figures))
    if len(results) == 2:
        same = results["local"]["full"]["dropped"] == results["spark"]["full"]["dropped"]
        print(f"engines agree on every dropped record and rule: {same}")
        ratio = results["local"]["full"]["seconds"] / results["spark"]["full"]["seconds"]
        print(f"full job time ratio spark/local: {1 / ratio:.2f}x")


if __name__ == "__main__":
    main()
