"""FSDP2 sharding of the training model (`--shard fsdp` under `accelerate launch` / torchrun).

Each decoder layer and the root module (the `TargetLogProbs` wrapper, so embeddings, final norm and a tied LM head
are one group) become `fully_shard` units: every process keeps 1/N of the fp32 weights, gradients and AdamW state.
The model is materialised once: rank 0 loads it from disk, the other ranks build it on the meta device (no
memory), and after sharding rank 0's full weights are broadcast, each rank keeping only its shard. With
`--precision bf16` FSDP's MixedPrecisionPolicy computes in bf16 and reduces gradients in fp32 (master weights stay
fp32, sharded). `--shard fsdp` in a single process warns and trains unsharded: the steps are the same.

    accelerate launch --multi_gpu --num_processes 8 -m dusk sft --config sft.yaml --shard fsdp --precision bf16
"""

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


def world_size() -> int:
    """Processes of this run (set by `accelerate launch` / torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def active(cfg: Any) -> bool:
    """True when this run shards its model: --shard fsdp with more than one process."""
    return getattr(cfg, "shard", "none") == "fsdp" and world_size() > 1


def warn_if_alone(cfg: Any) -> None:
    """--shard fsdp in one process: say that it trains unsharded (same steps), and how to shard."""
    if getattr(cfg, "shard", "none") == "fsdp" and world_size() == 1:
        log.warning(
            "--shard fsdp in a single process: nothing to shard over, training unsharded (the same steps); start "
            "several processes to shard (accelerate launch --multi_gpu --num_processes N -m dusk ...)"
        )


def builds_on_meta(cfg: Any) -> bool:
    """True on the ranks that build the model on the meta device (sharded runs, every rank but 0)."""
    return active(cfg) and rank() != 0


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The decoder layers under `model` (a TargetLogProbs wrapper, a causal LM, or a PeftModel inside either)."""
    lm = getattr(model, "lm", model)
    return list(lm.get_decoder().layers)


def shard(model: nn.Module, precision: str) -> nn.Module:
    """fully_shard every decoder layer and the root, then fill the shards from rank 0's weights (collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    full = model.state_dict() if rank() == 0 else {}
    policy = MixedPrecisionPolicy()
    if precision == "bf16":
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for layer in decoder_layers(model):
        fully_shard(layer, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):  # rank 0's weights and buffers are real
        model.to_empty(device=_device())
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, full, options=options)
    del full
    _broadcast_buffers(model)
    return model


def _device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _broadcast_buffers(model: nn.Module) -> None:
    """Buffers are not sharded: non-persistent ones (rotary frequencies) are not in the state dict, so the meta
    ranks' copies (garbage after to_empty) are replaced by rank 0's."""
    import torch.distributed as dist

    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def is_sharded(model: nn.Module) -> bool:
    """True when `model` holds DTensor (sharded) parameters."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


@contextmanager
def gradient_sync(model: nn.Module, enabled: bool) -> Iterator[None]:
    """FSDP's no_sync: skip the reduce-scatter on micro-batches before the last of a step."""
    model.set_requires_gradient_sync(enabled)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> float:
    """The global gradient norm over all shards (clipped to max_norm when > 0), a plain float on every rank."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else math.inf)
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)


def full_state_on_rank0(module: nn.Module) -> dict[str, torch.Tensor]:
    """The consolidated state dict of a sharded module, on CPU, on rank 0 (empty on the others); collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(module, options=options)
