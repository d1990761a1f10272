"""Peak memory per device of a training stage, estimated from the model's config.json alone (no weights read).

Terms (bytes per device; P parameters, T trainable, N processes when sharded, else 1):
- weights: fp32 master weights 4P/N; sharded, plus the gathered root (embeddings, head) and two gathered decoder
  layers (the one computing and the one prefetched) at the compute dtype; unsharded bf16 autocast adds a bf16
  copy of the matrices (2P);
- gradients: 4T/N (several unsharded processes: DDP's buckets double them);
- optimizer: AdamW's two fp32 moments, 8T/N;
- activations: per layer and token, the tensors a Llama-type block saves for backward (about 10 hidden-size, 4
  intermediate-size and 3 key/value-size values), for every layer (only the layer inputs with gradient
  checkpointing, plus one layer's worth recomputed), times the micro-batch's tokens; plus the LM head's logits on
  target tokens (logits, log-softmax, their gradient: 3 x vocab floats per target);
- overhead: the framework's own (CPU: the Python process with torch, transformers and the data; GPU: the CUDA
  context and allocator slack), a constant.

`plan_rows` gives the stage as configured and the changes that make it fit a device (shard, bf16, gradient
checkpointing, LoRA, a smaller batch); `format_plan` prints them. Checked against measured peaks on SmolLM2 (see
docs/train.md).
"""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dusk.errors import DuskError
from dusk.models.io import read_config
from dusk.train.config import DPOConfig, TrainConfig

GIB = 1024**3
CPU_OVERHEAD = int(0.75 * GIB)  # python + torch + transformers + tokenizer + records, measured on this CPU
GPU_OVERHEAD = int(1.5 * GIB)  # CUDA context, kernels, allocator fragmentation


@dataclass(frozen=True)
class Shape:
    """The sizes of a decoder-only transformer that memory depends on."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    bias: bool

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    def layer_parameters(self) -> int:
        q_out = self.heads * self.head_dim
        attention = self.hidden * (q_out + 2 * self.kv_dim) + q_out * self.hidden
        biases = (q_out + 2 * self.kv_dim) if self.bias else 0
        return attention + biases + 3 * self.hidden * self.intermediate + 2 * self.hidden

    def root_parameters(self) -> int:
        """Embeddings, final norm and (when untied) the LM head."""
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    def parameters(self) -> int:
        return self.layers * self.layer_parameters() + self.root_parameters()

    def lora_parameters(self, r: int, targets: list[str] | None) -> int:
        """LoRA adapters' parameters: r x (in + out) per adapted Linear of every layer."""
        q_out = self.heads * self.head_dim
        sizes = {
            "q_proj": (self.hidden, q_out),
            "k_proj": (self.hidden, self.kv_dim),
            "v_proj": (self.hidden, self.kv_dim),
            "o_proj": (q_out, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }
        names = targets or list(sizes)
        return self.layers * sum(r * sum(sizes[name]) for name in names if name in sizes)


def shape_of(config: dict[str, Any], source: str = "config.json") -> Shape:
    """The Shape of a model config (Llama, Mistral, Qwen2 and the like); refuses a config without the sizes."""
    needed = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "vocab_size")
    missing = [key for key in needed if key not in config]
    if missing:
        raise DuskError(f"{source}: no {', '.join(missing)}: cannot estimate training memory for this model")
    heads = config["num_attention_heads"]
    return Shape(
        layers=config["num_hidden_layers"],
        hidden=config["hidden_size"],
        intermediate=config["intermediate_size"],
        heads=heads,
        kv_heads=config.get("num_key_value_heads") or heads,
        head_dim=config.get("head_dim") or config["hidden_size"] // heads,
        vocab=config["vocab_size"],
        tied=bool(config.get("tie_word_embeddings", False)),
        bias=bool(config.get("attention_bias", config.get("model_type") == "qwen2")),
    )


@dataclass(frozen=True)
class Setting:
    """The fields of a training config that memory depends on."""

    processes: int
    shard: str
    precision: str
    gradient_checkpointing: bool
    lora: bool
    lora_r: int
    lora_targets: tuple[str, ...] | None
    batch_size: int
    seq_len: int
    preference: bool  # DPO rows hold prompt + chosen + rejected

    @classmethod
    def of(cls, cfg: TrainConfig, processes: int) -> "Setting":
        targets = tuple(cfg.lora_targets) if cfg.lora_targets else None
        return cls(processes, cfg.shard, cfg.precision, cfg.gradient_checkpointing, cfg.lora, cfg.lora_r, targets,
                   cfg.batch_size, cfg.seq_len, isinstance(cfg, DPOConfig))  # fmt: skip

    @property
    def sharded(self) -> bool:
        return self.shard == "fsdp" and self.processes > 1

    def describe(self) -> str:
        parts = [f"{self.processes} process(es)", f"shard {self.shard}", self.precision, f"batch {self.batch_size}"]
        parts += ["checkpointing"] if self.gradient_checkpointing else []
        parts += [f"LoRA r={self.lora_r}"] if self.lora else []
        return ", ".join(parts)


@dataclass(frozen=True)
class Estimate:
    """Peak bytes per device, by term."""

    weights: int
    gradients: int
    optimizer: int
    activations: int
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations + self.overhead


def estimate(shape: Shape, setting: Setting, overhead: int = CPU_OVERHEAD) -> Estimate:
    """Peak memory per device of one optimizer step under `setting` (see the module's docstring)."""
    params = shape.parameters()
    trainable = shape.lora_parameters(setting.lora_r, setting.lora_targets) if setting.lora else params
    split = setting.processes if setting.sharded else 1
    compute_bytes = 2 if setting.precision == "bf16" else 4
    weights = 4 * (params + (trainable if setting.lora else 0)) // split
    if setting.sharded:
        weights += compute_bytes * (shape.root_parameters() + 2 * shape.layer_parameters())
    elif setting.precision == "bf16":
        weights += 2 * (params - shape.root_parameters())  # autocast's bf16 copies of the layers' matrices
    gradients = 4 * trainable // split * (2 if setting.processes > 1 and not setting.sharded else 1)
    optimizer = 8 * trainable // split
    return Estimate(weights, gradients, optimizer, activation_bytes(shape, setting), overhead)


def activation_bytes(shape: Shape, setting: Setting) -> int:
    """Saved activations of one micro-batch, plus the LM head's logits on its target tokens."""
    tokens = setting.batch_size * setting.seq_len * (2 if setting.preference else 1)
    targets = tokens // 2  # SFT: the responses; DPO: chosen + rejected answers
    per_token_layer = 10 * shape.hidden + 4 * shape.intermediate + 3 * shape.kv_dim
    element = 2 if setting.precision == "bf16" else 4
    if setting.gradient_checkpointing:
        saved = tokens * element * (shape.layers * shape.hidden + per_token_layer)
    else:
        saved = tokens * element * shape.layers * per_token_layer
    return saved + 3 * 4 * targets * shape.vocab


@dataclass(frozen=True)
class PlanRow:
    """One line of the plan: a setting, its estimate, and whether it fits the device (None: no device given)."""

    label: str
    setting: Setting
    estimate: Estimate
    fits: bool | None


def _variants(setting: Setting, processes: int) -> list[tuple[str, Setting]]:
    """The changes that lower memory, each on top of the previous ones, cheapest to the run's numbers first."""
    steps: list[tuple[str, dict]] = []
    if processes > 1:
        steps.append(("--shard fsdp", {"shard": "fsdp"}))
    steps.append(("--precision bf16", {"precision": "bf16"}))
    steps.append(("--gradient-checkpointing", {"gradient_checkpointing": True}))
    steps += [("--lora", {"lora": True}), ("--batch-size 1 (raise --grad-accum)", {"batch_size": 1})]
    out, current = [], setting
    for label, change in steps:
        changed = replace(current, **change)
        if changed != current:
            out.append((label, changed))
            current = changed
    return out


def plan_rows(cfg: TrainConfig, model_dir: Path, processes: int, device_memory: int | None) -> list[PlanRow]:
    """The stage as configured, then cumulative changes that lower its peak; `fits` against `device_memory`
    bytes (None: not judged). Overhead: a GPU's when a device memory is given, else this CPU's."""
    shape = shape_of(read_config(model_dir), str(Path(model_dir) / "config.json"))
    overhead = GPU_OVERHEAD if device_memory is not None else CPU_OVERHEAD
    setting = Setting.of(cfg, processes)
    rows = []
    for label, each in [("as configured", setting), *[(f"+ {lbl}", s) for lbl, s in _variants(setting, processes)]]:
        peak = estimate(shape, each, overhead)
        rows.append(PlanRow(label, each, peak, None if device_memory is None else peak.total <= device_memory))
    return rows


def advice(rows: list[PlanRow]) -> str:
    """One sentence: fits as configured, or the first cumulative change that fits, or that none does."""
    if rows[0].fits is None or rows[0].fits:
        return "fits as configured" if rows[0].fits else ""
    for row in rows[1:]:
        if row.fits:
            return f"does not fit; fits with {row.label.removeprefix('+ ')} (and the changes above it)"
    return "does not fit even with every change listed; use more devices or a smaller model"


def format_plan(stage: str, rows: list[PlanRow], device_memory: int | None = None) -> str:
    """A fixed-width table of the plan (GiB per device) and the advice line."""
    head = f"{stage}: peak memory per device (GiB)"
    if device_memory is not None:
        head += f", device {device_memory / GIB:.0f} GiB"
    lines = [head, f"  {'setting':<44} {'weights':>8} {'grads':>7} {'adamw':>7} {'activ.':>7} {'total':>7}  fits"]
    for row in rows:
        e = row.estimate
        fits = "" if row.fits is None else ("yes" if row.fits else "NO")
        values = [e.weights, e.gradients, e.optimizer, e.activations, e.total]
        cells = " ".join(f"{v / GIB:>{w}.2f}" for v, w in zip(values, (8, 7, 7, 7, 7), strict=True))
        lines.append(f"  {row.label:<44} {cells}  {fits}")
    lines.append(f"  [{rows[0].setting.describe()}] {advice(rows)}".rstrip())
    return "\n".join(lines)
