"""The model as the trainers see it: load for training (full or LoRA), score target tokens, save a plain HF dir.

`TargetLogProbs` runs the decoder once and applies the LM head only where a token has a target (response tokens
in SFT and DPO), so prompt positions never pay for the vocabulary projection.

    dusk sft --model tiny-llama --data pairs.jsonl --lora --lora-targets q_proj v_proj --out runs/lora
"""

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dusk.atomic import atomic_output_dir
from dusk.errors import DuskError
from dusk.models.io import copy_side_files, load_model, read_config
from dusk.train import sharding
from dusk.train.config import TrainConfig
from dusk.train.trainable import trainable_layers

IGNORE = -100  # target id of positions without a loss


class TargetLogProbs(nn.Module):
    """Wrap a causal LM: log p(label) only where a label is asked for (the LM head runs on those positions only).

    Two ways to ask: `targets` [B, T] (the token to predict after input_ids[b, :t+1], or IGNORE), or `positions`
    [n] (flat indices into B*T, repeats allowed) with `labels` [n]. `attention_mask` may be a 4D additive mask.
    """

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(
        self,
        input_ids: torch.Tensor,
        targets: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        decoder = self.lm.get_decoder()
        out = decoder(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask, use_cache=False)
        hidden = out.last_hidden_state  # [B, T, H]
        if targets is not None:
            keep = targets != IGNORE
            picked, labels = hidden[keep], targets[keep]
        else:
            picked = hidden.flatten(0, 1)[positions]
        logits = self.lm.get_output_embeddings()(picked)  # [n, vocab], only the asked-for rows
        return -F.cross_entropy(logits.float(), labels, reduction="none")  # [n]


def max_positions(model_dir: Path) -> int | None:
    """The model's maximum sequence length from its config (None when the config does not say)."""
    config = read_config(model_dir)
    return config.get("max_position_embeddings") or config.get("n_positions")


def check_seq_len(model_dir: Path, seq_len: int) -> None:
    """Refuse a sequence length the model's position embeddings cannot reach."""
    limit = max_positions(model_dir)
    if limit is not None and seq_len > limit:
        raise DuskError(
            f"--seq-len {seq_len} is above the model's maximum {limit} (max_position_embeddings in "
            f"{Path(model_dir) / 'config.json'}); use --seq-len {limit} or less"
        )


def linear_module_names(lm: nn.Module) -> list[str]:
    """The distinct short names of Linear modules inside the transformer layers (LoRA target candidates)."""
    names = {name.rsplit(".", 1)[-1] for name, module in lm.named_modules() if isinstance(module, nn.Linear)}
    head = lm.get_output_embeddings()
    head_names = {name.rsplit(".", 1)[-1] for name, module in lm.named_modules() if module is head}
    return sorted(names - head_names)


def _check_targets(targets: list[str], available: list[str]) -> None:
    unknown = [name for name in targets if name not in available]
    if unknown:
        raise DuskError(
            f"--lora-targets: no module named {', '.join(unknown)} in this model; "
            f"its Linear modules are: {', '.join(available)}"
        )


def check_lora_targets(model_dir: Path, cfg: TrainConfig) -> None:
    """Refuse unknown --lora-targets before any work: the module names come from the model's architecture
    built on the meta device (no weights are read)."""
    if not (cfg.lora and cfg.lora_targets):
        return
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    _check_targets(cfg.lora_targets, linear_module_names(skeleton))


def add_lora(lm: nn.Module, cfg: TrainConfig) -> nn.Module:
    """Inject LoRA adapters (peft) in place; returns the PeftModel (used for saving the adapter and merging)."""
    from peft import LoraConfig, get_peft_model

    available = linear_module_names(lm)
    targets = cfg.lora_targets or available
    _check_targets(targets, available)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(targets),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(lm, lora)


def check_trainable(model_dir: Path, cfg: TrainConfig) -> None:
    """Refuse a --trainable spec this model cannot satisfy, before any work."""
    trainable_layers(model_dir, cfg.trainable)


def freeze_except(lm: nn.Module, layers: set[int] | None) -> int:
    """Turn off gradients outside the given decoder layers (embeddings, final norm, head included); return the
    number of parameters left trainable. The optimizer takes only trainable ones, so the rest get no state."""
    from dusk.models.architecture import split_layer_name

    if layers is None:
        return sum(p.numel() for p in lm.parameters())
    kept = 0
    for name, parameter in lm.named_parameters():
        parts = split_layer_name(name)
        parameter.requires_grad_(parts is not None and parts[1] in layers)
        kept += parameter.numel() if parameter.requires_grad else 0
    return kept


def load_for_training(model_dir: Path, cfg: TrainConfig) -> tuple[nn.Module, nn.Module | None]:
    """(causal LM in train mode, PeftModel or None). LoRA init is seeded by cfg.seed.

    In a sharded run every rank but 0 builds the model on the meta device (no weights read, no memory): rank 0's
    weights reach the others' shards when the loop shards the model (sharding.shard)."""
    check_seq_len(model_dir, cfg.seq_len)
    layers = trainable_layers(model_dir, cfg.trainable)
    lm = meta_skeleton(model_dir) if sharding.builds_on_meta(cfg) else load_model(model_dir, dtype="float32")
    return prepare_for_training(lm, layers, cfg)


def meta_skeleton(model_dir: Path) -> nn.Module:
    """The model's architecture in fp32 on the meta device (no weights)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir), dtype=torch.float32)


def prepare_for_training(lm: nn.Module, layers: set[int] | None, cfg: TrainConfig) -> tuple[nn.Module, Any]:
    """Freeze, gradient checkpointing, LoRA adapters (seeded), train mode; returns (lm, PeftModel or None)."""
    freeze_except(lm, layers)
    lm.config.use_cache = False
    if cfg.gradient_checkpointing:
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    peft_model = None
    if cfg.lora:
        torch.manual_seed(cfg.seed)
        peft_model = add_lora(lm, cfg)
    lm.train()
    return lm, peft_model


def plain_from_state(model_dir: Path, cfg: TrainConfig, state: dict[str, torch.Tensor]) -> tuple[nn.Module, Any]:
    """A plain (unsharded) model holding `state` (a sharded run's consolidated weights, LoRA adapters included),
    built without a second copy of the weights: the skeleton's meta tensors are replaced by `state`'s."""
    lm = meta_skeleton(model_dir)
    peft_model = add_lora(lm, cfg) if cfg.lora else None
    lm.load_state_dict(state, assign=True, strict=False)
    lm.tie_weights()
    missing = [name for name, p in lm.named_parameters() if p.is_meta]
    if missing:
        raise RuntimeError(f"consolidated state has no {', '.join(missing[:5])}")
    return lm, peft_model


def trainable_state(lm: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters the optimizer updates (all weights, or the LoRA adapters), by name; tied weights once."""
    return {name: p.detach() for name, p in lm.named_parameters() if p.requires_grad}


def has_adapters(lm: nn.Module) -> bool:
    """True while LoRA adapters are injected (not yet merged into the weights)."""
    return any("lora_" in name for name, _ in lm.named_parameters())


def save_trained(
    lm: nn.Module, peft_model: nn.Module | None, source_dir: Path, out: Path, force: bool, extra: dict[str, Any]
) -> Path:
    """Write the trained model as a plain HF directory (merged if LoRA, adapter in out/adapter) plus side files."""
    with atomic_output_dir(out, force=force) as tmp:
        if peft_model is not None and has_adapters(lm):
            peft_model.save_pretrained(tmp / "adapter")
            lm = peft_model.merge_and_unload()
        # else: already merged by an attempt that failed later (the adapter was written there; the merge is kept)
        lm.config.use_cache = True
        lm.save_pretrained(tmp)
        copy_side_files(source_dir, tmp)
        for name, value in extra.items():
            text = value if isinstance(value, str) else json.dumps(value, indent=1, default=str) + "\n"
            (tmp / name).write_text(text)
    return Path(out)
