"""Resumable checkpoints: trainable weights, optimizer, RNG states, step and data position, written atomically.

A checkpoint is a directory `<run>/checkpoints/step-00000040/` holding `trainable.safetensors` (all weights, or the
LoRA adapters), `optimizer.pt` (AdamW state; loaded with weights_only=True), `rng.safetensors` (torch RNG) and
`state.json` (step, data position, Python RNG, the run's config). The learning rate is a pure function of the
step, so the schedule needs no state of its own.

A sharded run (`--shard fsdp`, several processes) writes instead `model-optimizer/` (torch.distributed.checkpoint:
each rank its shard of weights and AdamW state), `rng-<rank>.safetensors` (each rank's torch and Python RNG) and
`state.json`. All ranks write into `.step-NNNNNNNN.partial/`, and rank 0 renames it once every rank has finished:
a killed save never leaves a directory that looks like a checkpoint. It resumes under the same number of processes,
sharded; another process count or an unsharded run is refused (the data position depends on the global batch).

    dusk sft --config sft.yaml --resume          # continue from the latest checkpoint of that run
"""

import json
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from dusk.atomic import atomic_output_dir
from dusk.errors import DuskError
from dusk.train.config import ADJUSTABLE_ON_RESUME, RESUMABLE_FIELDS, config_differences, flag_name
from dusk.train.model import trainable_state

PREFIX = "step-"
FOLDER = "checkpoints"
FILES = ("trainable.safetensors", "optimizer.pt", "rng.safetensors", "state.json")
STATE_KEYS = ("step", "tokens", "num_processes", "python_rng", "config")


def checkpoints_root(work_dir: Path) -> Path:
    return Path(work_dir) / FOLDER


def list_checkpoints(work_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary directories are never listed)."""
    root = checkpoints_root(work_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def save_checkpoint(
    work_dir: Path, lm: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], keep: int
) -> Path:
    """Write the checkpoint of `state['step']` atomically, then delete all but the newest `keep`."""
    path = checkpoints_root(work_dir) / f"{PREFIX}{state['step']:08d}"
    with atomic_output_dir(path, force=True) as tmp:
        weights = {name: t.contiguous().clone() for name, t in trainable_state(lm).items()}
        save_file(weights, tmp / "trainable.safetensors")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        save_file({"torch": torch.get_rng_state()}, tmp / "rng.safetensors")
        full_state = {**state, "python_rng": _python_rng_state()}
        (tmp / "state.json").write_text(json.dumps(full_state, indent=1, default=str) + "\n")
    for old in list_checkpoints(work_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return path


def delete_checkpoints(work_dir: Path) -> int:
    """Delete every checkpoints folder under `work_dir` (sDPO nests one per step), keeping the step logs; bytes freed.

    For a finished stage: a checkpoint only serves to resume, and a 135M model in fp32 with its AdamW state takes
    about 2 GB per checkpoint.
    """
    freed = 0
    for root in sorted(Path(work_dir).glob(f"**/{FOLDER}")):
        freed += sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        shutil.rmtree(root, ignore_errors=True)
    return freed


def resolve_resume(work_dir: Path, resume: str) -> Path:
    """The checkpoint directory named by `--resume` ('latest' or a path)."""
    if resume != "latest":
        path = Path(resume)
        if not path.is_dir():
            raise DuskError(f"--resume {resume}: no such directory (checkpoints are in {checkpoints_root(work_dir)})")
        if not (path / "state.json").is_file():
            raise DuskError(
                f"--resume {resume}: not a checkpoint directory (no state.json; checkpoints are the "
                f"{PREFIX}NNNNNNNN folders of {checkpoints_root(work_dir)})"
            )
        return path
    found = list_checkpoints(work_dir)
    if not found:
        raise DuskError(f"--resume: no checkpoint in {checkpoints_root(work_dir)}; run without --resume to start")
    return found[-1]


def read_state(path: Path) -> dict[str, Any]:
    """The checkpoint's state.json, refused in one line when it is not one dusk wrote."""
    state_file = Path(path) / "state.json"
    try:
        state = json.loads(state_file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DuskError(f"{state_file}: not a dusk checkpoint state (invalid JSON: {exc})") from exc
    missing = [key for key in STATE_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise DuskError(f"{state_file}: not a dusk checkpoint state (no {', '.join(missing)})")
    return state


def field_defaults() -> dict[str, Any]:
    """Every training config field's default, as the JSON a checkpoint's config holds (fields with a default)."""
    from dusk.train.config import DPOConfig, PretrainConfig, SDPOConfig, SFTConfig

    defaults: dict[str, Any] = {}
    for cls in (PretrainConfig, SFTConfig, DPOConfig, SDPOConfig):
        dumped = cls.model_construct().model_dump(mode="json")  # model_construct fills defaults, checks nothing
        defaults |= {name: dumped[name] for name, field in cls.model_fields.items() if not field.is_required()}
    return defaults


def with_new_fields(saved: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint written by an older dusk lacks the fields added since; each counts as its default then (a run at
    a new field's default is the run the checkpoint continues; one that set the field differently is not)."""
    defaults = field_defaults()
    added = {name: defaults[name] for name in config if name not in saved and name in defaults}
    return saved | added


def check_same_config(path: Path, config: dict[str, Any]) -> list[str]:
    """Refuse to resume a checkpoint written under different settings, saying which ones differ; return the
    deliberate changes a resume accepts (`lr: checkpoint X, now Y`, the remedies of a run that diverged)."""
    saved = with_new_fields(read_state(path)["config"], config)
    differences = config_differences(saved, config, RESUMABLE_FIELDS | ADJUSTABLE_ON_RESUME)
    if differences:
        adjustable = ", ".join(flag_name(name) for name in sorted(ADJUSTABLE_ON_RESUME))
        raise DuskError(
            f"cannot resume from {path}: it was written with a different config ({'; '.join(differences)}); "
            f"resume with the same settings (only {adjustable} may change), or start a new run (another --out or "
            "--run-dir)"
        )
    kept = frozenset(saved) | frozenset(config)
    return config_differences(saved, config, kept - ADJUSTABLE_ON_RESUME)


def load_checkpoint(path: Path, lm: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore weights, optimizer and RNG states in place; return the saved state (step, data position, ...)."""
    absent = [name for name in FILES if not (Path(path) / name).is_file()]
    if absent:
        raise DuskError(f"--resume {path}: incomplete checkpoint (no {', '.join(absent)})")
    weights = load_file(Path(path) / "trainable.safetensors")
    expected = set(trainable_state(lm))
    if set(weights) != expected:
        missing, extra = sorted(expected - set(weights))[:5], sorted(set(weights) - expected)[:5]
        raise DuskError(f"{path}: checkpoint weights do not match the model (missing {missing}, unexpected {extra})")
    with torch.no_grad():
        params = dict(lm.named_parameters())
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    optimizer.load_state_dict(torch.load(Path(path) / "optimizer.pt", weights_only=True))
    torch.set_rng_state(load_file(Path(path) / "rng.safetensors")["torch"])
    state = read_state(path)
    version, internal, gauss = state["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    return state


def check_layout(path: Path, processes: int, sharded: bool) -> None:
    """Refuse a checkpoint this run cannot continue: written sharded (or not) differently, or by another number of
    processes (the data position depends on the global batch)."""
    state = read_state(path)
    written, was_sharded = state["num_processes"], bool(state.get("sharded", False))
    relaunch = f"accelerate launch --multi_gpu --num_processes {written} -m dusk ..."
    if was_sharded and not sharded:
        raise DuskError(
            f"cannot resume from {path}: it is a sharded checkpoint (--shard fsdp, {written} processes) and this run "
            f"is not sharded ({processes} process(es)); resume it with --shard fsdp under {written} processes "
            f"({relaunch})"
        )
    if sharded and not was_sharded:
        raise DuskError(
            f"cannot resume from {path}: it was written unsharded ({written} process(es)) and this run is sharded "
            f"(--shard fsdp); resume it with --shard none under {written} process(es)"
        )
    if written != processes:
        raise DuskError(
            f"cannot resume from {path}: it was written by {written} process(es), this run has {processes}; the "
            f"data position depends on the global batch, so resume under {written} process(es) ({relaunch})"
        )


def _partial_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.partial")


def save_sharded(
    work_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], keep: int
) -> Path:
    """Every rank writes its shard of weights and AdamW state and its RNG states; rank 0 publishes the checkpoint
    (state.json, rename) after all ranks are done, then prunes old ones. Collective: every rank calls it."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    rank = dist.get_rank()
    path = checkpoints_root(work_dir) / f"{PREFIX}{state['step']:08d}"
    partial = _partial_path(path)
    if rank == 0:  # a partial directory left by a killed save is not a checkpoint: start it afresh
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    dist.barrier()
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=partial / "model-optimizer")
    save_file(_rng_tensors(), partial / f"rng-{rank}.safetensors")
    dist.barrier()
    if rank == 0:
        (partial / "state.json").write_text(json.dumps({**state, "python_rng": _python_rng_state()}, indent=1) + "\n")
        if path.exists():
            shutil.rmtree(path)
        partial.rename(path)
        for old in list_checkpoints(work_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return path


def load_sharded(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore each rank's shard of weights and AdamW state and its RNG states; return the saved state."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    rank = dist.get_rank()
    rng_file = Path(path) / f"rng-{rank}.safetensors"
    if not (Path(path) / "model-optimizer").is_dir() or not rng_file.is_file():
        raise DuskError(f"--resume {path}: incomplete sharded checkpoint (no model-optimizer/ or {rng_file.name})")
    model_state, optim_state = get_state_dict(model, optimizer)
    loaded = {"model": model_state, "optimizer": optim_state}
    dcp.load(loaded, checkpoint_id=Path(path) / "model-optimizer")
    set_state_dict(model, optimizer, model_state_dict=loaded["model"], optim_state_dict=loaded["optimizer"])
    _restore_rng(load_file(rng_file))
    return read_state(path)


def _rng_tensors() -> dict[str, torch.Tensor]:
    version, internal, gauss = random.getstate()
    python = torch.tensor([version, *internal], dtype=torch.int64)
    has_gauss = torch.tensor([float(gauss is not None), gauss or 0.0], dtype=torch.float64)
    return {"torch": torch.get_rng_state(), "python": python, "python_gauss": has_gauss}


def _restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors["torch"])
    version, *internal = tensors["python"].tolist()
    has_gauss, gauss = tensors["python_gauss"].tolist()
    random.setstate((version, tuple(internal), gauss if has_gauss else None))


def _python_rng_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]
