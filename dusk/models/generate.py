"""Greedy generation from a model directory: a quick look at what a model (or an up-scaled one) says.

dusk generate runs/smollm2-dus "The capital of France is" --max-new-tokens 24
"""

from pathlib import Path

import torch

from dusk.devices import resolve_device, resolve_dtype
from dusk.errors import DuskError
from dusk.models.io import load_model, load_tokenizer, read_config


def check_budget(max_new_tokens: int) -> None:
    """Refuse a generation budget below one token (before anything loads)."""
    if max_new_tokens <= 0:
        raise DuskError(f"--max-new-tokens must be a positive number of tokens, got {max_new_tokens}")


def prompt_inputs(tokenizer, prompt: str, chat: bool) -> dict:
    """The model inputs of `prompt` (through the chat template when `chat`); refuse a prompt with no tokens."""
    if chat and tokenizer.chat_template:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    else:
        text = prompt
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    if inputs["input_ids"].shape[1] == 0:
        raise DuskError(f"PROMPT {prompt!r} has no tokens to continue; give some text (or --chat)")
    return inputs


def greedy_generate(
    model_dir: Path,
    prompt: str,
    max_new_tokens: int = 32,
    dtype: str = "auto",
    chat: bool = False,
    device: str = "auto",
    allow_pickle: bool = False,
) -> str:
    """The greedy continuation of `prompt` (through the chat template when `chat`), without the prompt."""
    check_budget(max_new_tokens)
    device = resolve_device(device)  # a device this machine lacks fails before anything is read
    read_config(model_dir)  # an unreadable config.json is named here, not deep inside transformers
    tokenizer = load_tokenizer(model_dir)
    inputs = prompt_inputs(tokenizer, prompt, chat)
    model = load_model(model_dir, dtype=resolve_dtype(dtype, device), device=device, allow_pickle=allow_pickle)
    inputs = {name: tensor.to(device) for name, tensor in inputs.items()}
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
