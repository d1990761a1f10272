"""Decontamination speed and memory: ~40k real training records (flan_cot + alpaca + dolly + alpaca_gpt4) against
the scored items of all six H6 benchmarks, local engine vs Spark local[2], each in its own process, in one run.

Reports per engine: benchmark index build time and size, records/s of the benchmark screen (Table 8 names +
13-gram index, the index in memory), records/s of the whole job with exact and MinHash near dedup, peak RSS of the
process tree (sampled; for Spark it includes the JVM and Python workers), and whether both engines dropped the
same records. Target: local screen >= 20k records/s on a 2-core machine.

    DUSK_DATA_DIR=../shared/data .venv/bin/python bench/decontam.py
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
    from dusk.data.decontam import H6_TASKS, DecontamConfig, benchmark_items_for, decide_local
    from dusk.data.ngrams import NgramIndex
    from dusk.data.registry import load_raw

    records = [row.fields for name in SETS for row in load_raw(name)]
    start = time.perf_counter()
    index = NgramIndex.build(benchmark_items_for(H6_TASKS))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=["local", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--engines", default="local,spark", help="comma-separated engines to run")
    args = parser.parse_args()
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
