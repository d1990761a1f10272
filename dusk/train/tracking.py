"""Experiment trackers for training (`--report-to`): accelerate's tracker integration, not hand-written clients.

The main process logs every numeric field of each step-log line (loss, lr, grad_norm, tokens, tokens_per_s, DPO
rewards and accuracies) and of each held-out line (eval_loss, eval_loss_se, ...) at its step; the trackers are ended
when training ends (or stops on an error). Trackers with an offline mode use it unless the user chose otherwise
(W&B: WANDB_MODE=offline unless WANDB_MODE is set). Local files go under OUT.run/trackers/.

    dusk sft --model tiny-llama --data pairs.jsonl --max-steps 5 --report-to tensorboard --out runs/sft
    tensorboard --logdir runs/sft.run/trackers
"""

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PROJECT = "dusk"  # the tracker project (W&B project, TensorBoard folder under OUT.run/trackers)
NONE = "none"
# accelerate's tracker names and the Python package each one imports (accelerate.utils.LoggerType, less `all`).
PACKAGES = {
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "comet_ml": "comet_ml",
    "aim": "aim",
    "clearml": "clearml",
    "dvclive": "dvclive",
    "swanlab": "swanlab",
    "trackio": "trackio",
}
EXTRA = {"tensorboard", "wandb"}  # the trackers of dusk's `trackers` extra


def check_report_to(name: str) -> str:
    """`none`, or a tracker accelerate knows whose package is installed; else a ValueError saying what to do."""
    if name == NONE:
        return name
    if name not in PACKAGES:
        raise ValueError(f"unknown tracker; expected one of {NONE}, {', '.join(PACKAGES)}")
    package = PACKAGES[name]
    if importlib.util.find_spec(package) is None and not (name == "tensorboard" and _has("tensorboardX")):
        how = "pip install 'dusk[trackers]'" if name in EXTRA else f"pip install {package}"
        raise ValueError(f"the {package} package is not installed; install it: {how}")
    return name


def _has(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def accelerator_options(report_to: str, work_dir: Path) -> dict[str, Any]:
    """Keyword arguments of `Accelerator` for the tracker: `log_with` and where local trackers write."""
    if report_to == NONE:
        return {}
    return {"log_with": report_to, "project_dir": str(work_dir / "trackers")}


def start(accelerator: Any, report_to: str, run_name: str, config: dict[str, Any], work_dir: Path) -> None:
    """Start the tracker (main process only, through accelerate) with the run's config as its hyperparameters."""
    if report_to == NONE:
        return
    if report_to == "wandb" and accelerator.is_main_process:
        os.environ.setdefault("WANDB_MODE", "offline")  # offline unless the user chose a mode
    folder = work_dir / "trackers"
    folder.mkdir(parents=True, exist_ok=True)
    init_kwargs = {"wandb": {"name": run_name, "dir": str(folder)}}
    accelerator.init_trackers(PROJECT, config=hyperparameters(config), init_kwargs=init_kwargs)


def hyperparameters(config: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """The config as flat scalars (TensorBoard's hparams take no lists or None)."""
    return {k: v if isinstance(v, bool | int | float | str) else str(v) for k, v in config.items()}


def metrics(record: dict[str, Any]) -> dict[str, float]:
    """The numeric fields of a step-log or held-out line, less its step (None, e.g. an undefined _se, is skipped)."""
    return {
        k: float(v)
        for k, v in record.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, bool) and v is not None
    }


def log_record(accelerator: Any, report_to: str, record: dict[str, Any]) -> None:
    """Log one line of the step log at its step (accelerate logs on the main process only)."""
    if report_to != NONE:
        accelerator.log(metrics(record), step=int(record["step"]))


def finish(accelerator: Any, report_to: str) -> dict[str, str] | None:
    """End the trackers (not `end_training`, which would also end the process group the run still needs) and return
    what identifies the run: {"name", "run_id" (when the tracker has one), "dir"}; None on other processes."""
    if report_to == NONE or not accelerator.is_main_process:
        return None
    found: dict[str, str] | None = None
    for tracker in accelerator.trackers:
        found = found or _identity(report_to, tracker)
        tracker.finish()
    return found


def _identity(name: str, tracker: Any) -> dict[str, str]:
    out = {"name": name}
    run = getattr(tracker, "run", None)  # W&B
    run_id = getattr(run, "id", None)
    active = getattr(tracker, "active_run", None)  # MLflow
    if run_id is None and active is not None:
        run_id = active.info.run_id
    if run_id is not None:
        out["run_id"] = str(run_id)
    folder = getattr(run, "dir", None) or getattr(tracker, "logging_dir", None)
    if folder:
        out["dir"] = str(folder)
    return out
