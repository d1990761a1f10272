"""Greedy generation from a model directory: a quick look at what a model (or an up-scaled one) says.

dusk generate runs/smollm2-dus "The capital of France is" --max-new-tokens 24
"""

from pathlib import Path

import torch

from dusk.models.io import load_model, load_tokenizer


def greedy_generate(
    model_dir: Path, prompt: str, max_new_tokens: int = 32, dtype: str = "float32", chat: bool = False
) -> str:
    """The greedy continuation of `prompt` (through the chat template when `chat`), without the prompt."""
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, dtype=dtype)
    if chat and tokenizer.chat_template:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    else:
        text = prompt
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
