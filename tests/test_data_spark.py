"""The Spark engine gives byte-identical output and the same report as the local engine (one SparkSession, local[2])."""

import pytest

from dusk.data.decontam import DecontamConfig, decide_local
from dusk.data.decontam_job import DecontaminateJob, run
from dusk.data.ngrams import BenchmarkItem, NgramIndex
from tests.data_fixtures import real_data_dir, write_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark")
    from dusk.data.spark import get_session

    session = get_session("local[2]")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _records() -> list[dict]:
    import random

    rng = random.Random(1)
    vocabulary = [f"w{i}" for i in range(300)]
    records = []
    for i in range(60):
        words = rng.choices(vocabulary, k=60)
        records.append({"id": i, "text": " ".join(words)})
        if i % 10 == 0:
            records.append({"id": f"{i}-dup", "text": " ".join(words).upper()})  # exact duplicate
            records.append({"id": f"{i}-near", "text": " ".join(words[:-1] + ["changed"])})  # near duplicate
    records.append({"id": "planted", "text": "some words then " + " ".join(f"b{i}" for i in range(20))})
    records.append({"id": "flan", "_task_name": "cot_gsm8k", "text": "anything at all"})
    records.append({"id": "short", "text": "w1 w2 " + " ".join(f"s{i}" for i in range(9)) + " w3"})  # a whole item
    return records


def test_spark_matches_local_on_synthetic_records(spark):
    from dusk.data.spark import decide_spark

    records = _records()
    short = BenchmarkItem("mmlu", "x/1", " ".join(f"s{i}" for i in range(6)), " ".join(f"s{i}" for i in range(6, 9)))
    index = NgramIndex.build([BenchmarkItem("gsm8k", "9", " ".join(f"b{i}" for i in range(25))), short])
    cfg = DecontamConfig()
    local = decide_local(records, index, cfg)
    remote = decide_spark(records, index, cfg)
    assert remote == local
    assert {v.rule for v in local.values()} == {"ngram", "task_name", "exact_dup", "near_dup"}
    assert [v.detail["doc_id"] for v in local.values() if v.detail.get("whole_item")] == ["x/1"]


def test_spark_output_identical_on_real_data(spark, tmp_path, monkeypatch):
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    from dusk.data.registry import load_raw

    rows = [row.fields for row in load_raw("alpaca_gpt4")] + [row.fields for row in load_raw("dolly")][:1000]
    source = write_jsonl(tmp_path / "in.jsonl", rows + rows[:30])
    outputs = {}
    for engine in ("local", "spark"):
        job = DecontaminateJob(
            input=str(source), out=tmp_path / f"{engine}.jsonl", report=tmp_path / f"{engine}.json", engine=engine
        )
        out, report = run(job)
        outputs[engine] = (out.read_bytes(), report["datasets"], report["total"])
    assert outputs["spark"] == outputs["local"]
    assert outputs["local"][2]["dropped"]["exact_dup"] >= 30
