"""The measure stage kinds (`perplexity`, `heldout`): their numbers equal a plain transformers computation, held-out
records never include the excluded training data, sDPO steps are scored against their own references, and a recipe
with measure stages reports each table with its paired differences and the lines that say what they show."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from train_fixtures import alpaca_pairs, preference_pairs, shakespeare_text, write_jsonl  # noqa: F401

from dusk.errors import DuskError
from dusk.measures import heldout, perplexity
from dusk.measures.config import HeldoutConfig, PerplexityConfig
from dusk.measures.results import label_of, read_results
from dusk.measures.stats import mean_se, paired
from dusk.models.io import load_model, load_tokenizer
from dusk.report.measures import MeasureColumn, MeasureRow, MeasureTable, paired_lines, reward_lines
from dusk.report.significance import Estimate


def _scores(out: Path) -> dict[str, dict]:
    return {row["label"]: row["scores"] for row in read_results(out)["rows"]}


def test_stats_mean_and_paired_difference() -> None:
    m = mean_se([1.0, 2.0, 3.0, 6.0])
    assert m.value == 3.0 and m.stderr == pytest.approx(math.sqrt(14 / 3 / 4)) and m.n == 4
    d = paired([1.0, 2.0, 3.0], [1.5, 2.5, 3.6])
    assert d.value == pytest.approx(0.5333333) and d.stderr == pytest.approx(0.0333333, rel=1e-4)
    assert mean_se([5.0]).stderr is None


def test_perplexity_equals_plain_transformers(tiny_llama_4, tiny_llama_4b, shakespeare_text, tmp_path) -> None:  # noqa: F811
    models = [str(tiny_llama_4), str(tiny_llama_4b)]
    cfg = PerplexityConfig(models=models, labels=["a", "b"], data=str(shakespeare_text), seq_len=24, sequences=5,
                           batch_size=2, out=tmp_path / "ppl")  # fmt: skip
    perplexity.run(cfg)
    scores = _scores(cfg.out)
    text = perplexity.read_text(cfg.data)
    ids = torch.tensor(perplexity.windows(text, load_tokenizer(tiny_llama_4), 5, 24))
    per_model = []
    for model_dir in (tiny_llama_4, tiny_llama_4b):
        model = load_model(model_dir)
        with torch.no_grad():
            per_model.append([model(input_ids=row[None], labels=row[None]).loss.item() for row in ids])
    for label, losses in zip("ab", per_model, strict=True):
        mean = sum(losses) / 5
        assert scores[label]["nll"]["value"] == pytest.approx(mean, abs=1e-5)
        assert scores[label]["ppl"]["value"] == pytest.approx(math.exp(mean), rel=1e-5)
        assert scores[label]["nll"]["n"] == 5
    diffs = [b - a for a, b in zip(*per_model, strict=True)]
    assert scores["b"]["nll_diff"]["value"] == pytest.approx(sum(diffs) / 5, abs=1e-5)
    assert "nll_diff" not in scores["a"]  # the first model is the reference of the paired differences


def test_perplexity_refuses_models_that_tokenize_differently(tiny_llama, shakespeare_text) -> None:  # noqa: F811
    cfg = PerplexityConfig(models=["x", "y"], data=str(shakespeare_text), seq_len=16, sequences=3)
    text = perplexity.read_text(cfg.data)
    ids = perplexity.windows(text, load_tokenizer(tiny_llama), 3, 16)

    def other(text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": [7] * 40}

    with pytest.raises(DuskError, match="tokenizer cuts the held-out text differently"):
        perplexity._check_same_tokens(other, "y", ids, text, cfg)


def _instruction_nll(model, tokenizer, prompt: str, response: str) -> float:
    """Mean NLL of the response tokens (+ EOS), prompt masked: transformers' own loss with labels -100 on the prompt."""
    p = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    r = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([p + r])
    labels = torch.tensor([[-100] * len(p) + r])
    with torch.no_grad():
        return model(input_ids=ids, labels=labels).loss.item()


def test_heldout_instruction_loss_and_exclusion(tiny_llama, alpaca_pairs, tmp_path) -> None:  # noqa: F811
    records = [json.loads(line) for line in alpaca_pairs.read_text().splitlines()]
    training = write_jsonl(tmp_path / "train.jsonl", records[:100])  # excluded: 20 records are left to draw from
    cfg = HeldoutConfig(models=[str(tiny_llama)], labels=["m"], data=[str(alpaca_pairs)], exclude=[str(training)],
                        examples=6, template="none", seq_len=2048, out=tmp_path / "h")  # fmt: skip
    kind, drawn, dropped = heldout.heldout_records(cfg)
    assert kind == "instruction" and len(drawn[str(alpaca_pairs)]) == 6
    train_keys = {(r["prompt"], r["response"]) for r in records[:100]}
    assert not any((r["prompt"], r["response"]) in train_keys for r in drawn[str(alpaca_pairs)])
    assert dropped[str(alpaca_pairs)] == len([r for r in records if (r["prompt"], r["response"]) in train_keys])
    heldout.run(cfg)
    model, tokenizer = load_model(tiny_llama), load_tokenizer(tiny_llama)
    expected = [_instruction_nll(model, tokenizer, r["prompt"], r["response"]) for r in drawn[str(alpaca_pairs)]]
    score = _scores(cfg.out)["m"][f"{alpaca_pairs}:loss"]
    assert score["value"] == pytest.approx(sum(expected) / 6, abs=1e-5)
    assert score["stderr"] == pytest.approx(mean_se(expected).stderr, abs=1e-6) and score["n"] == 6


def test_heldout_refuses_models_of_another_tokenizer(tiny_llama, alpaca_pairs, tmp_path) -> None:  # noqa: F811
    other = Path(shutil.copytree(tiny_llama, tmp_path / "other"))
    spec = json.loads((other / "tokenizer.json").read_text())
    vocab = spec["model"]["vocab"]
    first, second = list(vocab)[300:302]  # two ordinary tokens trade ids: same size, different tokenizer
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (other / "tokenizer.json").write_text(json.dumps(spec))
    cfg = HeldoutConfig(models=[str(tiny_llama), str(other)], data=[str(alpaca_pairs)], examples=2, template="none",
                        seq_len=2048, out=tmp_path / "h")  # fmt: skip
    with pytest.raises(DuskError, match=r"other: its tokenizer is not .*; held-out losses over different tokens"):
        heldout.run(cfg)
    assert not cfg.out.exists()
    same = Path(shutil.copytree(tiny_llama, tmp_path / "same"))  # a copy with the same tokenizer is measured
    heldout.run(cfg.model_copy(update={"models": [str(tiny_llama), str(same)]}))
    assert len(_scores(cfg.out)) == 2


def test_heldout_refuses_prompts_longer_than_seq_len(tiny_llama, alpaca_pairs, tmp_path) -> None:  # noqa: F811
    cfg = HeldoutConfig(models=[str(tiny_llama)], data=[str(alpaca_pairs)], examples=4, template="none", seq_len=8,
                        out=tmp_path / "h")  # fmt: skip
    with pytest.raises(DuskError, match="raise seq_len"):
        heldout.run(cfg)
    assert not (tmp_path / "h").exists()


def _answer_logp(model, tokenizer, prompt: str, answer: str) -> float:
    p = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    a = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([p + a])
    with torch.no_grad():
        logps = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    return sum(logps[len(p) - 1 + k, token].item() for k, token in enumerate(a))


def test_heldout_rewards_and_sdpo_reference_hand_off(tiny_llama_4, tiny_llama_4b, preference_pairs, tmp_path) -> None:  # noqa: F811
    sdpo = tmp_path / "artifacts" / "sdpo"  # an sDPO output: step-1, step-2 and final (= the last step)
    for name, source in (("step-1", tiny_llama_4b), ("step-2", tiny_llama_4), ("final", tiny_llama_4)):
        shutil.copytree(source, sdpo / name)
    short = [{k: v[:150] for k, v in json.loads(line).items()} for line in preference_pairs.read_text().splitlines()]
    preference_pairs = write_jsonl(tmp_path / "short_pairs.jsonl", short)  # all fit seq_len: nothing is cut
    cfg = HeldoutConfig(models=[str(tiny_llama_4), str(sdpo / "final")], labels=["sft", "sdpo"],
                        data=[str(preference_pairs)], examples=4, template="none", seq_len=1024, beta=0.5,
                        out=tmp_path / "h")  # fmt: skip
    heldout.run(cfg)
    results = read_results(cfg.out)
    rows = {row["label"]: row for row in results["rows"]}
    assert list(rows) == ["sft", "sdpo", "sdpo step-1", "sdpo step-2"]
    assert rows["sft"]["note"] == "the reference" and rows["sft"]["scores"] == {}
    assert rows["sdpo step-2"]["note"] == "vs sdpo step-1, its step's reference"
    _kind, drawn, _dropped = heldout.heldout_records(cfg)
    pairs = drawn[str(preference_pairs)]
    tokenizer = load_tokenizer(tiny_llama_4)
    a, b = load_model(tiny_llama_4), load_model(tiny_llama_4b)

    def margins(policy, reference) -> list[float]:
        out = []
        for r in pairs:
            good = _answer_logp(policy, tokenizer, r["prompt"], r["chosen"]) - _answer_logp(
                reference, tokenizer, r["prompt"], r["chosen"]
            )
            bad = _answer_logp(policy, tokenizer, r["prompt"], r["rejected"]) - _answer_logp(
                reference, tokenizer, r["prompt"], r["rejected"]
            )
            out.append(0.5 * (good - bad))
        return out  # fmt: skip

    key = f"{preference_pairs}"
    step1 = margins(b, a)  # step 1 (weights b) against the initial reference (a)
    step2 = margins(a, b)  # step 2 (weights a) against step 1 (b): the hand-off
    assert rows["sdpo step-1"]["scores"][f"{key}:margin"]["value"] == pytest.approx(sum(step1) / 4, abs=1e-4)
    assert rows["sdpo step-2"]["scores"][f"{key}:margin"]["value"] == pytest.approx(sum(step2) / 4, abs=1e-4)
    wins = sum(m > 0 for m in step1) / 4
    assert rows["sdpo step-1"]["scores"][f"{key}:accuracy"]["value"] == pytest.approx(wins)
    # the final model equals the initial reference here: every margin 0
    assert rows["sdpo"]["scores"][f"{key}:margin"]["value"] == pytest.approx(0.0, abs=1e-6)


def test_label_of_recipe_artifacts() -> None:
    assert label_of("/r/run/artifacts/sft_v1") == "sft_v1"
    assert label_of("/r/run/artifacts/sdpo/final") == "sdpo"
    assert label_of("smollm2-135m") == "smollm2-135m"


def _table(diff_b: Estimate, diff_c: Estimate) -> MeasureTable:
    columns = [
        MeasureColumn("x:loss", "x loss", False, 3, False, "x"),
        MeasureColumn("x:diff", "x Δ", False, 3, True, "x"),
    ]
    rows = [MeasureRow("a", "", {"x:loss": Estimate(2.0, 0.1, 30)}),
            MeasureRow("b", "", {"x:loss": Estimate(1.9, 0.1, 30), "x:diff": diff_b}),
            MeasureRow("c", "", {"x:loss": Estimate(2.01, 0.1, 30), "x:diff": diff_c})]  # fmt: skip
    return MeasureTable("m", "t", "heldout_instruction", columns, rows, {})


def test_paired_lines_say_beyond_or_within_noise() -> None:
    # b is 0.1 lower with a paired stderr of 0.01: beyond noise although the independent stderrs (0.1) overlap;
    # c is 0.01 higher with a paired stderr of 0.02: within noise
    line = paired_lines(_table(Estimate(-0.1, 0.01, 30), Estimate(0.01, 0.02, 30)))[0]
    assert "b -0.100 ± 0.010 (better, beyond noise)" in line
    assert "c +0.010 ± 0.020 (within noise)" in line
    assert line.startswith("x, paired difference from a:")
    line = paired_lines(_table(Estimate(0.1, 0.01, 30), Estimate(0.01, 0.02, 30)))[0]
    assert "b +0.100 ± 0.010 (worse, beyond noise)" in line


def test_reward_lines_say_whether_a_model_moved_from_its_reference() -> None:
    columns = [MeasureColumn("u:accuracy", "u reward accuracy", True, 3, False, "u"),
               MeasureColumn("u:margin", "u reward margin", True, 4, False, "u")]  # fmt: skip
    dpo = {"u:accuracy": Estimate(0.68, 0.095, 24), "u:margin": Estimate(1.759, 0.731, 24)}
    sdpo = {"u:accuracy": Estimate(0.5, 0.104, 24), "u:margin": Estimate(-0.9, 0.3, 24)}
    rows = [MeasureRow("sft", "the reference", {}), MeasureRow("dpo", "", dpo), MeasureRow("sdpo", "", sdpo)]
    accuracy, margin = reward_lines(MeasureTable("p", "t", "heldout_preference", columns, rows, {}))
    assert accuracy.startswith("u reward accuracy against chance (0.5): dpo 0.680 ± 0.095 (within noise)")
    assert "sdpo 0.500 ± 0.104 (within noise)" in accuracy
    assert "dpo 1.7590 ± 0.7310 (toward the chosen answers, beyond noise)" in margin
    assert "sdpo -0.9000 ± 0.3000 (toward the rejected answers, beyond noise)" in margin
    assert reward_lines(MeasureTable("p", "t", "heldout_instruction", columns, rows, {})) == []


def test_perplexity_text_leaves_out_the_training_text(tmp_path) -> None:
    books = write_jsonl(tmp_path / "books.jsonl", [{"text": "first book " * 50}, {"text": "second book " * 50}])
    trained = write_jsonl(tmp_path / "trained.jsonl", [{"text": "first book " * 50}])
    text = perplexity.read_text(str(books), [str(trained)])
    assert "second book" in text and "first book" not in text
    with pytest.raises(DuskError, match="every record is in the excluded"):
        perplexity.read_text(str(trained), [str(books)])


def test_training_eval_stderr_is_the_ratio_estimator() -> None:
    from dusk.train.loop import ratio_stderr

    assert ratio_stderr([2.0, 4.0, 6.0], [1, 1, 1]) == pytest.approx(2 / math.sqrt(3))  # equal units: sd / sqrt(n)
    totals, units = [3.0, 10.0, 4.0, 9.0], [1, 4, 2, 3]  # per-token mean 26 / 10
    m = 26 / 10
    expected = math.sqrt(sum((t - m * u) ** 2 for t, u in zip(totals, units, strict=True)) / 12) / 2.5
    assert ratio_stderr(totals, units) == pytest.approx(expected)
    assert ratio_stderr([1.0], [3]) is None
