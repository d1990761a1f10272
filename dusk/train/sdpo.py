"""sDPO (Kim et al. 2024, SOLAR's alignment): DPO in K steps, each on its own chunk of the preference data.

Step k starts from the step k-1 model and uses that same model as its reference (step 1: --model). With
--easy-to-hard, pairs are ordered by the initial model's reference margin log p(chosen) - log p(rejected),
largest first, before being cut into K chunks. Every step trains --max-steps steps. Output:
`OUT/step-1 ... OUT/step-K` (each a plain model directory) and `OUT/final` (the last step's model).
A finished step is kept when the run is restarted; `--resume` resumes the unfinished step from its checkpoint.

    dusk sdpo --model runs/sft --data ultrafeedback --steps 2 --max-steps 25 --easy-to-hard --out runs/sdpo
"""

import logging
from pathlib import Path

from dusk.atomic import atomic_output_dir, check_writable_parent
from dusk.errors import DuskError
from dusk.models.io import load_tokenizer, resolve_model
from dusk.train.checkpoint import list_checkpoints
from dusk.train.config import DPOConfig, SDPOConfig
from dusk.train.dpo import examples_for, ref_cache_root, reference_logps, train_pairs
from dusk.train.loop import Example
from dusk.train.model import check_lora_targets, check_seq_len
from dusk.train.stage import copy_model_dir, is_main_process, pad_id_of

log = logging.getLogger(__name__)


def split_chunks(examples: list[Example], k: int) -> list[list[Example]]:
    """K consecutive chunks whose sizes differ by at most one."""
    if len(examples) < k:
        raise DuskError(
            f"sdpo --steps {k}: only {len(examples)} training pair(s) (after the held-out ones) for {k} chunks; "
            "use fewer --steps or more data"
        )
    size, extra = divmod(len(examples), k)
    chunks, start = [], 0
    for i in range(k):
        end = start + size + (1 if i < extra else 0)
        chunks.append(examples[start:end])
        start = end
    return chunks


def easy_to_hard(examples: list[Example], margins: list[float]) -> list[Example]:
    """Pairs ordered by the reference's margin, largest (easiest) first; ties keep their order."""
    order = sorted(range(len(examples)), key=lambda i: -margins[i])
    return [examples[i] for i in order]


def step_config(cfg: SDPOConfig, k: int, model: str) -> DPOConfig:
    """The DPO config of step k: its input model, its own output and checkpoint directories."""
    return cfg.dpo_step(model=model, out=cfg.out / f"step-{k}", run_dir=cfg.work_dir / f"step-{k}")


def _resume_for(step_cfg: DPOConfig, resume: str | None) -> str | None:
    """Resume a step only if it has a checkpoint (an interrupted step); a step not yet started begins fresh."""
    return resume if resume is not None and list_checkpoints(step_cfg.work_dir) else None


def run(cfg: SDPOConfig) -> Path:
    """Run the K DPO steps; returns OUT/final."""
    if cfg.out.exists() and not (cfg.force or cfg.resume):
        raise DuskError(f"output directory {cfg.out} already exists; pass --force to replace it or --resume")
    if cfg.out.exists() and not cfg.out.is_dir():
        raise DuskError(f"output path {cfg.out} exists and is not a directory")
    check_writable_parent(cfg.out / "final")
    check_writable_parent(cfg.work_dir / "log.jsonl")
    check_writable_parent(ref_cache_root(cfg) / "entry")
    model_dir = resolve_model(cfg.model)
    check_seq_len(model_dir, cfg.seq_len)
    check_lora_targets(model_dir, cfg)
    tokenizer = load_tokenizer(model_dir)
    train_ex, eval_ex = examples_for(cfg, tokenizer)
    split_chunks(train_ex, cfg.steps)  # refuse too few pairs before any reference is computed
    if cfg.easy_to_hard:
        logps, _info = reference_logps(model_dir, train_ex, cfg, pad_id_of(tokenizer))
        train_ex = easy_to_hard(train_ex, (logps[:, 0] - logps[:, 1]).tolist())
    current = model_dir
    for k, chunk in enumerate(split_chunks(train_ex, cfg.steps), start=1):
        step_cfg = step_config(cfg, k, str(current))
        if (step_cfg.out / "dusk_train.json").is_file() and not cfg.force:
            log.info("sdpo: step %d already done (%s)", k, step_cfg.out)
        else:
            step_cfg = step_cfg.model_copy(update={"resume": _resume_for(step_cfg, cfg.resume), "force": True})
            log.info("sdpo: step %d/%d on %d pairs from %s", k, cfg.steps, len(chunk), current)
            train_pairs(step_cfg, current, current, [dict(ex) for ex in chunk], [dict(ex) for ex in eval_ex], tokenizer)
        current = step_cfg.out
    final = cfg.out / "final"
    if is_main_process():
        with atomic_output_dir(final, force=True) as tmp:
            tmp.rmdir()
            copy_model_dir(current, tmp)
    return final
