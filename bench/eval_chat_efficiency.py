"""dusk's token efficiency (minimum tokens / tokens forwarded) with and without the chat template, on the same items.

Token efficiency depends only on the requests' tokens and the engine's batching, not on the weights, so this runs a
2-layer random Llama with a real model's tokenizer (SmolLM2-135M-Instruct's by default) and context length: the
prefix tree, the batches and the counts are those of the real model, at a fraction of the CPU. Log-likelihood tasks
only (a random model's generations have nothing to do with a real one's).

    DUSK_DATA_DIR=../shared/data .venv/bin/python bench/eval_chat_efficiency.py --subset tiny --limit 4
"""

import argparse
import tempfile
from pathlib import Path

TASKS = ["arc_challenge", "hellaswag", "mmlu", "truthfulqa_mc2", "winogrande"]


def random_model_like(model_dir: Path, out: Path) -> Path:
    """A 2-layer, hidden-64 random Llama with `model_dir`'s tokenizer, vocabulary and context length."""
    import shutil

    from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM

    real = AutoConfig.from_pretrained(model_dir)
    config = LlamaConfig(
        vocab_size=real.vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=real.max_position_embeddings,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    for name in model_dir.iterdir():
        if name.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(name, out / name.name)
    return out


def efficiency(model_dir: Path, args: argparse.Namespace, apply: bool, multiturn: bool) -> tuple[float, int, int]:
    from dusk.eval import harness
    from dusk.eval import run as eval_run
    from dusk.eval.chat import ChatFormat, ChatPrompts
    from dusk.eval.tasks import expand_tasks

    engine = eval_run.load_engine(model_dir, "float32", args.batch_size)
    prompts = ChatPrompts(ChatFormat(apply, multiturn, None), engine.tokenizer)
    selection = harness.Selection(limit=args.limit, subset=args.subset)
    runs = harness.prepare_runs(expand_tasks(TASKS), "harness", selection, chat=prompts)
    harness.run_engine(engine, runs)
    stats = engine.stats
    return stats.token_efficiency, stats.tokens_minimum, stats.tokens_forwarded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="whose tokenizer and context length to use")
    parser.add_argument("--subset", default="tiny")
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    from dusk.models.io import resolve_model

    with tempfile.TemporaryDirectory() as work:
        model_dir = random_model_like(resolve_model(args.model), Path(work) / "random")
        print(f"{'prompts':<28}{'efficiency':>11}{'minimum':>10}{'forwarded':>11}")
        for label, apply, multiturn in (
            ("plain", False, False),
            ("chat template, multiturn", True, True),
            ("chat template, single turn", True, False),
        ):
            value, minimum, forwarded = efficiency(model_dir, args, apply, multiturn)
            print(f"{label:<28}{value:>11.3f}{minimum:>10}{forwarded:>11}")


if __name__ == "__main__":
    main()
