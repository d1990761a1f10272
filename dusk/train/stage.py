"""What the three stages share around the loop: the held-out split, the LM task, and writing the result.

dusk pretrain --model tiny-llama --data input.txt --max-steps 5 --seq-len 64 --out runs/pt
"""

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from dusk.atomic import check_output_dir, check_writable_parent
from dusk.cards.card import write_card
from dusk.errors import DuskError
from dusk.models.io import load_tokenizer, resolve_model
from dusk.train import checkpoint, sharding
from dusk.train.batching import count_targets, pad_collate
from dusk.train.config import TrainConfig
from dusk.train.data_source import Kind, load_records
from dusk.train.loop import Example, TrainingTask, TrainResult, train
from dusk.train.losses import causal_lm_loss_sum
from dusk.train.model import (
    TargetLogProbs,
    check_lora_targets,
    check_seq_len,
    load_for_training,
    plain_from_state,
    save_trained,
)

log = logging.getLogger(__name__)
KEPT_NAME = "trained-model"  # where a model whose output could not be written is kept, in the work directory


def world_size() -> int:
    """Processes of this run (set by `accelerate launch` / torchrun), known before the loop starts."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def load_eval_records(cfg: TrainConfig, kind: Kind, tokenizer) -> list[dict] | None:
    """Records of --eval-data, or None when the held-out set comes out of the training data."""
    return load_records(cfg.eval_data, kind, cfg.template, tokenizer) if cfg.eval_data else None


def split_heldout(examples: list[Example], cfg: TrainConfig) -> tuple[list[Example], list[Example]]:
    """(train, held-out): a seeded draw of eval_size examples, if at least as many remain for training."""
    if cfg.eval_data or cfg.eval_size == 0:
        return examples, []
    if len(examples) < 2 * cfg.eval_size:
        log.warning(
            "only %d examples: no held-out set (need %d for --eval-size %d)",
            len(examples),
            2 * cfg.eval_size,
            cfg.eval_size,
        )
        return examples, []
    generator = torch.Generator().manual_seed(cfg.seed)
    held = set(torch.randperm(len(examples), generator=generator)[: cfg.eval_size].tolist())
    train = [ex for i, ex in enumerate(examples) if i not in held]
    return train, [ex for i, ex in enumerate(examples) if i in held]


def limit(examples: list[Example], cfg: TrainConfig) -> list[Example]:
    return examples[: cfg.max_examples] if cfg.max_examples else examples


def require_examples(examples: list[Example], what: str, records: int, dropped: int, reason: str) -> None:
    """Refuse an empty training set, saying how many records there were and why they were dropped."""
    if not examples:
        raise DuskError(f"{what}: no training examples left: {records} record(s), {dropped} dropped ({reason})")


def pad_id_of(tokenizer) -> int:
    """The id batches are padded with: the tokenizer's pad token, else its EOS token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def lm_task(name: str, pad_id: int) -> TrainingTask:
    """Next-token loss on every target token: continued pretraining and SFT (targets already masked)."""

    def loss(model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        token_logps = model(input_ids=batch["input_ids"], targets=batch["targets"], position_ids=batch["position_ids"])
        return causal_lm_loss_sum(token_logps), {}

    return TrainingTask(
        name=name,
        collate=lambda examples: pad_collate(examples, pad_id),
        loss=loss,
        units=count_targets,
        tokens=lambda ex: len(ex["input_ids"]),
    )


ExamplesFor = Callable[[Any, Any], tuple[list[Example], list[Example]]]  # (cfg, tokenizer) -> (train, held out)


def check_outputs(cfg: TrainConfig) -> None:
    """Before any work: the output may be written (absent, or --force), its directory and the work directory
    (checkpoints, step log) are writable, and a --resume names a checkpoint this run can continue."""
    check_output_dir(cfg.out, cfg.force)
    check_writable_parent(cfg.out)
    check_writable_parent(cfg.work_dir / "log.jsonl")
    if cfg.resume is not None:  # a checkpoint to resume from, written by as many processes, under the same settings
        path = checkpoint.resolve_resume(cfg.work_dir, cfg.resume)
        checkpoint.check_layout(path, world_size(), sharding.active(cfg))
        checkpoint.check_same_config(path, cfg.model_dump(mode="json"))


def run_next_token_stage(cfg: TrainConfig, stage: str, examples_for: ExamplesFor) -> Path:
    """Continued pretraining and SFT: the same run, differing only in how `examples_for` builds the sequences."""
    check_outputs(cfg)
    model_dir = resolve_model(cfg.model)
    check_seq_len(model_dir, cfg.seq_len)
    check_lora_targets(model_dir, cfg)
    tokenizer = load_tokenizer(model_dir)
    train_ex, eval_ex = examples_for(cfg, tokenizer)
    log.info(
        "%s: %d training sequences of up to %d tokens, %d held out", stage, len(train_ex), cfg.seq_len, len(eval_ex)
    )
    lm, peft_model = load_for_training(model_dir, cfg)
    result = train(cfg, TargetLogProbs(lm), lm_task(stage, pad_id_of(tokenizer)), train_ex, eval_ex)
    extra = {"stage": stage, "train_sequences": len(train_ex), "eval_examples": len(eval_ex)}
    return finish(cfg, lm, peft_model, model_dir, result, extra)


def finish(
    cfg: TrainConfig, lm: torch.nn.Module, peft_model: Any, source_dir: Path, result: TrainResult, extra: dict
) -> Path:
    """Write the trained model and its training record (main process only); every process returns the path.

    A sharded model is first gathered into one plain model on rank 0 (collective; the other ranks free theirs)."""
    if sharding.is_sharded(lm):
        state = sharding.full_state_on_rank0(lm)
        lm, peft_model = plain_from_state(source_dir, cfg, state) if is_main_process() else (None, None)
        del state
    if is_main_process():
        summary = {
            "stage": extra.pop("stage"),
            "steps": result.steps,
            "train_loss": result.train_loss,
            "eval": result.eval_metrics,
            "tokens": result.tokens,
            "seconds": round(result.seconds, 2),
            "source_model": str(source_dir),
            "config": cfg.model_dump(mode="json"),
            **extra,
        }
        if result.tracker is not None:
            summary["tracker"] = result.tracker  # {name, run_id (when the tracker has one), dir}
        files = {"dusk_train.json": summary}
        if result.log_path is not None and result.log_path.exists():
            files["dusk_train_log.jsonl"] = result.log_path.read_text()
        try:
            save_trained(lm, peft_model, source_dir, cfg.out, cfg.force, files)
        except OSError as exc:
            kept = keep_trained(lm, peft_model, source_dir, files, cfg.work_dir)
            raise OSError(exc.errno, f"cannot write {cfg.out} ({exc.strerror or exc}); {kept}") from exc
        write_card(cfg.out)  # the model card: parents and data with their hashes, the curve, the rebuild command
    barrier()
    return cfg.out


def keep_trained(lm: torch.nn.Module, peft_model: Any, source_dir: Path, files: dict, work_dir: Path) -> str:
    """After the output could not be written: save the trained model where it can be (the work directory, else a
    new directory under the system temp dir); return a sentence saying where, or that it could not be kept."""
    for place in _places_to_keep(work_dir):
        try:
            kept = save_trained(lm, peft_model, source_dir, place, True, files)
        except OSError as exc:
            log.warning("could not keep the trained model there: %s", exc)
            continue
        return f"the trained model is kept in {kept} (move it to where you want it)"
    return "the trained model could not be written anywhere (see the warnings above)"


def _places_to_keep(work_dir: Path) -> Iterator[Path]:
    yield work_dir / KEPT_NAME
    try:
        yield Path(tempfile.mkdtemp(prefix="dusk-trained-")) / KEPT_NAME
    except OSError as exc:
        log.warning("could not create a directory under %s: %s", tempfile.gettempdir(), exc)


def barrier() -> None:
    """Wait for every process of a multi-process run (starting the process group if needed); no-op alone."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available()).wait_for_everyone()


def copy_model_dir(source: Path, out: Path) -> None:
    """A plain copy of a finished model directory (hard links where possible)."""
    shutil.copytree(source, out, copy_function=_link_or_copy)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
