"""How each stage kind's artifact is read back for the results store: parameter counts of models, training
summaries with their loss curves, evaluation and contamination scores, and data statistics.

    python -c "from pathlib import Path; from dusk.stages import read_training_log as r; print(r(Path('log.jsonl')))"
"""

import json
from pathlib import Path
from typing import Any

from dusk.errors import DuskError
from dusk.store import Score, StageResult, TrainingSummary


def model_parameters(model_dir: Path) -> int | None:
    """Parameter count of a model directory, from its safetensors headers."""
    from dusk.models.safetensors_io import ModelTensors

    try:
        tensors = ModelTensors(model_dir)
    except DuskError:
        return None
    return sum(tensors.spec(name).numel for name in tensors.names())


def model_result(artifact: Path, _cfg: Any = None) -> StageResult:
    return StageResult(parameters=model_parameters(artifact))


def read_training_log(path: Path) -> TrainingSummary | None:
    """A training JSONL log (one object per step with `step` and `loss`) as a summary with its loss curve."""
    if not path.is_file():
        return None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    steps = [row for row in rows if "loss" in row and "step" in row and row.get("split", "train") == "train"]
    curve = [(int(row["step"]), float(row["loss"])) for row in steps]
    held_out = [(int(row["step"]), float(row["eval_loss"]), row.get("eval_loss_se"))
                for row in rows if "eval_loss" in row and "step" in row]  # fmt: skip
    tokens = max((int(row.get("tokens", 0) or 0) for row in steps), default=None)
    seconds = max((float(row.get("elapsed", row.get("seconds", 0)) or 0) for row in steps), default=None)
    return TrainingSummary(
        steps=curve[-1][0] if curve else 0,
        final_loss=curve[-1][1] if curve else None,
        tokens=tokens or None,
        seconds=seconds or None,
        log_path=str(path),
        curve=curve,
        detail={"eval_curve": held_out} if held_out else {},
    )


def train_result(artifact: Path, _cfg: Any = None) -> StageResult:
    """A trained model's summary (its step log, completed by dusk_train.json) and parameter count."""
    summary = read_training_log(artifact / "dusk_train_log.jsonl")
    record_path = artifact / "dusk_train.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        summary = summary or TrainingSummary(record.get("steps", 0), None, None, None, None)
        summary.final_loss = record.get("train_loss", summary.final_loss)
        summary.tokens = record.get("tokens", summary.tokens)
        summary.seconds = record.get("seconds", summary.seconds)
        summary.detail = {**summary.detail, **{k: v for k, v in record.items() if k not in ("config",)}}
    return StageResult(training=summary, parameters=model_parameters(artifact))


def sdpo_result(artifact: Path, cfg: Any = None) -> StageResult:
    """sDPO's steps as one curve (step numbers continue across the K steps); the final model's size."""
    curve, offset, steps = [], 0, sorted(artifact.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    for step_dir in steps:
        summary = read_training_log(step_dir / "dusk_train_log.jsonl")
        if summary is not None:
            curve += [(offset + step, loss) for step, loss in summary.curve]
            offset += summary.steps
    result = train_result(artifact / "final", cfg)
    if result.training is not None:
        result.training.curve, result.training.steps = curve, offset
        result.training.detail["sdpo_steps"] = len(steps)
    return result


def _results_document(artifact: Path) -> dict:
    """The results.json an eval or contamination stage wrote into its output directory."""
    return json.loads((artifact / "results.json").read_text())


def run_artifacts_of(artifact: Path) -> Path | None:
    """RUN_DIR/artifacts for a stage's artifact (the nearest `artifacts` folder beside a results store), or None."""
    for parent in Path(artifact).resolve().parents:
        if parent.name == "artifacts" and (parent.parent / "results.sqlite").is_file():
            return parent
    return None


def refresh_scored_card(artifact: Path, cfg: Any) -> Path | None:
    """The scored model's card, rewritten with these results when the run wrote that model (dusk/cards/refresh.py)."""
    from dusk.cards.refresh import refresh_card

    root = run_artifacts_of(artifact)
    model = getattr(cfg, "model", None)
    if root is None or not model:
        return None
    return refresh_card(Path(str(model)), artifact / "results.json", root)


def eval_result(artifact: Path, cfg: Any = None) -> StageResult:
    """Scores from an evaluation's results.json: every metric per task, MMLU subjects as subjects of `mmlu`. The
    scored model's card gets the H6 results when this run wrote that model (`refresh_scored_card`)."""
    document = _results_document(artifact)
    refresh_scored_card(artifact, cfg)
    scores = []
    for name, task in document["tasks"].items():
        subject = name.removeprefix("mmlu_") if name.startswith("mmlu_") else ""
        task_name = "mmlu" if subject else name
        for metric, score in task["metrics"].items():
            headline = metric == task.get("headline") and not subject
            scores.append(Score(task_name, metric, score["value"], score["stderr"], task["n"], subject, headline))
    for name, group in document.get("groups", {}).items():
        scores.append(Score(name, group["metric"], group["value"], group.get("stderr"), group["n"], "", True))
    settings = document.get("settings", {})
    return StageResult(scores=scores, settings=settings)


def contamination_result(artifact: Path, _cfg: Any = None) -> StageResult:
    """The paper's Table 9 figures per task: share of items with result < threshold, mean score, Min-K% delta."""
    document = _results_document(artifact)
    scores = []
    for name, task in document["tasks"].items():
        n = task["items"]
        scores.append(Score(name, "suspicious_share", task["result_below_threshold"], None, n, "", True))
        scores.append(Score(name, "mean_score", task["mean_score"], None, n))
        scores += [Score(name, f"min_k_delta_{k}", value, None, n) for k, value in task["min_k_delta"].items()]
    return StageResult(scores=scores, settings={"mode": "contamination", **document.get("settings", {})})


def data_result(artifact: Path, _cfg: Any = None) -> StageResult:
    """Records per source dataset (mix: available/selected; decontaminate: in/out and dropped per rule)."""
    scores = []
    stats_path, report_path = artifact / "stats.json", artifact / "report.json"
    if stats_path.is_file():
        for name, entry in json.loads(stats_path.read_text()).items():
            scores += [Score(name, metric, entry[metric]) for metric in ("available", "selected") if metric in entry]
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        for name, entry in {**report["datasets"], "total": report["total"]}.items():
            scores += [Score(name, "records_in", entry["in"]), Score(name, "records_out", entry["out"])]
            scores += [Score(name, f"dropped_{rule}", count) for rule, count in entry["dropped"].items()]
    return StageResult(scores=scores)
