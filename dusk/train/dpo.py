"""DPO: preference pairs, sigmoid (or IPO) loss against a reference whose log-probs are computed once and cached.

The reference model's summed response log-probs of every pair are computed before training, written to
`$DUSK_CACHE/dpo_ref/<reference hash>-<data hash>.safetensors`, and the reference model is freed: only the policy
is in memory while training, and a rerun on the same (reference, tokenized data) reads the cache.
Logged per step: loss, rewards of chosen and rejected (beta x policy/reference log-ratio), their margin, and
reward accuracy (share of pairs whose chosen reward is higher).

    dusk dpo --model runs/sft --data ultrafeedback --max-steps 50 --seq-len 512 --beta 0.1 --out runs/dpo
"""

import gc
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from dusk.atomic import atomic_output_file, check_writable_parent
from dusk.hashing import sha256_file
from dusk.models.io import load_model, load_tokenizer, resolve_model
from dusk.settings import cache_dir
from dusk.train.config import DPOConfig
from dusk.train.data_source import load_records
from dusk.train.loop import DataOrder, Example, TrainingTask, on_device, train
from dusk.train.losses import PREFERENCE_LOSSES, sequence_logps
from dusk.train.model import TargetLogProbs, check_lora_targets, check_seq_len, load_for_training
from dusk.train.stage import (
    barrier,
    check_outputs,
    finish,
    is_main_process,
    limit,
    load_eval_records,
    pad_id_of,
    require_examples,
    split_heldout,
    world_size,
)

log = logging.getLogger(__name__)


def tokenize_preferences(records: list[dict], tokenizer, seq_len: int) -> list[Example]:
    """Pairs as token ids; a long prompt keeps its last half-of-seq_len tokens, responses are cut to fit."""
    prompts = tokenizer([r["prompt"] for r in records], add_special_tokens=True)["input_ids"]
    chosen = tokenizer([r["chosen"] for r in records], add_special_tokens=False)["input_ids"]
    rejected = tokenizer([r["rejected"] for r in records], add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    examples = []
    for prompt, good, bad in zip(prompts, chosen, rejected, strict=True):
        if len(prompt) + max(len(good), len(bad)) + len(eos) > seq_len:
            prompt = prompt[-(seq_len // 2) :]
        prompt = prompt or eos  # the first answer token is predicted from the last prompt token
        room = seq_len - len(prompt)
        examples.append({"prompt": prompt, "chosen": (good + eos)[:room], "rejected": (bad + eos)[:room]})
    return examples


def _layout(examples: list[Example], width: int) -> tuple[list[int], list[int], list[int]]:
    """Flat positions, labels and sequence index (chosen b, rejected B+b) of every response token.

    Row b is prompt | chosen | rejected. chosen[k] is predicted at position P-1+k; rejected[0] at P-1 (the last
    prompt token, shared), rejected[k] at the position of rejected[k-1], which is P+C+k-1.
    """
    positions, labels, rows = [], [], []
    for b, ex in enumerate(examples):
        base, p, c = b * width, len(ex["prompt"]), len(ex["chosen"])
        positions += [base + p - 1 + k for k in range(c)]
        positions += [base + p - 1] + [base + p + c + k - 1 for k in range(1, len(ex["rejected"]))]
        labels += ex["chosen"] + ex["rejected"]
        rows += [b] * c + [len(examples) + b] * len(ex["rejected"])
    return positions, labels, rows


def shared_prompt_mask(segments: torch.Tensor) -> torch.Tensor:
    """[B, 1, T, T] additive mask: causal, and a token sees the prompt (segment 0) and its own segment only."""
    causal = torch.ones(segments.shape[1], segments.shape[1], dtype=torch.bool).tril()
    query, key = segments.unsqueeze(2), segments.unsqueeze(1)  # [B, T, 1], [B, 1, T]
    allowed = causal & ((key == 0) | (key == query))
    mask = torch.zeros(allowed.shape, dtype=torch.float32).masked_fill(~allowed, torch.finfo(torch.float32).min)
    return mask.unsqueeze(1)


def collate(examples: list[Example], pad_id: int) -> dict[str, Any]:
    """One row per pair, prompt | chosen | rejected: the prompt is read once for both answers; positions of the
    rejected answer restart after the prompt and its tokens never attend to the chosen ones."""
    width = max(len(ex["prompt"]) + len(ex["chosen"]) + len(ex["rejected"]) for ex in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(examples), width), dtype=torch.long)
    segments = torch.full((len(examples), width), 3, dtype=torch.long)  # 0 prompt, 1 chosen, 2 rejected, 3 pad
    for b, ex in enumerate(examples):
        p, c, r = len(ex["prompt"]), len(ex["chosen"]), len(ex["rejected"])
        input_ids[b, : p + c + r] = torch.tensor(ex["prompt"] + ex["chosen"] + ex["rejected"])
        position_ids[b, : p + c] = torch.arange(p + c)
        position_ids[b, p + c : p + c + r] = torch.arange(p, p + r)
        position_ids[b, p + c + r :] = torch.arange(width - p - c - r)
        segments[b, :p], segments[b, p : p + c], segments[b, p + c : p + c + r] = 0, 1, 2
    positions, labels, rows = _layout(examples, width)
    batch = {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "attention_mask": shared_prompt_mask(segments),
        "positions": torch.tensor(positions),
        "labels": torch.tensor(labels),
        "rows": torch.tensor(rows),
        "lengths": torch.tensor([len(ex[s]) for s in ("chosen", "rejected") for ex in examples], dtype=torch.float),
    }
    if "ref_chosen" in examples[0]:
        batch["ref"] = torch.tensor([ex[f"ref_{s}"] for s in ("chosen", "rejected") for ex in examples])
    return batch


def policy_logps(model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
    """Summed response log-probs [2B]: every chosen answer, then every rejected one."""
    inputs = {k: batch[k] for k in ("input_ids", "position_ids", "attention_mask", "positions", "labels")}
    token_logps = model(**inputs)
    return sequence_logps(token_logps, batch["rows"], 2 * batch["input_ids"].shape[0])


def dpo_task(cfg: DPOConfig, pad_id: int) -> TrainingTask:
    loss_fn = PREFERENCE_LOSSES[cfg.loss_type]

    def loss(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        policy, ref = policy_logps(model, batch), batch["ref"]
        if cfg.loss_type == "ipo":  # IPO works on length-averaged log-probs
            policy, ref = policy / batch["lengths"], ref / batch["lengths"]
        half = policy.shape[0] // 2
        losses, good, bad = loss_fn(policy[:half], policy[half:], ref[:half], ref[half:], cfg.beta)
        metrics = {
            "reward_chosen": good.sum(),
            "reward_rejected": bad.sum(),
            "reward_margin": (good - bad).sum(),
            "reward_accuracy": (good > bad).float().sum(),
        }
        return losses.sum(), metrics

    return TrainingTask(
        name="dpo",
        collate=lambda examples: collate(examples, pad_id),
        loss=loss,
        units=lambda ex: 1,
        tokens=lambda ex: 2 * len(ex["prompt"]) + len(ex["chosen"]) + len(ex["rejected"]),
    )


def model_hash(model_dir: Path) -> str:
    """sha256 over a model's config and weight files (the reference's identity in the cache key)."""
    digest = hashlib.sha256()
    files = [Path(model_dir) / "config.json", *sorted(Path(model_dir).glob("*.safetensors"))]
    for path in files:
        digest.update(path.name.encode() + sha256_file(path).encode())
    return digest.hexdigest()


def data_hash(examples: list[Example]) -> str:
    """sha256 of the tokenized pairs (so tokenizer, template and truncation are all in the key)."""
    payload = json.dumps([[ex["prompt"], ex["chosen"], ex["rejected"]] for ex in examples])
    return hashlib.sha256(payload.encode()).hexdigest()


def compute_reference(ref_dir: Path, examples: list[Example], batch_size: int, pad_id: int) -> torch.Tensor:
    """[N, 2] summed response log-probs (chosen, rejected) of the reference model, in float32, on the first CUDA
    device when there is one (else the CPU)."""
    model = TargetLogProbs(load_model(ref_dir, dtype="float32", device="auto"))
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            logps = policy_logps(model, on_device(collate(chunk, pad_id), device))
            out.append(torch.stack([logps[: len(chunk)], logps[len(chunk) :]], dim=1).cpu())
    del model
    gc.collect()
    return torch.cat(out).float()


def ref_cache_root(cfg: DPOConfig) -> Path:
    return cfg.ref_cache or cache_dir() / "dpo_ref"


def reference_logps(ref_dir: Path, examples: list[Example], cfg: DPOConfig, pad_id: int) -> tuple[torch.Tensor, dict]:
    """Cached reference log-probs [N, 2] and the cache entry's description (keys, path, hit or computed)."""
    ref_key, data_key = model_hash(ref_dir), data_hash(examples)
    path = ref_cache_root(cfg) / f"{ref_key[:20]}-{data_key[:20]}.safetensors"
    info = {"reference_model": str(ref_dir), "reference_hash": ref_key, "data_hash": data_key, "cache": str(path)}
    info["cache_hit"] = path.exists()
    if not path.exists() and is_main_process():
        values = compute_reference(ref_dir, examples, cfg.batch_size, pad_id)
        with atomic_output_file(path) as tmp:
            save_file({"logps": values}, tmp, metadata={"reference_hash": ref_key, "data_hash": data_key})
    barrier()
    return load_file(path)["logps"], info


def attach_reference(examples: list[Example], logps: torch.Tensor) -> None:
    for ex, (good, bad) in zip(examples, logps.tolist(), strict=True):
        ex["ref_chosen"], ex["ref_rejected"] = good, bad


def examples_for(cfg: DPOConfig, tokenizer) -> tuple[list[Example], list[Example]]:
    """(train, held-out) tokenized pairs."""
    records = load_records(cfg.data, "preference", cfg.template, tokenizer, cfg.split, cfg.data_kind)
    examples = tokenize_preferences(records, tokenizer, cfg.seq_len)
    require_examples(examples, "dpo", len(records), 0, "no records")
    train_ex, eval_ex = split_heldout(examples, cfg)
    eval_records = load_eval_records(cfg, "preference", tokenizer)
    if eval_records is not None:
        eval_ex = tokenize_preferences(eval_records, tokenizer, cfg.seq_len)[: cfg.eval_size or None]
    return limit(train_ex, cfg), eval_ex


def pairs_read(train_ex: list[Example], cfg: DPOConfig) -> list[Example]:
    """The training pairs the run will read (all of them when it covers an epoch): only these need a reference."""
    total = cfg.max_steps * cfg.batch_size * cfg.grad_accum * world_size()
    if total >= len(train_ex):
        return train_ex
    used = set(DataOrder(len(train_ex), cfg.seed).take(0, total))
    return [ex for i, ex in enumerate(train_ex) if i in used]


def train_pairs(
    cfg: DPOConfig, model_dir: Path, ref_dir: Path, train_ex: list[Example], eval_ex: list[Example], tokenizer
) -> Path:
    """One DPO run on given pairs: reference log-probs (cached), then the policy trained alone; writes cfg.out."""
    pad_id = pad_id_of(tokenizer)
    scored = pairs_read(train_ex, cfg) + eval_ex
    logps, info = reference_logps(ref_dir, scored, cfg, pad_id)
    attach_reference(scored, logps)
    lm, peft_model = load_for_training(model_dir, cfg)
    result = train(cfg, TargetLogProbs(lm), dpo_task(cfg, pad_id), train_ex, eval_ex)
    extra = {"stage": "dpo", "train_pairs": len(train_ex), "eval_pairs": len(eval_ex), "reference": info}
    return finish(cfg, lm, peft_model, model_dir, result, extra)


def run(cfg: DPOConfig) -> Path:
    """DPO of cfg.model on cfg.data against cfg.ref_model (default: the model itself)."""
    check_outputs(cfg)
    check_writable_parent(ref_cache_root(cfg) / "entry")
    model_dir = resolve_model(cfg.model)
    ref_dir = resolve_model(cfg.ref_model) if cfg.ref_model else model_dir
    check_seq_len(model_dir, cfg.seq_len)
    check_lora_targets(model_dir, cfg)
    tokenizer = load_tokenizer(model_dir)
    train_ex, eval_ex = examples_for(cfg, tokenizer)
    return train_pairs(cfg, model_dir, ref_dir, train_ex, eval_ex, tokenizer)
