"""Converters on real records of every training set, templates rendered exactly, and bad input messages."""

import gzip
import json

import pytest

from dusk.data.formats import convert, detect_format
from dusk.data.registry import DATASETS, load_raw, load_records
from dusk.data.templates import render, render_preference
from dusk.errors import DuskError
from dusk.models.tiny import train_tiny_tokenizer
from tests.data_fixtures import real_data_dir, write_jsonl


@pytest.fixture
def data_env(monkeypatch):
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))


def test_every_training_set_loads_with_its_declared_count(data_env):
    for name, info in DATASETS.items():
        if info.kind == "benchmark":
            continue
        raw = load_raw(name)
        records = load_records(name)
        assert len(raw) == info.records, name
        assert len(raw) - 10 <= len(records) <= len(raw), name  # only a handful of real records are invalid
        fields = {
            "text": {"text"},
            "instruction": {"prompt", "response"},
            "preference": {"prompt", "chosen", "rejected"},
        }
        for record in records:
            assert fields[info.kind] <= set(record), (name, record)
            assert all(record[key].strip() for key in fields[info.kind]), (name, record)


def test_alpaca_and_dolly_join_instruction_and_input(data_env):
    raw = [row.fields for row in load_raw("alpaca")]
    position = next(i for i, row in enumerate(raw) if row["input"].strip())
    record = load_records("alpaca")[position]
    assert record == {
        "prompt": raw[position]["instruction"] + "\n\n" + raw[position]["input"],
        "response": raw[position]["output"],
    }
    dolly = load_raw("dolly")[0].fields
    assert load_records("dolly")[0] == {"prompt": dolly["instruction"], "response": dolly["output"]}


def test_flan_cot_row_becomes_rationale_then_answer(data_env):
    path = real_data_dir() / "train/flan_cot/aqua_train.tsv"
    question, answer, rationale = path.read_text(encoding="utf-8").split("\n")[0].split("\t")
    record = load_records("flan_cot")[0]
    assert record["prompt"] == question.replace("\\n", "\n")
    assert record["response"] == rationale.replace("\\n", "\n").strip() + "\nSo the answer is " + answer + "."
    assert load_raw("flan_cot")[0].fields["_task_name"] == "cot_aqua"


def test_hh_rlhf_split_at_last_assistant_turn_matches_presplit_sample(data_env):
    with gzip.open(real_data_dir() / "train/hh_rlhf/harmless-base/test.jsonl.gz", "rt", encoding="utf-8") as handle:
        first = json.loads(handle.readline())
    record = load_records("hh_rlhf")[0]
    cut = first["chosen"].rfind("\n\nAssistant:")
    assert record["chosen"] == first["chosen"][cut + len("\n\nAssistant:") :].strip()
    assert first["chosen"][:cut].rstrip().endswith(record["prompt"])
    assert record["history"][0]["role"] == "user" and record["history"][-1]["role"] == "assistant"
    # SOURCE.md: 264 pairs of the pre-split sample equal harmless-base pairs once rebuilt; both converters agree on them
    keys = {json.dumps(r, sort_keys=True) for r in load_records("hh_rlhf")}
    assert sum(json.dumps(r, sort_keys=True) in keys for r in load_records("hh_rlhf_test_sample")) >= 250


def test_chat_style_preference_sets(data_env):
    orca = load_raw("orca_dpo_pairs")[0].fields
    record = load_records("orca_dpo_pairs")[0]
    assert record["system"] == orca["input"]["messages"][0]["content"]
    assert record["prompt"] == orca["input"]["messages"][1]["content"]
    assert record["chosen"] == orca["preferred_output"][0]["content"]
    factory = [row.fields for row in load_raw("llamafactory_dpo_demo")]
    position = next(i for i, row in enumerate(factory) if len(row["conversations"]) > 2)
    converted = load_records("llamafactory_dpo_demo")[position]
    assert converted["prompt"] == factory[position]["conversations"][-1]["value"]
    assert len(converted["history"]) == len(factory[position]["conversations"]) - 1
    assert load_records("orca_dpo_pairs", kind="instruction")[0]["response"] == record["chosen"]


def test_text_sets(data_env):
    wiki = (real_data_dir() / "train/llamafactory_text_demo/wiki_demo.txt").read_text(encoding="utf-8").split("\n")[0]
    assert load_records("llamafactory_text_demo")[0]["text"] == wiki
    assert all("\r" not in record["text"] for record in load_records("gutenberg"))


def test_solar_template_exact_text():
    record = {"prompt": "Add 2 and 3.", "response": "5", "system": "Be brief."}
    assert render(record) == ("### System:\nBe brief.\n\n### User:\nAdd 2 and 3.\n\n### Assistant:\n", "5")
    multi = {
        "prompt": "And 4?",
        "response": "9",
        "history": [{"role": "user", "content": "5+0?"}, {"role": "assistant", "content": "5"}],
    }
    assert "".join(render(multi)) == "### User:\n5+0?\n\n### Assistant:\n5\n\n### User:\nAnd 4?\n\n### Assistant:\n9"
    alpaca = convert("alpaca", {"instruction": "Translate.", "input": "Bonjour", "output": "Hello"})
    assert render(alpaca)[0] == "### User:\nTranslate.\n\nBonjour\n\n### Assistant:\n"
    assert render(alpaca, "stanford_alpaca")[0].endswith("### Instruction:\nTranslate.\n\nBonjour\n\n### Response:\n")


def test_chat_template_splits_prompt_and_response():
    tokenizer = train_tiny_tokenizer()
    prompt, response = render({"prompt": "Hi", "response": "Hello", "system": "S"}, "chat", tokenizer)
    assert prompt == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert response == "Hello<|im_end|>\n"
    _, chosen, rejected = render_preference({"prompt": "Hi", "chosen": "A", "rejected": "B"}, "chat", tokenizer)
    assert (chosen, rejected) == ("A<|im_end|>\n", "B<|im_end|>\n")
    with pytest.raises(DuskError, match="needs a tokenizer"):
        render({"prompt": "Hi", "response": "x"}, "chat")


def test_malformed_files_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(DuskError, match=r"bad\.jsonl:2: malformed JSON Lines record"):
        load_records(bad)
    array = tmp_path / "bad.json"
    array.write_text('[{"instruction": "a", "output": "b"},\n {"instruction": ]', encoding="utf-8")
    with pytest.raises(DuskError, match=r"bad\.json:2: malformed JSON"):
        load_records(array)
    tsv = tmp_path / "cot.tsv"
    tsv.write_text("q\ta\tr\nonly two\tcolumns\n", encoding="utf-8")
    with pytest.raises(DuskError, match=r"cot\.tsv:2: malformed TSV record: expected 3 tab-separated columns, got 2"):
        load_records(tsv)


def test_missing_field_and_empty_response_are_named(tmp_path):
    with pytest.raises(DuskError, match=r"x\.jsonl:2: missing required field 'output'"):
        load_records(write_jsonl(tmp_path / "x.jsonl", [{"instruction": "a", "output": "b"}, {"instruction": "c"}]))
    with pytest.raises(DuskError, match=r"y\.jsonl:1: field 'rejected' is empty"):
        load_records(write_jsonl(tmp_path / "y.jsonl", [{"prompt": "p", "chosen": "c", "rejected": " "}]))
    with pytest.raises(DuskError, match="unknown dataset 'alpacca'; known: .*alpaca_gpt4"):
        load_records("alpacca")
    with pytest.raises(DuskError, match="benchmark.*gsm8k_train"):
        load_records("gsm8k")


def test_format_detection():
    assert detect_format({"messages": []}) == "messages"
    assert detect_format({"chosen": "a", "rejected": "b"}) == "hh_rlhf"
    assert detect_format({"prompt": "Human: x", "chosen": "a", "rejected": "b"}) == "hh_split"
    assert detect_format({"question": "q", "answer": "a"}) == "gsm8k"
    sharegpt = {
        "conversations": [
            {"from": "system", "value": "S"},
            {"from": "human", "value": "Q"},
            {"from": "gpt", "value": "A"},
        ]
    }
    assert convert("messages", sharegpt) == {"prompt": "Q", "response": "A", "system": "S"}


def test_missing_local_files_never_reach_the_hub_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("DUSK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DuskError, match="alpaca.*not found under.*hub is offline"):
        load_records("alpaca")
    with pytest.raises(DuskError, match="flan_cot.*no hub copy"):
        load_records("flan_cot")
    monkeypatch.delenv("DUSK_DATA_DIR")
    with pytest.raises(DuskError, match="set DUSK_DATA_DIR"):
        load_records("dolly")
