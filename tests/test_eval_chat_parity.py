"""Item-by-item parity with lm-evaluation-harness 0.4.13 under its chat flags (`apply_chat_template`,
`fewshot_as_multiturn`, `system_instruction`): the same rendered prompts (few-shot turns, system message, MMLU's
description, Winogrande's per-option conversations), per-choice log-likelihoods within 1e-3 with the target delimiter
dropped as lm-eval drops it, and the same GSM8K generations."""

from pathlib import Path

import pytest
from chat_fixtures import LmEvalTasks, chat_tiny, lm_eval_tasks, no_system_tiny, run_lm_eval_chat  # noqa: F401
from eval_parity_helpers import compare
from eval_task_fixtures import real_data_dir

from dusk.eval import harness
from dusk.eval import run as eval_run
from dusk.eval.chat import ChatFormat, ChatPrompts
from dusk.models.io import load_model, load_tokenizer

LL_TASKS = ["arc_challenge", "hellaswag", "mmlu_anatomy", "truthfulqa_mc2", "winogrande"]


def _parity(
    model_dir: Path, known: LmEvalTasks, chat: ChatFormat, tasks: list[str], limit: int, gen: int, max_gen: int
) -> list:
    """Score `limit` items of `tasks` (and `gen` GSM8K items) with both tools in `chat`; assert no difference."""
    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    samples = run_lm_eval_chat(model, tokenizer, tasks, limit, known, max_gen, 8, chat)
    if gen:
        samples |= run_lm_eval_chat(model, tokenizer, ["gsm8k"], gen, known, max_gen, 1, chat)
    engine = eval_run.load_engine(model_dir, "float32", batch_size=8)
    prompts = ChatPrompts(chat, tokenizer)
    runs = harness.evaluate(engine, tasks, "harness", harness.Selection(limit=limit), chat=prompts)
    if gen:
        runs += harness.evaluate(engine, ["gsm8k"], "harness", harness.Selection(limit=gen), max_gen, prompts)
    assert sum(len(run.items) for run in runs) == limit * len(tasks) + gen
    problems = compare(runs, samples)
    assert not problems, "\n".join(problems[:20])
    return runs


CASES = [
    pytest.param(ChatFormat(True, True, None), LL_TASKS, 1, id="multiturn"),
    pytest.param(ChatFormat(True, False, "You are a careful student."), LL_TASKS, 1, id="single-turn-system"),
    pytest.param(ChatFormat(False, False, "Answer."), ["mmlu_anatomy", "winogrande"], 0, id="system-no-template"),
]


@pytest.mark.parametrize(("chat", "tasks", "gen"), CASES)
def test_chat_parity_tiny_model(
    chat: ChatFormat,
    tasks: list[str],
    gen: int,
    chat_tiny: Path,  # noqa: F811
    lm_eval_tasks: LmEvalTasks,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    runs = _parity(chat_tiny, lm_eval_tasks, chat, tasks, limit=2, gen=gen, max_gen=8)
    first = runs[0].items[0].requests[0]
    if chat.apply_chat_template:  # the prompts really went through the template, the delimiter went to the turn
        assert first.context.endswith("<|im_start|>assistant\n") and not first.continuation.startswith(" ")


def test_template_refusing_system_role_drops_it_as_lm_eval(
    no_system_tiny: Path,  # noqa: F811
    lm_eval_tasks: LmEvalTasks,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    chat = ChatFormat(True, True, "You are a careful student.")
    runs = _parity(no_system_tiny, lm_eval_tasks, chat, ["mmlu_anatomy"], limit=2, gen=0, max_gen=8)
    assert "careful student" not in runs[0].items[0].requests[0].context  # retried without the system message


@pytest.mark.slow
@pytest.mark.parametrize("multiturn", [True], ids=["multiturn"])  # single turn: the tiny model's cases (suite time)
def test_chat_parity_smollm2_instruct(
    multiturn: bool,
    lm_eval_tasks: LmEvalTasks,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dusk.models.io import resolve_model

    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    chat = ChatFormat(True, multiturn, None if multiturn else "You are a helpful assistant.")
    _parity(resolve_model("smollm2-135m"), lm_eval_tasks, chat, LL_TASKS, limit=2, gen=1, max_gen=32)
