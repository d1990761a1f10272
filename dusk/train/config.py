"""Typed configs of the three trainers, and their CLI: every field is a flag and a key of a `--config` YAML file.

Flags given on the command line override the YAML file; the YAML keys are exactly the field names.

    dusk sft --config sft.yaml --max-steps 10     # sft.yaml: {model: smollm2-135m, data: alpaca_gpt4, out: runs/sft}
"""

import logging
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dusk.config_flags import (  # noqa: F401 (re-exported: the training commands and tests use them here)
    RequiredUsageFormatter,
    add_config_flags,
    build_config,
    config_from_args,
    flag_help,
    flag_name,
    read_yaml_config,
)
from dusk.data.registry import check_stated, record_kinds
from dusk.errors import DuskError
from dusk.train.tracking import check_report_to
from dusk.train.trainable import check_trainable_model

log = logging.getLogger(__name__)

# Fields that may change between a run and its resumption (they do not change the numbers a run computes).
RESUMABLE_FIELDS = frozenset(
    {"resume", "force", "progress", "eval_every", "save_every", "keep_checkpoints", "run_dir", "out", "ref_cache"}
) | {"report_to"}
# Fields a resumed run may change on purpose: the remedies of a run that diverged (they change the steps after the
# checkpoint only, and the resume says so on stderr).
ADJUSTABLE_ON_RESUME = frozenset({"lr", "max_grad_norm"})


class TrainConfig(BaseModel):
    """What every trainer needs: model, data, output, the optimizer's schedule, and run bookkeeping."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    model: str = Field(description="built-in name, model directory, .gguf file or hub id (org/name[@rev])")
    data: str = Field(
        description="training data: a dataset name, a JSONL file of records, a mixture YAML, or a hub dataset id "
        "org/name[:config][@split]"
    )
    split: str | None = Field(None, description="split of a hub dataset id in --data (default: train); not with @split")
    data_kind: str | None = Field(
        None,
        description="record kind of a file or hub dataset in --data: text, instruction, preference (dusk's layouts) "
        "or a converter such as alpaca, dolly, gsm8k, messages, hh_rlhf (default: detected from the first row)",
    )  # not `kind`: in a recipe, a stage's `kind:` is the stage kind
    out: Path = Field(description="output model directory (a plain Hugging Face model, written atomically)")
    template: Literal["alpaca", "solar", "stanford_alpaca", "chat", "none"] = Field(
        "alpaca", description="prompt rendering: alpaca (### User:/### Assistant:), chat (model's), none (pre-rendered)"
    )
    eval_data: str | None = Field(None, description="held-out data (default: hold out --eval-size training records)")
    eval_size: int = Field(32, ge=0, description="records held out of the training data for evaluation")
    eval_every: int = Field(0, ge=0, description="evaluate on the held-out set every N steps and at step 0 (0: at end)")
    max_examples: int | None = Field(None, ge=1, description="use at most this many training records")
    max_steps: int = Field(100, ge=1, description="optimizer steps to take")
    seq_len: int = Field(512, ge=8, description="maximum tokens per sequence (longer examples are truncated)")
    batch_size: int = Field(4, ge=1, description="sequences per micro-batch on each process")
    grad_accum: int = Field(1, ge=1, description="micro-batches accumulated per optimizer step")
    lr: float = Field(2e-5, gt=0, description="peak learning rate (AdamW)")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", description="decay after warmup")
    warmup_steps: int = Field(0, ge=0, description="linear warmup steps from 0 to --lr")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="final learning rate as a fraction of --lr")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay")
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas")
    max_grad_norm: float = Field(1.0, ge=0, description="clip the gradient norm to this (0: no clipping)")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="fp32, or bf16 autocast (weights stay fp32)")
    shard: Literal["none", "fsdp"] = Field(
        "none",
        description="none: every process holds the whole model (DDP); fsdp: weights, gradients and AdamW state "
        "sharded over the processes (FSDP2; alone, a process trains unsharded with a warning)",
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in backward: less memory, ~30% slower"
    )
    seed: int = Field(0, description="seed of data order, held-out split and initialisation (LoRA)")
    lora: bool = Field(False, description="train LoRA adapters (peft) instead of all weights; saves merged + adapter")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the LoRA input")
    lora_targets: list[str] | None = Field(None, description="module names to adapt (default: every Linear in layers)")
    trainable: str = Field(
        "all",
        description="all | new (the layers `dusk upscale --expand` inserted) | layers:A-B (decoder layers A..B, "
        "inclusive); the rest is frozen and gets no optimizer state",
    )
    save_every: int = Field(0, ge=0, description="write a resumable checkpoint every N steps (0: none)")
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept (oldest deleted first)")
    resume: str | None = Field(None, description="resume from 'latest' checkpoint of the run, or a checkpoint dir")
    run_dir: Path | None = Field(None, description="checkpoints and step log (default: OUT.run next to --out)")
    force: bool = Field(False, description="replace an existing output directory")
    progress: bool = Field(True, description="show a progress bar")
    report_to: str = Field(
        "none",
        description="experiment tracker through accelerate: none, tensorboard, wandb (offline unless WANDB_MODE is "
        "set), mlflow, comet_ml, aim, clearml, dvclive, swanlab, trackio; files under OUT.run/trackers",
    )

    @field_validator("report_to")
    @classmethod
    def _tracker(cls, value: str) -> str:
        return check_report_to(value)

    @field_validator("data_kind")
    @classmethod
    def _data_kind(cls, value: str | None) -> str | None:
        if value is not None and value not in record_kinds():
            raise ValueError(f"unknown record kind; expected one of {', '.join(record_kinds())}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        """Rules across fields (each message names the flags to change)."""
        if not all(0 <= beta < 1 for beta in self.adam_betas):
            raise ValueError(f"--adam-betas {self.adam_betas[0]} {self.adam_betas[1]}: each must be in [0, 1)")
        if self.warmup_steps > self.max_steps:
            raise ValueError(
                f"--warmup-steps {self.warmup_steps} is more than --max-steps {self.max_steps}: the learning rate "
                "would never reach --lr"
            )
        check_trainable_model(self.model, self.trainable)
        if self.split is not None or self.data_kind is not None:
            try:
                check_stated(self.data, self.split, self.data_kind)
            except DuskError as exc:
                raise ValueError(str(exc)) from exc
        if self.trainable != "all" and self.lora:
            raise ValueError(f"--trainable {self.trainable} with --lora: LoRA trains adapters only; drop one")
        lora_options = sorted(name for name in self.model_fields_set if name.startswith("lora_"))
        if lora_options and not self.lora:  # a warning: a --config file's LoRA settings with --no-lora is legitimate
            log.warning("%s ignored: no --lora (all weights are trained)", ", ".join(map(flag_name, lora_options)))
        return self

    @property
    def work_dir(self) -> Path:
        """Where checkpoints and the JSONL step log live."""
        return self.run_dir if self.run_dir is not None else self.out.with_name(self.out.name + ".run")


C = TypeVar("C", bound=TrainConfig)


class PretrainConfig(TrainConfig):
    """Continued pretraining: text packed into fixed-length sequences, causal LM loss on every token."""

    lr: float = Field(1e-4, gt=0, description="peak learning rate (AdamW)")


class SFTConfig(TrainConfig):
    """Supervised fine-tuning: prompt/response pairs, loss on response tokens only."""

    packing: bool = Field(False, description="pack several examples per sequence (no attention across examples)")


class DPOConfig(TrainConfig):
    """DPO: preference pairs, reference log-probs cached on disk."""

    lr: float = Field(5e-7, gt=0, description="peak learning rate (AdamW)")
    beta: float = Field(0.1, gt=0, description="DPO beta: strength of the pull towards the reference")
    loss_type: Literal["sigmoid", "ipo"] = Field("sigmoid", description="sigmoid (DPO) or ipo")
    ref_model: str | None = Field(None, description="reference model (default: --model)")
    ref_cache: Path | None = Field(None, description="reference log-prob cache dir (default: $DUSK_CACHE/dpo_ref)")


class SDPOConfig(DPOConfig):
    """sDPO: DPO in K steps on K chunks of the pairs, each step's reference being the previous step's model."""

    steps: int = Field(2, ge=1, description="split the data into K chunks trained one after another")
    easy_to_hard: bool = Field(False, description="order chunks by the initial reference's margin, easy first")

    @model_validator(mode="after")
    def _sdpo_options(self) -> "SDPOConfig":
        if self.steps > 1 and self.ref_model is not None:
            raise ValueError("sDPO (--steps > 1) uses each step's input model as reference; drop --ref-model")
        return self

    def dpo_step(self, **update: Any) -> DPOConfig:
        """The plain DPO config of one step (the sDPO-only fields dropped, `update` applied)."""
        values = self.model_dump(exclude={"steps", "easy_to_hard"}, exclude_unset=True)  # unset: no LoRA warning
        return DPOConfig.model_validate({**values, **update})


def config_differences(
    saved: dict[str, Any], current: dict[str, Any], ignore: frozenset[str] = RESUMABLE_FIELDS
) -> list[str]:
    """Human-readable `field: checkpoint X, now Y` for the fields outside `ignore` that differ."""
    names = sorted((set(saved) | set(current)) - ignore)
    return [
        f"{name}: checkpoint {saved.get(name)!r}, now {current.get(name)!r}"
        for name in names
        if saved.get(name) != current.get(name)
    ]
