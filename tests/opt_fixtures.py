"""A tiny random OPT (pre- or post-norm): an architecture whose layers differ from the Llama family's, for the
identity-expansion tests and the refusal of post-norm models."""

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def tiny_opt(out: Path, pre_norm: bool) -> Path:
    config = AutoConfig.for_model(
        "opt",
        vocab_size=128,
        hidden_size=32,
        ffn_dim=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        word_embed_proj_dim=32,
        max_position_embeddings=64,
        do_layer_norm_before=pre_norm,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    return out
