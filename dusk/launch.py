"""How many processes a recipe stage runs in: the `launch:` settings (a recipe's top-level `launch:`, a stage's own
`launch:`, `dusk run --processes N`), which stage kinds run in child processes (training, evaluation and the
contamination test), the check that the machine has the devices a launch asks for, and what of a launch enters a
stage's cache key.

    launch: {processes: 2, shard: none}              # recipe top level: training and eval stages in 2 processes
    stages:
      sft: {kind: sft, launch: {processes: 4}, ...}  # a stage's own launch wins over the recipe's

    dusk run recipes/tiny.yaml --processes 2
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dusk.errors import DuskError


class Launch(BaseModel):
    """Where and in how many processes a training (or evaluation) stage runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    processes: int = Field(
        1, ge=1, description="processes per training or eval stage (torchrun --nproc_per_node); 1: in dusk's process"
    )
    shard: Literal["none", "fsdp"] = Field(
        "none", description="training: none = DDP (each process holds the whole model), fsdp = FSDP2 sharding"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto = one CUDA GPU per process when CUDA is present, else CPU processes (gloo)"
    )


def _train_kinds() -> frozenset[str]:
    from dusk.stages.train import TRAIN_KINDS

    return frozenset(kind.name for kind in TRAIN_KINDS)


# Evaluation kinds split their items across the processes (dusk/eval/parallel.py); results do not depend on N.
EVALUATION_KINDS = frozenset({"eval", "contamination"})


def takes_launch(kind: str) -> bool:
    """Kinds a `launch:` applies to: training (its global batch grows with the processes) and evaluation."""
    return kind in _train_kinds() or kind in EVALUATION_KINDS


def launched(kind: str, launch: "Launch | None") -> bool:
    """Whether the runner starts this stage as child processes (a launch of more than one process)."""
    return launch is not None and launch.processes > 1 and takes_launch(kind)


def launch_note(kind: str, launch: "Launch | None") -> str:
    """What the dry-run plan says about a stage's processes ('' for a stage run in dusk's own process)."""
    if not launched(kind, launch):
        return ""
    sharded = launch.shard != "none" and kind in _train_kinds()
    return f"{launch.processes} processes" + (f", {launch.shard}" if sharded else "")


def key_fields(kind: str, launch: "Launch | None") -> dict[str, Any]:
    """What a launch adds to a stage's cache key: training's process count (the global batch is batch_size x
    grad_accum x processes, so the result changes); nothing for evaluation (its results do not depend on it) and
    nothing at one process (keys stay as they were before launches existed)."""
    if launched(kind, launch) and kind in _train_kinds():
        return {"processes": launch.processes}
    return {}


def parse_launch(value: Any, base: dict[str, Any], where: str, flags: bool = False) -> Launch:
    """A `launch:` mapping over `base` (the recipe-wide values), validated, with an error naming `where` and the
    field (as `--processes` with `flags`: the values came from `dusk run`'s flags)."""
    if not isinstance(value, dict):
        raise DuskError(f"{where}: expected a mapping such as {{processes: 2, shard: none}}, got {value!r}")
    try:
        return Launch.model_validate({**base, **value})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "launch"
            field = "--" + field.replace("_", "-") if flags else field
            problems.append(f"{field} {error.get('input')!r}: {error['msg']}")
        raise DuskError(f"{where}: {'; '.join(problems)}") from None


def visible_gpus() -> int:
    """CUDA devices this process can see (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_devices(stages: dict[str, tuple[str, "Launch | None"]]) -> None:
    """Refuse, before any work, a stage (name -> its kind and launch) whose launch asks for more CUDA devices than
    the machine has: `device: cuda` without one, or more launched processes than GPUs (one GPU per process)."""
    gpus = None
    for name, (kind, launch) in stages.items():
        if launch is None or launch.device == "cpu":
            continue
        processes = launch.processes if launched(kind, launch) else 1
        if launch.device == "auto" and processes == 1:
            continue  # in dusk's own process, as without a launch: CUDA when present, else CPU
        gpus = visible_gpus() if gpus is None else gpus
        if launch.device == "cuda" and gpus == 0:
            raise DuskError(
                f"stage {name}: launch device cuda, but this machine has no CUDA device; use launch device auto or cpu"
            )
        if gpus and processes > gpus:
            raise DuskError(
                f"stage {name}: launch processes {processes} (one CUDA GPU each), but this machine has {gpus} "
                f"GPU(s); lower processes (--processes) to at most {gpus}, or set launch device: cpu"
            )
