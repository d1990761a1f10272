"""GPU check of training: SFT and DPO optimizer steps of a random-weight Llama in bf16 on one device.

For each task (SFT, DPO) with and without gradient checkpointing: tokens/s, model FLOPs utilisation (6 x params x
tokens/s over the device's peak bf16 FLOP/s, attention FLOPs added) and peak device memory (CPU: peak RSS). The
steps are dusk's own: `TargetLogProbs`, the SFT and DPO losses of dusk.train, AdamW (fused), dusk's bf16 autocast
with fp32 master weights. Random weights and random tokens: only speed and memory are checked.

    .venv/bin/python bench/gpu_check_train.py                          # 1B-shape Llama on cuda, seq 1024
    .venv/bin/python bench/gpu_check_train.py --shape tiny --device cpu --steps 2 --json out.json   # the CPU test
"""

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from dusk.train.config import DPOConfig
from dusk.train.dpo import collate as dpo_collate
from dusk.train.dpo import dpo_task
from dusk.train.model import TargetLogProbs
from dusk.train.stage import lm_task

SHAPES = {  # Llama-type shapes; 1b: 1.1B parameters (SOLAR's 32000-token vocabulary)
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=32000),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=384),
}  # fmt: skip
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}  # dense bf16


def build_model(shape: str, seq_len: int, device: torch.device) -> torch.nn.Module:
    """A random-weight LlamaForCausalLM with fp32 master weights on `device`, in train mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SHAPES[shape], max_position_embeddings=max(seq_len * 2, 128), use_cache=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    return model.train()


def sft_batch(batch_size: int, seq_len: int, vocab: int) -> dict:
    """Full-length sequences with the second half as the response (loss on it)."""
    input_ids = torch.randint(3, vocab, (batch_size, seq_len))
    targets = input_ids.roll(-1, dims=1)
    targets[:, : seq_len // 2] = -100
    targets[:, -1] = -100
    return {"input_ids": input_ids, "targets": targets, "position_ids": None}


def dpo_batch(batch_size: int, seq_len: int, vocab: int) -> dict:
    """Pairs of a prompt of seq_len/2 and two answers of seq_len/2 (one row per pair), reference log-probs 0."""
    half = seq_len // 2
    examples = [
        {
            "prompt": torch.randint(3, vocab, (half,)).tolist(),
            "chosen": torch.randint(3, vocab, (half,)).tolist(),
            "rejected": torch.randint(3, vocab, (half,)).tolist(),
            "ref_chosen": -float(half),
            "ref_rejected": -float(half),
        }
        for _ in range(batch_size)
    ]
    return dpo_collate(examples, pad_id=0)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def model_flops_per_token(model: torch.nn.Module, seq_len: int) -> float:
    """6 x parameters (forward and backward) + 12 x layers x hidden x seq_len (attention scores and values)."""
    config = model.config
    params = sum(p.numel() for p in model.parameters())
    return 6 * params + 12 * config.num_hidden_layers * config.hidden_size * seq_len


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    """The device's dense bf16 peak: --peak-tflops, else looked up by GPU name; None on CPU."""
    if given is not None:
        return given
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((value for key, value in PEAK_TFLOPS.items() if key in name), None)


def run_case(task_name: str, checkpointing: bool, args: argparse.Namespace, device: torch.device) -> dict:
    """Warm-up steps, then timed steps of one task: tokens/s, MFU, peak memory."""
    model = build_model(args.shape, args.seq_len, device)
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    wrapped = TargetLogProbs(model)
    if task_name == "sft":
        task, make = lm_task("sft", 0), sft_batch
    else:
        config = DPOConfig(model="random", data="random", out=Path("unused"))
        task, make = dpo_task(config, 0), dpo_batch
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    vocab = model.config.vocab_size
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tokens, seconds = 0, 0.0
    for step in range(args.warmup + args.steps):
        batch = to_device(make(args.batch_size, args.seq_len, vocab), device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            loss, _ = task.loss(wrapped, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= args.warmup:
            seconds += time.perf_counter() - start
            tokens += int(batch["input_ids"].numel())
    rate = tokens / seconds
    peak = peak_tflops(device, args.peak_tflops)
    mfu = rate * model_flops_per_token(model, args.seq_len) / (peak * 1e12) if peak else None
    result = {"task": task_name, "gradient_checkpointing": checkpointing, "tokens_per_s": rate, "mfu": mfu,
              "peak_memory_mib": peak_memory_mib(device), "loss": float(loss), "steps": args.steps}  # fmt: skip
    del model, wrapped, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--peak-tflops", type=float, default=None, help="device's dense bf16 peak (default: by name)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    results = [run_case(t, c, args, device) for t in ("sft", "dpo") for c in (False, True)]
    print(f"{'task':<5} {'checkpointing':<13} {'tokens/s':>10} {'MFU':>6} {'peak MiB':>9}")
    for r in results:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        check = "yes" if r["gradient_checkpointing"] else "no"
        print(f"{r['task']:<5} {check:<13} {r['tokens_per_s']:>10.0f} {mfu:>6} {r['peak_memory_mib']:>9.0f}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
