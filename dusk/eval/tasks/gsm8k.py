"""GSM8K: 5-shot from train, `Question: {q}\\nAnswer:`, greedy generation, exact match (strict `#### N`, flexible).

Stop sequences differ by mode: lm-eval 0.4 stops at `Question:` (plus the EOS text the model adds); the
Open LLM Leaderboard's harness stopped at `:`, `Question:` and `Question`.

python -c "from dusk.eval.tasks.gsm8k import TASKS; print(TASKS[0].stop)"
"""

from dusk.eval.tasks.base import Task

STOPS = {"harness": ("Question:", "</s>", "<|im_end|>"), "leaderboard": (":", "Question:", "Question")}

TASKS = (
    Task(
        name="gsm8k",
        dataset="gsm8k",
        split="test",
        fewshot_split="train",
        num_fewshot=5,
        sampler="random",
        output="generate",
        text=lambda doc: f"Question: {doc['question']}\nAnswer:",
        choices=lambda doc: [],
        gold=lambda doc: 0,
        target=lambda doc: doc["answer"],
        metrics=("exact_match", "exact_match_flexible"),
        stop=STOPS,
    ),
)
