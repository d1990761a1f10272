"""The one training loop of dusk: pretraining, SFT and DPO differ only in their `TrainingTask` (collate + loss).

AdamW with warmup and a cosine/linear decay, gradient accumulation and clipping, fp32 or bf16 autocast, a
progress bar (loss, lr, tokens/s, ETA), a JSONL line per step, held-out evaluation every N steps, atomic
checkpoints every N steps and exact resume (weights, optimizer, RNG, data position; the lr is a function of the
step). Data parallel through `accelerate launch` (DDP): the global batch is batch_size x grad_accum x processes,
and every loss is a sum divided by the units (tokens or pairs) of the whole global batch, so one process with the
same global batch takes the same step.

    dusk sft --model tiny-llama --data pairs.jsonl --max-steps 20 --save-every 10 --out runs/sft
"""

import json
import logging
import math
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dusk.errors import DuskError
from dusk.train import checkpoint, sharding, tracking
from dusk.train.config import TrainConfig

log = logging.getLogger(__name__)
Example = dict[str, Any]
Batch = dict[str, Any]


@dataclass(frozen=True)
class TrainingTask:
    """What differs between trainers: how examples become a batch and what a batch's loss is."""

    name: str
    collate: Callable[[list[Example]], Batch]
    # (loss summed over the batch's units, other metrics summed over the same units)
    loss: Callable[[nn.Module, Batch], tuple[torch.Tensor, dict[str, torch.Tensor]]]
    units: Callable[[Example], int]  # loss units of one example: target tokens, or 1 per preference pair
    tokens: Callable[[Example], int]  # tokens the model reads for one example (throughput)


@dataclass
class TrainResult:
    """What a finished run reports: steps taken, last losses, last held-out metrics, where the log is."""

    steps: int
    train_loss: float
    eval_metrics: dict[str, float] = field(default_factory=dict)
    log_path: Path | None = None
    seconds: float = 0.0  # in optimizer steps, over the whole run (sessions before a resume included)
    tokens: int = 0  # read over the whole run (sessions before a resume included)
    tracker: dict[str, str] | None = None  # the --report-to tracker's {name, run_id, dir} (main process)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warmup, then cosine/linear decay to min_lr_ratio."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    if cfg.schedule == "cosine":
        factor = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    elif cfg.schedule == "linear":
        factor = 1 - (1 - cfg.min_lr_ratio) * progress
    else:
        factor = 1.0
    return cfg.lr * factor


class DataOrder:
    """The stream of example indices: one seeded permutation per epoch, concatenated; position p is exact."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._perms = {epoch: torch.randperm(self.size, generator=generator).tolist()}
        return self._perms[epoch]

    def take(self, start: int, count: int) -> list[int]:
        return [self._perm(p // self.size)[p % self.size] for p in range(start, start + count)]


def build_optimizer(lm: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not on norms and biases)."""
    params = [p for p in lm.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    try:  # the fused kernel: faster, and no temporary copies of every parameter (peak memory)
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.adam_betas, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.adam_betas)


def on_device(batch: Batch, device: torch.device) -> Batch:
    """The batch's tensors on the model's device (a no-op on CPU)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def evaluate(model: nn.Module, task: TrainingTask, examples: list[Example], batch_size: int) -> dict[str, float]:
    """Held-out loss (and task metrics), averaged over units, without gradients; each with its standard error
    (`eval_<name>_se`) over the held-out examples, which are scored one at a time for it."""
    was_training = model.training
    model.eval()
    per_example: dict[str, list[float]] = {}
    units: list[int] = []
    with torch.no_grad():
        for example in examples:
            loss, metrics = task.loss(model, on_device(task.collate([example]), _device_of(model)))
            units.append(task.units(example))
            for name, value in {"loss": loss, **metrics}.items():
                per_example.setdefault(name, []).append(float(value))
    model.train(was_training)
    out = {}
    for name, values in per_example.items():
        out[f"eval_{name}"] = sum(values) / max(sum(units), 1)
        out[f"eval_{name}_se"] = ratio_stderr(values, units)
    return out


def ratio_stderr(totals: list[float], units: list[int]) -> float | None:
    """Standard error of sum(totals) / sum(units) (a per-unit mean over examples of different sizes), by the ratio
    estimator: sqrt(sum((t_i - m u_i)^2) / (n (n - 1))) / mean(u). None for fewer than 2 examples."""
    n = len(totals)
    if n < 2 or sum(units) == 0:
        return None
    mean = sum(totals) / sum(units)
    spread = sum((t - mean * u) ** 2 for t, u in zip(totals, units, strict=True)) / (n * (n - 1))
    return math.sqrt(spread) / (sum(units) / n)


class StepLog:
    """The JSONL log of a run (main process only); on resume, lines after the checkpoint's step are dropped. Each
    line also goes to the --report-to tracker (`on_write`), at its step."""

    def __init__(
        self, path: Path, resume_step: int | None, enabled: bool, on_write: Callable[[dict], None] | None = None
    ) -> None:
        self.path, self.enabled, self.on_write = path, enabled, on_write
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
        path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            if self.on_write is not None:
                self.on_write(record)


@dataclass
class _Run:
    """The live state of one run, shared by the small functions below."""

    cfg: TrainConfig
    task: TrainingTask
    accelerator: Any
    model: nn.Module
    optimizer: torch.optim.Optimizer
    order: DataOrder
    train_examples: list[Example]
    log: StepLog
    step: int = 0
    tokens: int = 0  # read since step 0 (carried across a resume by the checkpoint)
    seconds: float = 0.0  # spent in optimizer steps since step 0 (carried likewise)
    loss: float = math.nan  # of the last step taken (carried likewise: a run resumed at its end reports it)
    last_checkpoint: Path | None = None
    sharded: bool = False  # FSDP2 (--shard fsdp with several processes): checkpoints are sharded too

    @property
    def global_batch(self) -> int:
        return self.cfg.batch_size * self.cfg.grad_accum * self.accelerator.num_processes


def _train_step(run: _Run) -> dict[str, Any]:
    """One optimizer step over the global batch of `run.step`; returns the logged record."""
    cfg, acc = run.cfg, run.accelerator
    lr = lr_at(run.step, cfg)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    indices = run.order.take(run.step * run.global_batch, run.global_batch)
    examples = [run.train_examples[i] for i in indices]
    total_units = max(1, sum(run.task.units(ex) for ex in examples))
    per_micro = cfg.batch_size * acc.num_processes
    sums = torch.zeros(2)  # [loss sum, tokens] of this process
    metric_sums: dict[str, torch.Tensor] = {}
    for micro in range(cfg.grad_accum):
        start = micro * per_micro + acc.process_index * cfg.batch_size
        local = examples[start : start + cfg.batch_size]
        sync = _sync(run, micro == cfg.grad_accum - 1)
        with sync, _autocast(run):
            loss, metrics = run.task.loss(run.model, on_device(run.task.collate(local), acc.device))
            acc.backward(loss * acc.num_processes / total_units)
        sums += torch.tensor([loss.detach().float().item(), sum(run.task.tokens(ex) for ex in local)])
        for name, value in metrics.items():
            metric_sums[name] = metric_sums.get(name, 0.0) + value.detach().float()
    names = sorted(metric_sums)
    local_totals = torch.cat([sums, torch.stack([metric_sums[n] for n in names]) if names else torch.zeros(0)])
    totals = acc.reduce(local_totals.to(acc.device), reduction="sum").cpu()
    loss_value = totals[0].item() / total_units
    grad_norm = _clip(run, cfg.max_grad_norm)
    if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
        _stop_on_nan(run, loss_value, grad_norm)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    run.tokens += int(totals[1].item())
    run.loss = loss_value
    record = {"step": run.step, "loss": loss_value, "lr": lr, "grad_norm": grad_norm, "tokens": run.tokens}
    record.update({n: totals[2 + i].item() / total_units for i, n in enumerate(names)})
    return record


def _sync(run: _Run, last_micro: bool) -> Any:
    """Gradients are reduced across processes on the last micro-batch of a step only."""
    if last_micro:
        return nullcontext()
    if run.sharded:
        return sharding.gradient_sync(run.model, False)
    return run.accelerator.no_sync(run.model)


def _clip(run: _Run, max_norm: float) -> float:
    params = [p for p in run.model.parameters() if p.requires_grad]
    if run.sharded:
        return sharding.clip_grad_norm(params, max_norm)
    if max_norm > 0:
        return float(run.accelerator.clip_grad_norm_(params, max_norm))
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.stack(norms).norm()) if norms else 0.0


def _stop_on_nan(run: _Run, loss: float, grad_norm: float) -> None:
    """Stop before a non-finite step, with advice that works: resume accepts a changed --lr / --max-grad-norm."""
    if run.last_checkpoint is None:
        advice = "no checkpoint was written (--save-every N writes them); lower --lr or check the data, and start again"
    else:
        advice = (
            f"the last good checkpoint is {run.last_checkpoint}; lower --lr or check the data, then rerun with "
            "--resume and the lower --lr (a resume accepts a changed --lr or --max-grad-norm)"
        )
    raise DuskError(
        f"training stopped at step {run.step + 1}: loss {loss}, gradient norm {grad_norm} (not finite); {advice}"
    )


def _save(run: _Run, lm: nn.Module) -> None:
    acc = run.accelerator
    state = {
        "step": run.step,
        "data_position": run.step * run.global_batch,
        "num_processes": acc.num_processes,
        "sharded": run.sharded,
        "tokens": run.tokens,
        "seconds": run.seconds,
        "loss": run.loss,
        "config": run.cfg.model_dump(mode="json"),
    }
    if run.sharded:  # every rank writes its shard
        run.last_checkpoint = checkpoint.save_sharded(
            run.cfg.work_dir, run.model, run.optimizer, state, run.cfg.keep_checkpoints
        )
        return
    if acc.is_main_process:
        run.last_checkpoint = checkpoint.save_checkpoint(
            run.cfg.work_dir, lm, run.optimizer, state, run.cfg.keep_checkpoints
        )
    acc.wait_for_everyone()


def _resume(run: _Run, lm: nn.Module) -> int | None:
    """Restore the run from its checkpoint when --resume is set; returns the step resumed at."""
    cfg = run.cfg
    if cfg.resume is None:
        return None
    path = checkpoint.resolve_resume(cfg.work_dir, cfg.resume)
    for change in checkpoint.check_same_config(path, cfg.model_dump(mode="json")):
        log.warning("resuming from %s with a changed %s: the steps from there use the new value", path, change)
    checkpoint.check_layout(path, run.accelerator.num_processes, run.sharded)
    if run.sharded:
        state = checkpoint.load_sharded(path, run.model, run.optimizer)
    else:
        state = checkpoint.load_checkpoint(path, lm, run.optimizer)
    run.step, run.tokens, run.last_checkpoint = state["step"], state["tokens"], path
    run.seconds, run.loss = state.get("seconds", 0.0), state.get("loss", math.nan)
    return run.step


def _make_accelerator(cfg: TrainConfig) -> Any:
    from accelerate import Accelerator

    # cpu=True when there is no GPU: processes started by `accelerate launch --multi_gpu` then use DDP over gloo
    # bf16 is dusk's own autocast (see _autocast): accelerate's process-wide state cannot change between runs
    # log_with: the --report-to tracker (accelerate's integration; started by tracking.start, main process only)
    options = tracking.accelerator_options(cfg.report_to, cfg.work_dir)
    return Accelerator(mixed_precision="no", cpu=not torch.cuda.is_available(), **options)


def _autocast(run: "_Run") -> Any:
    """bf16 autocast of forward and loss when --precision bf16 (weights, gradients, optimizer stay fp32)."""
    device = run.accelerator.device.type
    return torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=run.cfg.precision == "bf16")


def train(
    cfg: TrainConfig,
    model: nn.Module,
    task: TrainingTask,
    train_examples: list[Example],
    eval_examples: list[Example],
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train `model` (a module whose trainable parameters are updated in place) for cfg.max_steps steps."""
    if not train_examples:
        raise DuskError(f"{task.name}: no training examples (--data {cfg.data})")
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    acc = _make_accelerator(cfg)
    sharding.warn_if_alone(cfg)
    sharded = sharding.active(cfg)
    if sharded:  # FSDP2 in place of DDP: the model is sharded before the optimizer sees its parameters
        model = sharding.shard(model, cfg.precision)
    optimizer = build_optimizer(model, cfg)
    run = _Run(cfg, task, acc, model, optimizer, DataOrder(len(train_examples), cfg.seed), train_examples, None)
    run.sharded = sharded
    resumed = _resume(run, model)
    tracking.start(acc, cfg.report_to, cfg.out.name, cfg.model_dump(mode="json"), cfg.work_dir)
    try:
        on_write = partial(tracking.log_record, acc, cfg.report_to)
        run.log = StepLog(cfg.work_dir / "log.jsonl", resumed, acc.is_main_process, on_write)
        if not sharded:
            run.model, run.optimizer = acc.prepare(model, optimizer)
        result = _run_steps(run, model, eval_examples, on_step)
    finally:  # the tracker is ended whether training finished or stopped (its files are then complete)
        tracker = tracking.finish(acc, cfg.report_to)
    result.tracker = tracker
    return result


def _run_steps(
    run: _Run, lm: nn.Module, eval_examples: list[Example], on_step: Callable[[dict[str, Any]], None] | None
) -> TrainResult:
    from tqdm.auto import tqdm

    cfg, acc = run.cfg, run.accelerator
    eval_metrics = _maybe_eval(run, lm, eval_examples, at_start=True)
    bar = tqdm(
        total=cfg.max_steps, initial=run.step, desc=run.task.name, disable=not (cfg.progress and acc.is_main_process)
    )
    start, start_tokens, start_seconds = time.perf_counter(), run.tokens, run.seconds
    while run.step < cfg.max_steps:
        step_start = time.perf_counter()
        record = _train_step(run)
        run.seconds += time.perf_counter() - step_start  # optimizer steps only (not evaluation, checkpoints)
        record["tokens_per_s"] = (run.tokens - start_tokens) / max(run.seconds - start_seconds, 1e-9)
        record["elapsed_s"] = time.perf_counter() - start
        run.log.write(record)
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{record['lr']:.2e}", tok_s=f"{record['tokens_per_s']:.0f}")
        if cfg.save_every and run.step % cfg.save_every == 0:
            _save(run, lm)
        if cfg.eval_every and run.step % cfg.eval_every == 0 and run.step < cfg.max_steps:
            eval_metrics = _maybe_eval(run, lm, eval_examples)
        if on_step is not None:
            on_step(record)
    bar.close()
    eval_metrics = _maybe_eval(run, lm, eval_examples) or eval_metrics
    return TrainResult(run.step, run.loss, eval_metrics, run.log.path, run.seconds, run.tokens)


def _maybe_eval(run: _Run, lm: nn.Module, examples: list[Example], at_start: bool = False) -> dict[str, float]:
    """Evaluate at step 0 (if eval_every is set) and whenever called later; logs an `eval` line."""
    if not examples or (at_start and (not run.cfg.eval_every or run.step > 0)):
        return {}
    metrics = evaluate(lm, run.task, examples, run.cfg.batch_size)
    run.log.write({"step": run.step, "kind": "eval", **metrics})
    return metrics
