"""Tiny random models (2 layers, hidden 64) with a real byte-level BPE tokenizer, built offline in milliseconds.

Tests, `recipes/tiny.yaml` and smoke runs use them instead of downloading anything. Same seed, same weights.

    dusk info tiny-llama
"""

import json
from pathlib import Path

import torch

from dusk.atomic import atomic_output_dir
from dusk.settings import cache_dir

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
_CORPUS = """
The quick brown fox jumps over the lazy dog. A question has an answer, and the answer is a number or a word.
Question: What is the capital of France? Answer: Paris. Question: How many legs does a spider have? Answer: 8.
The following are multiple choice questions (with answers) about science and history.
Water boils at 100 degrees Celsius at sea level. The sun is a star; the moon orbits the earth.
She sold 48 clips in April and half as many in May. How many clips did she sell altogether? 48 + 24 = 72.
### User: Write a short poem about the sea. ### Assistant: The sea is wide, the sea is deep.
Plants need light, water and air to grow. People walk to the store to buy bread, milk and eggs.
If it rains, the ground gets wet. The man put the trophy in the suitcase because it was too small.
0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000 #### 42. True or false? Yes, no, maybe. A, B, C, D.
"""


def train_tiny_tokenizer(vocab_size: int = 384):
    """A byte-level BPE tokenizer (any text encodes) trained on a small fixed corpus, as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator([line for line in _CORPUS.splitlines() if line] * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def tiny_config(model_type: str, vocab_size: int, num_layers: int = 2, hidden: int = 64):
    """A transformers config for a tiny decoder of the given Llama-family architecture."""
    from transformers import AutoConfig

    common = dict(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=model_type == "llama",
    )
    return AutoConfig.for_model(model_type, **common)


def build_tiny_model(
    out: Path, model_type: str = "llama", num_layers: int = 2, hidden: int = 64, seed: int = 0, force: bool = False
) -> Path:
    """Write a tiny random model directory (safetensors, config, tokenizer with chat template) to `out`."""
    from transformers import AutoModelForCausalLM

    tokenizer = train_tiny_tokenizer()
    config = tiny_config(model_type, len(tokenizer), num_layers, hidden)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with atomic_output_dir(Path(out), force=force) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "dusk_source.json").write_text(json.dumps({"tiny": model_type, "seed": seed}) + "\n")
    return Path(out)


def cached_tiny_model(model_type: str) -> Path:
    """The built-in tiny model of this architecture, built once into the cache."""
    out = cache_dir() / "tiny" / f"{model_type}-v1"
    if not (out / "config.json").exists():
        build_tiny_model(out, model_type=model_type, force=True)
    return out
