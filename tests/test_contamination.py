"""The contamination test's parts, each checked against an independent computation on the tiny models, and its
bad input (different tokenizers, --n larger than the split, items too short for a prefix)."""

import argparse
import json
import logging
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from eval_task_fixtures import real_data_dir

from dusk.contamination import commands as contamination_commands
from dusk.contamination.items import (
    DATASETS,
    ContaminationItem,
    expand_task_names,
    natural_text,
    select_items,
    split_prefix,
    task_items,
)
from dusk.contamination.min_k import min_k_prob, min_k_profile
from dusk.contamination.run import ContaminationConfig, load_pair, run, score_item
from dusk.contamination.scoring import sample_continuations, score_rows
from dusk.errors import DuskError
from dusk.hashing import sha256_dir
from dusk.models.io import load_model, load_tokenizer
from dusk.models.tiny import train_tiny_tokenizer

TEXTS = [
    "Question: What is the capital of France? Answer: Paris is the capital and the largest city of France.",
    "The man put the trophy in the suitcase because the suitcase was too small for the trophy to fit.",
    "She sold 48 clips in April and half as many in May, so she sold 72 clips altogether in those months.",
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models run faster on one thread (and far faster when other jobs share the two cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _full_logprobs(model, ids: list[int]) -> torch.Tensor:
    """Log-probability of every token after the first, from one plain forward of the whole sequence."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]


def test_min_k_prob_by_hand() -> None:
    logprobs = torch.tensor([-1.0, -5.0, -3.0, -2.0])
    assert min_k_prob(logprobs, 50) == pytest.approx(-4.0)  # lowest 2 of 4: -5, -3
    assert min_k_prob(logprobs, 5) == pytest.approx(-5.0)  # at least one token
    assert min_k_prob(logprobs, 100) == pytest.approx(-2.75)
    assert min_k_profile(logprobs, (25, 75)) == {"25": pytest.approx(-5.0), "75": pytest.approx(-10 / 3)}
    with pytest.raises(ValueError):
        min_k_prob(torch.tensor([]), 20)


def test_split_prefix_takes_40_percent_of_the_words_and_keeps_the_text() -> None:
    text = "  one two three four five\nsix seven eight nine ten eleven  "
    split = split_prefix(text)
    assert split.words == 11 and split.prefix_words == math.ceil(0.4 * 11) == 5
    assert split.prefix == "one two three four five"
    assert split.rest == "\nsix seven eight nine ten eleven  "  # whitespace (newlines too) kept with the rest
    assert split_prefix("too short to test") is None  # 4 words < min_words 5
    assert split_prefix("a b", ratio=0.5, min_words=2).rest == " b"
    assert split_prefix("a b", ratio=0.9, min_words=2) is None  # nothing left after the prefix


def test_item_texts_in_each_tasks_natural_form() -> None:
    assert natural_text("winogrande", "The cat chased the dog so _ ran away.", "the dog") == (
        "The cat chased the dog so the dog ran away."
    )
    assert natural_text("arc_challenge", "Which is a star? ", " The Sun") == "Which is a star? The Sun"
    assert expand_task_names(["h6", "gsm8k"]) == list(DATASETS)
    with pytest.raises(DuskError, match="unknown task 'arc'; known: h6, arc_challenge"):
        expand_task_names(["arc"])


def test_item_texts_from_the_benchmark_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    root = real_data_dir()
    first = json.loads((root / "winogrande" / "dev.jsonl").read_text().splitlines()[0])
    winogrande = task_items("winogrande")
    assert len(winogrande) == 1267
    assert winogrande[0].text == first["sentence"].replace("_", first["option" + first["answer"]])
    gsm8k = json.loads((root / "gsm8k" / "test.jsonl").read_text().splitlines()[0])
    assert task_items("gsm8k")[0].text == gsm8k["question"] + " " + gsm8k["answer"]
    arc = task_items("arc_challenge")
    assert len(arc) == 1172 and all("_" not in item.doc_id for item in arc)


def test_select_items_is_seeded_and_uses_all_when_n_is_large() -> None:
    items = [ContaminationItem("t", str(i), f"text {i}") for i in range(30)]
    first, again, other = select_items(items, 10, 0), select_items(items, 10, 0), select_items(items, 10, 1)
    assert first == again and first != other and len(set(first)) == 10
    assert sorted(select_items(items, 100, 0), key=lambda item: int(item.doc_id)) == items


def test_score_rows_equals_a_plain_forward_per_row(tiny_llama: Path) -> None:
    model, tokenizer = load_model(tiny_llama), load_tokenizer(tiny_llama)
    prefix = tokenizer("The quick brown fox")["input_ids"]
    rows = torch.tensor([tokenizer(" jumps over the lazy dog", add_special_tokens=False)["input_ids"]] * 2)
    rows[1, 2] = 7
    prefix_lp, rows_lp = score_rows(model, prefix, rows)
    for row in range(2):
        full = _full_logprobs(model, prefix + rows[row].tolist())
        assert torch.allclose(torch.cat([prefix_lp, rows_lp[row]]), full, atol=1e-5)


def _greedy(model, prefix: list[int], length: int) -> list[int]:
    ids = list(prefix)
    for _ in range(length):
        with torch.no_grad():
            ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
    return ids[len(prefix) :]


def test_sampling_is_seeded_exact_length_and_never_draws_banned_ids(tiny_llama: Path) -> None:
    model = load_model(tiny_llama)
    prefix = [5, 9, 13]
    draw = lambda seed, **kw: sample_continuations(model, prefix, 12, 16, torch.Generator().manual_seed(seed), **kw)  # noqa: E731
    first = draw(0, banned_ids=list(range(0, 200)))
    assert first.shape == (16, 12) and bool((first >= 200).all())
    assert torch.equal(first, draw(0, banned_ids=list(range(0, 200))))
    assert not torch.equal(draw(0), draw(1))
    greedy = draw(3, top_k=1)
    assert all(row.tolist() == _greedy(model, prefix, 12) for row in greedy)


def test_item_score_is_the_share_of_samples_the_model_finds_easier(tiny_llama: Path, tiny_llama_4: Path) -> None:
    cfg = ContaminationConfig(model=str(tiny_llama), reference=str(tiny_llama_4), samples=12, seed=3)
    pair = load_pair(cfg)
    item = ContaminationItem("demo", "0", TEXTS[0])
    scored = score_item(pair, item, cfg)
    # Recompute independently: the same draw, then each row's mean NLL from a plain forward of prefix + row.
    from dusk.contamination.run import item_seed

    split = split_prefix(TEXTS[0])
    prefix = pair.tokenizer(split.prefix)["input_ids"]
    real = pair.tokenizer(split.rest, add_special_tokens=False)["input_ids"]
    generator = torch.Generator().manual_seed(item_seed(3, item))
    samples = sample_continuations(pair.reference, prefix, len(real), 12, generator, pair.banned_ids, 50)
    nll = lambda model, row: -_full_logprobs(model, prefix + row)[-len(real) :].double().mean().item()  # noqa: E731
    real_loss = nll(pair.model, real)
    sample_losses = [nll(pair.model, row.tolist()) for row in samples]
    assert scored.real_loss == pytest.approx(real_loss, abs=1e-5)
    assert scored.score == sum(loss < real_loss for loss in sample_losses) / 12
    assert scored.suspicious == (scored.score < 0.1)
    whole = _full_logprobs(pair.model, prefix + real)
    assert scored.min_k["20"] == pytest.approx(min_k_prob(whole, 20), abs=1e-5)
    whole_reference = _full_logprobs(pair.reference, prefix + real)
    assert scored.min_k_reference["20"] == pytest.approx(min_k_prob(whole_reference, 20), abs=1e-5)
    assert scored.continuation_tokens == len(real) and scored.prefix_words == math.ceil(0.4 * scored.words)


def test_model_sampler_draws_from_the_model_under_test(tiny_llama: Path, tiny_llama_4: Path) -> None:
    """With sampler=model the reference only enters Min-K: the score equals that of the model as its own reference,
    and differs from the reference-sampled score."""
    item = ContaminationItem("demo", "0", TEXTS[2])
    own = dict(model=str(tiny_llama), samples=12, seed=3, sampler="model")
    against_other = ContaminationConfig(reference=str(tiny_llama_4), **own)
    against_self = ContaminationConfig(reference=str(tiny_llama), **own)
    scored = score_item(load_pair(against_other), item, against_other)
    assert scored.sample_loss_mean == score_item(load_pair(against_self), item, against_self).sample_loss_mean
    by_reference = against_other.model_copy(update={"sampler": "reference"})
    assert score_item(load_pair(by_reference), item, by_reference).sample_loss_mean != scored.sample_loss_mean
    assert scored.min_k_reference != scored.min_k  # Min-K is still read off both models


def test_different_tokenizers_are_refused(tiny_llama: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-tokenizer"
    shutil.copytree(tiny_llama, other)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (other / name).unlink(missing_ok=True)
    train_tiny_tokenizer(vocab_size=300).save_pretrained(other)
    with pytest.raises(DuskError, match="different tokenizers .*300 vs 384 tokens"):
        load_pair(ContaminationConfig(model=str(other), reference=str(tiny_llama)))


def test_run_writes_results_table_and_items_and_counts_skips(
    tiny_llama: Path, tiny_llama_4: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = [ContaminationItem("winogrande", str(i), text) for i, text in enumerate(TEXTS)] + [
        ContaminationItem("winogrande", "3", "Too short.")
    ]
    cfg = ContaminationConfig(model=str(tiny_llama), reference=str(tiny_llama_4), n=10, samples=6, out=tmp_path / "o")
    with caplog.at_level(logging.WARNING):
        results = run(cfg, items_by_task={"winogrande": items})
    assert "--n 10 is larger than the split (4 items); testing all 4" in caplog.text
    document = json.loads(results.read_text())
    task = document["tasks"]["winogrande"]
    lines = [json.loads(line) for line in (results.parent / "samples_winogrande.jsonl").read_text().splitlines()]
    assert (task["items"], task["skipped_too_short"], task["requested"], task["available"]) == (3, 1, 10, 4)
    assert sorted(line["doc_id"] for line in lines) == ["0", "1", "2"]
    assert task["result_below_threshold"] == pytest.approx(sum(line["score"] < 0.1 for line in lines) / 3)
    assert task["mean_score"] == pytest.approx(sum(line["score"] for line in lines) / 3)
    assert task["min_k_delta"]["20"] == pytest.approx(task["min_k"]["20"] - task["min_k_reference"]["20"])
    settings = document["settings"]
    assert settings["model_sha256"] == sha256_dir(tiny_llama) and settings["samples"] == 6
    assert settings["reference_sha256"] == sha256_dir(tiny_llama_4) and settings["dusk_version"]
    table = (results.parent / "table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith(f"| {tiny_llama} |"))
    assert row.split("|")[2].strip() == f"{task['result_below_threshold']:.2f}"
    assert "| Model | Winogrande |" in table and "near 1 = the model very likely trained" in table


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dusk")
    contamination_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_cli_runs_on_the_data_directory(tiny_llama: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    data = tmp_path / "data" / "winogrande"
    data.mkdir(parents=True)
    sentence = "The trophy did not fit in the suitcase because _ was too big."
    records = [
        {"qID": "a", "sentence": sentence, "option1": "the trophy", "option2": "the suitcase", "answer": "1"},
        {"qID": "b", "sentence": "_ won.", "option1": "Ann", "option2": "Bo", "answer": "2"},
    ]
    (data / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.setenv("DUSK_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "cli-out"
    argv = ["contamination", str(tiny_llama), "--reference", str(tiny_llama), "--tasks", "winogrande"]
    assert _cli([*argv, "--n", "5", "--samples", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "result < 0.1, %" in printed and "1 (1)" in printed  # one item tested, one skipped as too short
    task = json.loads((out / "results.json").read_text())["tasks"]["winogrande"]
    assert (task["items"], task["skipped_too_short"], task["available"]) == (1, 1, 2)
    first = json.loads((out / "samples_winogrande.jsonl").read_text())
    assert first["min_k"] == first["min_k_reference"]  # the model is its own reference
    assert "sampled by the reference" in printed
    assert _cli([*argv, "--samples", "4", "--sampler", "model", "--out", str(tmp_path / "by-model")]) == 0
    assert "sampled by the model" in capsys.readouterr().out
    document = json.loads((tmp_path / "by-model" / "results.json").read_text())
    assert document["settings"]["sampler"] == "model" and "tested model's sampled" in document["reading"]
    with pytest.raises(DuskError, match="--samples 0: Input should be greater than or equal to 1"):
        _cli([*argv, "--samples", "0"])
    with pytest.raises(DuskError, match="unknown task 'arc'"):
        _cli(["contamination", str(tiny_llama), "--reference", str(tiny_llama), "--tasks", "arc", "--out", str(out)])
