"""Mixtures: determinism, sampling amounts, provenance, token counts, empty-after-filter errors; the data CLI."""

import pytest

from dusk.cli import main
from dusk.data.mixture import build, load_mixture, token_counts, write_mixture
from dusk.data.registry import load_records
from dusk.errors import DuskError
from dusk.models.tiny import train_tiny_tokenizer
from tests.data_fixtures import read_jsonl, real_data_dir


@pytest.fixture
def data_env(monkeypatch):
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))


def _mix(tmp_path, text: str):
    path = tmp_path / "mix.yaml"
    path.write_text(text, encoding="utf-8")
    return load_mixture(path)


MIX = """
seed: 7
sources:
  - {dataset: alpaca_gpt4, max_examples: 40}
  - {dataset: dolly, weight: 0.01}
  - {dataset: orca_dpo_pairs, max_examples: 5}
"""


def test_mixture_is_deterministic_and_traceable(data_env, tmp_path):
    first, stats = build(_mix(tmp_path, MIX.replace("orca_dpo_pairs", "gsm8k_train")))
    again, _ = build(_mix(tmp_path, MIX.replace("orca_dpo_pairs", "gsm8k_train")))
    other, _ = build(_mix(tmp_path, MIX.replace("orca_dpo_pairs", "gsm8k_train").replace("seed: 7", "seed: 8")))
    assert first == again and first != other
    assert {name: entry["selected"] for name, entry in stats.items()} == {
        "alpaca_gpt4": 40,
        "dolly": 30,
        "gsm8k_train": 5,
    }
    sources = {name: load_records(name) for name in stats}
    for record in first:  # provenance points back at the exact source record
        origin = record["provenance"]
        body = {key: value for key, value in record.items() if key != "provenance"}
        assert sources[origin["dataset"]][origin["index"]] == body
    assert len({(r["provenance"]["dataset"], r["provenance"]["index"]) for r in first}) == len(first)  # no repeats
    out = write_mixture(first, tmp_path / "mix.jsonl")
    assert read_jsonl(out) == first
    assert load_records(out)[0]["provenance"] == first[0]["provenance"]


def test_preference_in_instruction_mix_uses_chosen_and_weight_upsamples(data_env, tmp_path):
    records, stats = build(
        _mix(tmp_path, "[{dataset: gsm8k_train, max_examples: 3}, {dataset: orca_dpo_pairs, weight: 2}]")
    )
    assert stats["orca_dpo_pairs"]["selected"] == 568
    orca = [r for r in records if r["provenance"]["dataset"] == "orca_dpo_pairs"]
    assert sorted(r["provenance"]["index"] for r in orca) == sorted(list(range(284)) * 2)
    assert all("response" in r and "rejected" not in r for r in orca)


def test_token_counts_per_source(data_env, tmp_path):
    records, _ = build(_mix(tmp_path, "[{dataset: alpaca_gpt4, max_examples: 4}, {dataset: dolly, max_examples: 2}]"))
    tokenizer = train_tiny_tokenizer()
    counts = token_counts(records, tokenizer)
    from dusk.data.templates import render

    expected = sum(
        len(tokenizer("".join(render(r)))["input_ids"]) for r in records if r["provenance"]["dataset"] == "dolly"
    )
    assert counts["dolly"] == expected and counts["alpaca_gpt4"] > 0


def test_empty_mixture_names_the_filter(data_env, tmp_path):
    with pytest.raises(DuskError, match="mixture is empty after filtering: dolly: max_chars removed all 2996"):
        build(_mix(tmp_path, "[{dataset: dolly, max_chars: 5}]"))
    with pytest.raises(DuskError, match="invalid mixture: sources.0: give max_examples or weight"):
        _mix(tmp_path, "[{dataset: dolly, max_examples: 5, weight: 1}]")
    with pytest.raises(DuskError, match="unknown dataset 'nope'"):
        build(_mix(tmp_path, "[{dataset: nope}]"))


def _run(argv: list[str]) -> int:
    return main(argv)


def test_cli_list_show_mix(data_env, tmp_path, capsys):
    assert _run(["data", "list"]) == 0
    listing = capsys.readouterr().out
    assert "flan_cot" in listing and "25970" in listing and "hh_rlhf_test_sample" in listing
    assert _run(["data", "show", "alpaca_gpt4", "-n", "1"]) == 0
    assert "### User:\nDescribe a process of making crepes.\n\n### Assistant:\nMaking crepes" in capsys.readouterr().out
    (tmp_path / "m.yaml").write_text("[{dataset: dolly, max_examples: 3}]", encoding="utf-8")
    assert _run(["data", "mix", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "m.jsonl")]) == 0
    assert len(read_jsonl(tmp_path / "m.jsonl")) == 3
    (tmp_path / "bad.yaml").write_text("[{dataset: dolly, max_chars: 1}]", encoding="utf-8")
    assert _run(["data", "mix", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "bad.jsonl")]) == 2
    assert "max_chars" in capsys.readouterr().err
    assert not (tmp_path / "bad.jsonl").exists() and not list(tmp_path.glob(".bad.jsonl*"))
