"""The training stage kinds: `pretrain`, `sft`, `dpo` and `sdpo`. They share one config family (dusk/train/config.py),
one prepare (output, checkpoint and DPO reference-cache directories under the run directory) and resume from the
latest checkpoint in their work directory.

    python -c "from dusk.stages.train import TRAIN_KINDS; print([kind.name for kind in TRAIN_KINDS])"
"""

import functools
from pathlib import Path
from typing import Any

from dusk.stages.data import data_paths
from dusk.stages.kind import StageKind, StagePaths, with_runner_fields
from dusk.stages.results import sdpo_result, train_result


def _train_prepare(fields: Any, paths: StagePaths, resume: bool) -> Any:
    return with_runner_fields(
        fields,
        out=paths.out,
        force=True,
        run_dir=paths.work,
        resume="latest" if resume else None,
        ref_cache=paths.cache / "dpo_ref",
    )


def _train_data_files(cfg: Any) -> list[Path]:
    return [*data_paths(cfg.data), *data_paths(cfg.eval_data)]


def _has_checkpoint(work: Path) -> bool:
    return any(work.glob("**/checkpoints/step-*/state.json"))


def _schema(name: str) -> type:
    """The config class of a training kind (imported on first use, so `dusk --help` does not import torch)."""
    from dusk.train import config

    return {"pretrain": config.PretrainConfig, "sft": config.SFTConfig, "dpo": config.DPOConfig,
            "sdpo": config.SDPOConfig}[name]  # fmt: skip


def _run(name: str, cfg: Any) -> Path:
    """Run a training kind's stage function."""
    from dusk.train import dpo, pretrain, sdpo, sft

    return {"pretrain": pretrain.run, "sft": sft.run, "dpo": dpo.run, "sdpo": sdpo.run}[name](cfg)


def _train_kind(name: str, summary: str, **extra: Any) -> StageKind:
    """A training kind: its config class in dusk.train.config, its run function in dusk.train.<name>."""
    options: dict[str, Any] = {
        "prepare": _train_prepare,
        "collect": train_result,
        "data_inputs": ("data", "eval_data"),
        "data_files": _train_data_files,
        "has_checkpoint": _has_checkpoint,
        "unkeyed": ("progress", "report_to", "keep_checkpoints"),  # how a run is watched and kept, not what it makes
        **extra,
    }
    schema = functools.partial(_schema, name)
    return StageKind(name=name, summary=summary, schema=schema, run=functools.partial(_run, name), **options)


TRAIN_KINDS = [
    _train_kind("pretrain", "continued pretraining on text (dusk pretrain)"),
    _train_kind("sft", "supervised fine-tuning, loss on responses (dusk sft)"),
    _train_kind(
        "dpo",
        "DPO on preference pairs (dusk dpo)",
        inputs=("model", "ref_model"),
        field_hints={name: "staged DPO (sDPO) is `kind: sdpo`" for name in ("steps", "easy_to_hard")},
    ),
    _train_kind(
        "sdpo",
        "staged DPO: K chunks, each step's reference is the previous step's model (dusk sdpo)",
        collect=sdpo_result,
        output=lambda out: out / "final",
    ),
]
