"""Resumable checkpoints: trainable weights, optimizer, RNG states, step and data position, written atomically.

A checkpoint is a directory `<run>/checkpoints/step-00000040/` holding `trainable.safetensors` (all weights, or the
LoRA adapters), `optimizer.pt` (AdamW state; loaded with weights_only=True), `rng.safetensors` (torch RNG) and
`state.json` (step, data position, Python RNG, the run's config). The learning rate is a pure function of the
step, so the schedule needs no state of its own.

    dusk sft --config sft.yaml --resume          # continue from the latest checkpoint of that run
"""

import json
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

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


def check_same_config(path: Path, config: dict[str, Any]) -> list[str]:
    """Refuse to resume a checkpoint written under different settings, saying which ones differ; return the
    deliberate changes a resume accepts (`lr: checkpoint X, now Y`, the remedies of a run that diverged)."""
    saved = read_state(path)["config"]
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


def _python_rng_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]
