"""`dusk eval --apply-chat-template` end to end on the tiny model: the mode is recorded in results.json and printed,
lm-eval's multiturn default under a template, the prefix tree still shares the rendered few-shot turns, and the
recipe's eval stage takes the same fields."""

import json
from pathlib import Path

from eval_task_fixtures import parse_eval

from dusk.eval import commands, harness
from dusk.eval import run as eval_run
from dusk.eval.chat import ChatFormat, ChatPrompts
from dusk.eval.engine import Engine
from dusk.eval.tokenization import encode_request
from dusk.models.io import load_tokenizer
from dusk.stages.evaluate import EVAL


def test_chat_eval_records_and_prints_its_mode(tiny_llama: Path, tmp_path: Path, benchmark_data: Path, capsys) -> None:
    out = tmp_path / "eval"
    flags = ["--tasks", "mmlu_anatomy,gsm8k", "--limit", "2", "--max-new-tokens", "4", "--out", str(out)]
    args = parse_eval([str(tiny_llama), *flags, "--apply-chat-template", "--system-instruction", "Be brief."])
    assert args.handler(args) == 0
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["apply_chat_template"] is True and settings["system_instruction"] == "Be brief."
    assert settings["fewshot_as_multiturn"] is True  # lm-eval's default under a chat template
    line = json.loads((out / "samples_mmlu_anatomy.jsonl").read_text().splitlines()[0])
    # the system message holds the instruction and MMLU's description; the 5 shots are turns; B not " B"
    assert line["prompt"].startswith("<|im_start|>system\nBe brief.\n\nThe following are multiple choice")
    assert line["prompt"].count("<|im_start|>assistant\n") == 6 and line["prompt"].endswith("<|im_start|>assistant\n")
    assert line["continuations"] == ["A", "B", "C", "D"]
    gsm = json.loads((out / "samples_gsm8k.jsonl").read_text().splitlines()[0])
    assert gsm["prompt"].count("<|im_start|>user\n") == 6
    printed = capsys.readouterr().out
    assert "chat template, shots as turns" in printed and "'Be brief.'" in printed


def test_plain_results_record_the_plain_mode(tiny_llama: Path, tmp_path: Path, benchmark_data: Path) -> None:
    cfg = eval_run.EvalConfig(model=str(tiny_llama), tasks=("mmlu_anatomy",), limit=1, out=tmp_path / "plain")
    settings = json.loads(eval_run.run(cfg).read_text())["settings"]
    assert (settings["apply_chat_template"], settings["fewshot_as_multiturn"], settings["system_instruction"]) == (
        False,
        False,
        None,
    )
    assert "chat" not in commands.prompt_format(settings)


def test_single_turn_is_chosen_explicitly() -> None:
    cfg = eval_run.EvalConfig(model="m", apply_chat_template=True, fewshot_as_multiturn=False)
    assert cfg.chat == ChatFormat(True, False, None)
    assert eval_run.EvalConfig(model="m").chat.plain


def test_recipe_eval_stage_takes_the_chat_fields() -> None:
    cfg = EVAL.schema()(model="m", tasks="gsm8k", apply_chat_template=True, system_instruction="Be brief.")
    assert cfg.chat == ChatFormat(True, True, "Be brief.")


def test_prefix_tree_shares_the_rendered_shots(tiny_llama: Path, benchmark_data: Path) -> None:
    """MMLU's first-n shots are the same turns for every item of a subject: the engine forwards them once."""
    engine = eval_run.load_engine(tiny_llama, "float32", batch_size=8)
    prompts = ChatPrompts(ChatFormat(True, True, None), load_tokenizer(tiny_llama))
    runs = harness.evaluate(engine, ["mmlu_anatomy"], "harness", harness.Selection(limit=4), chat=prompts)
    requests = [r for item in runs[0].items for r in item.requests]
    sequences = [encode_request(engine.tokenizer, r, engine.max_length).forwarded for r in requests]
    shared = _common_prefix_length(sequences)
    alone = sum(len(s) for s in sequences)  # what forwarding each request whole costs
    assert shared > 100  # the system message and five solved turns
    assert engine.stats.tokens_forwarded < alone - (len(sequences) - 1) * shared // 2
    reference = Engine(engine.model, engine.tokenizer, fast=False).loglikelihood(requests, progress=False)
    ours = [result for item in runs[0].items for result in item.results]
    assert max(abs(a.logprob - b.logprob) for a, b in zip(ours, reference, strict=True)) < 1e-4


def _common_prefix_length(sequences: list[tuple[int, ...]]) -> int:
    first = sequences[0]
    return next((i for i in range(len(first)) if any(len(s) <= i or s[i] != first[i] for s in sequences)), len(first))
