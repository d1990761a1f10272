"""The stage kinds a recipe can name: for each, its fields (a typed config), its run function, which of its fields
take earlier stages' artifacts, and how its result is read back for the results store.

A kind is one registry entry; adding a stage to dusk means adding one `StageKind` here. Stage modules are
imported only when a kind is used, so `dusk --help` stays fast.

    python -c "from dusk.stages import KINDS; print(sorted(KINDS))"
"""

import dataclasses
import functools
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from dusk.errors import DuskError
from dusk.store import Score, StageResult, TrainingSummary

# The runner sets these (every path a stage writes lies under the run directory); recipes may not.
RUNNER_FIELDS = frozenset({"out", "force", "resume", "run_dir", "ref_cache"})
PLACEHOLDER_OUT = Path("/dusk-run-dir/placeholder")


@dataclass(frozen=True)
class FieldSpec:
    """One recipe field of a kind: its type, default and one-line description."""

    name: str
    annotation: Any
    required: bool
    default: Any
    description: str


@dataclass(frozen=True)
class StagePaths:
    """Where a stage writes, all inside the run directory."""

    out: Path  # the artifact: a model directory, an eval's output directory or a data file
    work: Path  # checkpoints and step logs of resumable stages
    cache: Path  # caches shared by the run's stages (e.g. DPO reference log-probs)


@dataclass(frozen=True)
class StageKind:
    """How the runner drives one kind of stage."""

    name: str
    summary: str
    schema: Callable[[], type]  # the recipe-facing fields: a pydantic model or a dataclass (imported lazily)
    run: Callable[[Any], Path]  # the stage's own run(cfg) -> Path
    prepare: Callable[[Any, StagePaths, bool], Any]  # (validated fields, paths, resume?) -> the stage's config
    collect: Callable[[Path, Any], StageResult]  # (artifact, config) -> what goes into the results store
    inputs: tuple[str, ...] = ("model",)  # model fields that may name earlier stages; `from:` fills the first one
    data_inputs: tuple[str, ...] = ()  # data fields that may name earlier (data) stages, else a dataset or file
    data_files: Callable[[Any], list[Path]] = lambda cfg: []  # files whose bytes enter the cache key
    has_checkpoint: Callable[[Path], bool] | None = None  # resumable kinds: does this work directory hold one?
    normalize: Callable[[dict], dict] = lambda raw: raw  # recipe shorthands -> schema values (e.g. "h6" -> ["h6"])
    artifact: str = "model"  # what the artifact path holds: model, eval, data
    output: Callable[[Path], Path] = lambda out: out  # what later stages read, given the artifact path


# fields and validation --------------------------------------------------------------------------------------------
def field_specs(kind: StageKind) -> dict[str, FieldSpec]:
    """The fields a recipe may set for this kind (the schema's fields minus the runner-owned ones)."""
    return _field_specs(kind.schema())


@functools.cache
def _field_specs(schema: type) -> dict[str, FieldSpec]:
    specs: dict[str, FieldSpec] = {}
    if issubclass(schema, BaseModel):
        for name, info in schema.model_fields.items():
            default = None if info.is_required() else info.get_default(call_default_factory=True)
            specs[name] = FieldSpec(name, info.annotation, info.is_required(), default, info.description or "")
    else:
        hints = typing.get_type_hints(schema)
        for item in dataclasses.fields(schema):
            required = item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
            default = None if required else (item.default if item.default is not dataclasses.MISSING else None)
            specs[item.name] = FieldSpec(item.name, hints[item.name], required, default, _comment(schema, item.name))
    return {name: spec for name, spec in specs.items() if name not in RUNNER_FIELDS}


def _comment(schema: type, name: str) -> str:
    """A dataclass field's trailing `# comment`, used as its description."""
    import inspect

    try:
        source = inspect.getsource(schema)
    except (OSError, TypeError):
        return ""
    for line in source.splitlines():
        if line.strip().startswith(f"{name}:") and "#" in line:
            return line.split("#", 1)[1].strip()
    return ""


def _error_text(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "fields"
        parts.append(f"field {where}: {error['msg']} (got {error.get('input')!r})")
    return "; ".join(parts)


def validate(kind: StageKind, raw: dict, where: str) -> Any:
    """Build the kind's schema object from recipe values, with errors naming `where` (the stage) and the field."""
    specs = field_specs(kind)
    unknown = sorted(set(raw) - set(specs))
    if unknown:
        owned = [name for name in unknown if name in RUNNER_FIELDS]
        if owned:
            raise DuskError(f"{where}: field {owned[0]!r} is set by the runner (outputs go under the run directory)")
        raise DuskError(f"{where}: unknown field {unknown[0]!r} for kind {kind.name}; valid fields: {', '.join(specs)}")
    schema = kind.schema()
    values = kind.normalize(dict(raw))
    if "out" in _all_fields(schema):
        values["out"] = PLACEHOLDER_OUT
    try:
        return TypeAdapter(schema).validate_python(values)
    except ValidationError as exc:
        raise DuskError(f"{where}: {_error_text(exc)}") from exc
    except DuskError as exc:
        raise DuskError(f"{where}: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise DuskError(f"{where}: {exc}") from exc


def _all_fields(schema: type) -> set[str]:
    if issubclass(schema, BaseModel):
        return set(schema.model_fields)
    return {item.name for item in dataclasses.fields(schema)}


def coerce(kind: StageKind, field: str, text: str, where: str) -> Any:
    """A command-line override's text as a value of the field's type (YAML first, then the plain string)."""
    import yaml

    annotation = field_specs(kind)[field].annotation
    adapter = TypeAdapter(annotation)
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = text
    first_error = None
    for candidate in (parsed, text):
        candidate = kind.normalize({field: candidate})[field]  # the recipe's shorthands (tasks: h6) apply too
        try:
            return adapter.dump_python(adapter.validate_python(candidate), mode="json")
        except ValidationError as exc:
            first_error = first_error or exc
    raise DuskError(f"{where}: cannot use {text!r} for field {field!r}: {_error_text(first_error)}")


def dump_fields(obj: Any) -> dict:
    """A validated schema object as plain JSON values (runner-owned fields dropped): the stage's settings."""
    data = TypeAdapter(type(obj)).dump_python(obj, mode="json")
    return {name: value for name, value in data.items() if name not in RUNNER_FIELDS}


def with_runner_fields(obj: Any, **values: Any) -> Any:
    """A copy of a config with the runner-owned fields it has (out, force, resume) set."""
    present = {name: value for name, value in values.items() if name in _all_fields(type(obj))}
    if isinstance(obj, BaseModel):
        return obj.model_copy(update=present)
    return dataclasses.replace(obj, **present)


# results ----------------------------------------------------------------------------------------------------------
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
    tokens = max((int(row.get("tokens", 0) or 0) for row in steps), default=None)
    seconds = max((float(row.get("elapsed", row.get("seconds", 0)) or 0) for row in steps), default=None)
    return TrainingSummary(
        steps=curve[-1][0] if curve else 0,
        final_loss=curve[-1][1] if curve else None,
        tokens=tokens or None,
        seconds=seconds or None,
        log_path=str(path),
        curve=curve,
    )


def eval_result(artifact: Path, _cfg: Any = None) -> StageResult:
    """Scores from an evaluation's results.json: every metric per task, MMLU subjects as subjects of `mmlu`."""
    document = json.loads((artifact / "results.json").read_text())
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


# kinds ------------------------------------------------------------------------------------------------------------
@functools.cache
def _upscale_schema() -> type:
    from dusk.models.upscale import OutputDtype, Slice

    class UpscaleStage(BaseModel):
        """A DUS stage: SOLAR's `model` + `drop`, or general `slices`."""

        model_config = ConfigDict(extra="forbid")
        model: str | None = Field(None, description="model to up-scale with `drop`: a stage, built-in name or dir")
        drop: int | None = Field(None, ge=0, description="SOLAR's m: layers [0, n-m) of one copy + [m, n) of another")
        slices: list[Slice] | None = Field(None, description="mergekit-style layer ranges to stack (instead of drop)")
        dtype: OutputDtype | None = Field(None, description="cast weights to this dtype (default: keep, bit for bit)")
        shard_size: str = Field("2GiB", description="maximum size of one safetensors shard")

        @model_validator(mode="after")
        def _one_form(self) -> "UpscaleStage":
            if (self.slices is None) == (self.drop is None) or (self.drop is not None and self.model is None):
                raise ValueError("give either `model` and `drop` (SOLAR's recipe) or `slices`")
            return self

    return UpscaleStage


def _upscale_prepare(fields: Any, paths: StagePaths, _resume: bool) -> Any:
    from dusk.models import upscale

    out = paths.out
    if fields.slices is not None:
        return upscale.UpscaleConfig(
            slices=fields.slices, out=out, force=True, dtype=fields.dtype, shard_size=fields.shard_size
        )
    return upscale.config_for_drop(fields.model, fields.drop, out, True, fields.dtype, fields.shard_size)


def _upscale_run(cfg: Any) -> Path:
    from dusk.models import upscale

    return upscale.run(cfg)


def _eval_schema() -> type:
    from dusk.eval.harness import EvalConfig

    return EvalConfig


def _eval_normalize(raw: dict) -> dict:
    if isinstance(raw.get("tasks"), str):
        raw["tasks"] = [name.strip() for name in raw["tasks"].split(",") if name.strip()]
    return raw


def _eval_run(cfg: Any) -> Path:
    from dusk.eval import harness

    harness.run(cfg)
    return cfg.out


def _eval_data_files(cfg: Any) -> list[Path]:
    from dusk.eval.benchmark_docs import source_file
    from dusk.eval.tasks import expand_tasks, get_task

    files = set()
    for name in expand_tasks(list(cfg.tasks)):
        task = get_task(name)
        files.add(source_file(task.dataset, task.split))
        if task.fewshot_split and task.num_fewshot:
            files.add(source_file(task.dataset, task.fewshot_split))
    return sorted(files)


def _set_out(fields: Any, paths: StagePaths, _resume: bool) -> Any:
    return with_runner_fields(fields, out=paths.out, force=True)


def _train_module(module: str) -> Any:
    import importlib

    return importlib.import_module(f"dusk.train.{module}")


def _train_prepare(fields: Any, paths: StagePaths, resume: bool) -> Any:
    return with_runner_fields(
        fields,
        out=paths.out,
        force=True,
        run_dir=paths.work,
        resume="latest" if resume else None,
        ref_cache=paths.cache / "dpo_ref",
    )


def _train_result(artifact: Path, _cfg: Any = None) -> StageResult:
    summary = read_training_log(artifact / "dusk_train_log.jsonl")
    record_path = artifact / "dusk_train.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        summary = summary or TrainingSummary(record.get("steps", 0), None, None, None, None)
        summary.final_loss = record.get("train_loss", summary.final_loss)
        summary.tokens = record.get("tokens", summary.tokens)
        summary.seconds = record.get("seconds", summary.seconds)
        summary.detail = {k: v for k, v in record.items() if k not in ("config",)}
    return StageResult(training=summary, parameters=model_parameters(artifact))


def data_paths(value: str | None) -> list[Path]:
    """The files behind a `data` value: the file itself, or a registry dataset's local files."""
    if not value:
        return []
    path = Path(value).expanduser()
    if path.is_file():
        return [path]
    from dusk.data.registry import get_info, local_files

    return local_files(get_info(value))


def _train_data_files(cfg: Any) -> list[Path]:
    return [*data_paths(cfg.data), *data_paths(cfg.eval_data)]


def _has_checkpoint(work: Path) -> bool:
    return any(work.glob("**/checkpoints/step-*/state.json"))


def _sdpo_result(artifact: Path, cfg: Any = None) -> StageResult:
    """sDPO's steps as one curve (step numbers continue across the K steps); the final model's size."""
    curve, offset, steps = [], 0, sorted(artifact.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    for step_dir in steps:
        summary = read_training_log(step_dir / "dusk_train_log.jsonl")
        if summary is not None:
            curve += [(offset + step, loss) for step, loss in summary.curve]
            offset += summary.steps
    result = _train_result(artifact / "final", cfg)
    if result.training is not None:
        result.training.curve, result.training.steps = curve, offset
        result.training.detail["sdpo_steps"] = len(steps)
    return result


def _sdpo_normalize(raw: dict) -> dict:
    raw.setdefault("steps", 2)
    return raw


def _train_kind(name: str, summary: str, config: str, module: str, **extra: Any) -> StageKind:
    def schema() -> type:
        return getattr(_train_module("config"), config)

    def run(cfg: Any) -> Path:
        return _train_module(module).run(cfg)

    options: dict[str, Any] = {
        "prepare": _train_prepare,
        "collect": _train_result,
        "data_inputs": ("data", "eval_data"),
        "data_files": _train_data_files,
        "has_checkpoint": _has_checkpoint,
        **extra,
    }
    return StageKind(name=name, summary=summary, schema=schema, run=run, **options)


# data and contamination -------------------------------------------------------------------------------------------
DATA_FILE = "data.jsonl"


@dataclass(frozen=True)
class MixJob:
    """A mixture built by the runner into OUT/data.jsonl (+ OUT/stats.json)."""

    mixture: Any
    out: Path


def _mix_schema() -> type:
    from dusk.data.mixture import Mixture

    return Mixture


def _mix_run(job: MixJob) -> Path:
    from dusk.atomic import atomic_output_dir
    from dusk.data.mixture import build, write_mixture

    records, stats = build(job.mixture)
    with atomic_output_dir(job.out, force=True) as tmp:
        write_mixture(records, tmp / DATA_FILE)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return job.out


def _data_result(artifact: Path, _cfg: Any = None) -> StageResult:
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


def _mix_data_files(mixture: Any) -> list[Path]:
    return [path for source in mixture.sources for path in data_paths(source.dataset)]


@functools.cache
def _decontam_schema() -> type:
    from dusk.data.decontam import H6_TASKS

    class DecontaminateStage(BaseModel):
        """`dusk data decontaminate` as a stage: drop records sharing an n-gram with a benchmark item, and dups."""

        model_config = ConfigDict(extra="forbid")
        input: str = Field(description="records to clean: a data stage, a dataset name or a JSON/JSONL file")
        n: int = Field(13, ge=1, description="n-gram length in words (lm-eval uses 13)")
        tasks: list[str] = Field(list(H6_TASKS), description="benchmarks whose scored items are matched")
        task_names: bool = Field(True, description="apply the paper's Table 8 FLAN task-name filter")
        dedup: bool = Field(True, description="drop exact duplicates (keep the first)")
        near_dedup: bool = Field(True, description="drop MinHash near-duplicates (keep the first)")
        threshold: float = Field(0.8, gt=0, le=1, description="near-duplicate Jaccard threshold")
        engine: Literal["local", "spark"] = Field("local", description="local, or spark for large corpora")
        spark_master: str = Field("local[2]", description="Spark master URL with engine: spark")

    return DecontaminateStage


def _decontam_prepare(fields: Any, paths: StagePaths, _resume: bool) -> Any:
    from dusk.data.decontam import DecontamConfig, DecontaminateJob

    rules = DecontamConfig(n=fields.n, tasks=tuple(fields.tasks), task_names=fields.task_names, dedup=fields.dedup,
                           near_dedup=fields.near_dedup, threshold=fields.threshold)  # fmt: skip
    return DecontaminateJob(fields.input, paths.out, None, fields.engine, fields.spark_master, rules)


def _decontam_run(job: Any) -> Path:
    """Run into a temporary directory renamed to OUT at the end (data.jsonl + report.json)."""
    import dataclasses as dc

    from dusk.atomic import atomic_output_dir
    from dusk.data import decontam

    with atomic_output_dir(job.out, force=True) as tmp:
        decontam.run(dc.replace(job, out=tmp / DATA_FILE, report=tmp / "report.json"))
    return job.out


def _contamination_schema() -> type:
    from dusk.eval.contamination import ContaminationConfig

    return ContaminationConfig


def _contamination_run(cfg: Any) -> Path:
    from dusk.eval import contamination

    contamination.run(cfg)
    return cfg.out


def _contamination_result(artifact: Path, _cfg: Any = None) -> StageResult:
    """The paper's Table 9 figures per task: share of items with result < threshold, mean score, Min-K% delta."""
    document = json.loads((artifact / "results.json").read_text())
    scores = []
    for name, task in document["tasks"].items():
        n = task["items"]
        scores.append(Score(name, "suspicious_share", task["result_below_threshold"], None, n, "", True))
        scores.append(Score(name, "mean_score", task["mean_score"], None, n))
        scores += [Score(name, f"min_k_delta_{k}", value, None, n) for k, value in task["min_k_delta"].items()]
    return StageResult(scores=scores, settings={"mode": "contamination", **document.get("settings", {})})


def _contamination_data_files(cfg: Any) -> list[Path]:
    from dusk.eval.contamination_items import expand_task_names
    from dusk.eval.contamination_report import data_hashes

    return [Path(path) for path in data_hashes(expand_task_names(list(cfg.tasks)))]


@functools.cache
def _merge_schema() -> type:
    from dusk.merge.config import Dtype, ParameterSetting
    from dusk.merge.methods import get_method

    class MergeStage(BaseModel):
        """A merge of whole models (the paper's "SFT v3+v4" is `method: linear` of two stages, equal weights)."""

        model_config = ConfigDict(extra="forbid")
        models: list[str] = Field(min_length=1, description="models to merge: stages, built-in names or dirs")
        method: str = Field("linear", description="linear, task_arithmetic, ties, dare_ties, dare_linear, slerp")
        weights: list[float] | None = Field(None, description="per-model weight (linear default: equal weights)")
        base_model: str | None = Field(None, description="base for task vectors (ties, slerp, ...): a stage or model")
        parameters: dict[str, ParameterSetting] | None = Field(None, description="global parameters (t, lambda..)")
        model_parameters: list[dict[str, ParameterSetting]] | None = Field(
            None, description="per-model parameters (density, ...), one mapping per model"
        )
        dtype: Dtype | None = Field(None, description="cast inputs to this dtype before merging")
        out_dtype: Dtype | None = Field(None, description="dtype of the written tensors")
        shard_size: str = Field("2GiB", description="maximum size of one safetensors shard")
        seed: int = Field(0, description="random seed of DARE's drops")

        @model_validator(mode="after")
        def _check(self) -> "MergeStage":
            get_method(self.method)  # unknown methods list the known ones
            for name, values in (("weights", self.weights), ("model_parameters", self.model_parameters)):
                if values is not None and len(values) != len(self.models):
                    raise ValueError(f"{name} has {len(values)} entries for {len(self.models)} models")
            return self

    return MergeStage


def _merge_prepare(fields: Any, paths: StagePaths, _resume: bool) -> Any:
    from dusk.merge.config import MergeConfig

    weights = fields.weights or ([1.0] * len(fields.models) if fields.method == "linear" else None)
    entries = []
    for index, model in enumerate(fields.models):
        parameters = dict(fields.model_parameters[index]) if fields.model_parameters else {}
        if weights is not None:
            parameters["weight"] = weights[index]
        entries.append({"model": model, "parameters": parameters or None})
    return MergeConfig(
        merge_method=fields.method, base_model=fields.base_model, models=entries, parameters=fields.parameters,
        dtype=fields.dtype, out_dtype=fields.out_dtype, out=paths.out, force=True, shard_size=fields.shard_size,
        seed=fields.seed,
    )  # fmt: skip


def _merge_run(cfg: Any) -> Path:
    from dusk.merge.run import run

    return run(cfg)


def _data_kinds() -> list[StageKind]:
    kinds = []
    if _module_exists("dusk.merge.run"):
        kinds.append(
            StageKind(
                name="merge",
                summary="merge models: linear average (the paper's v3+v4), TIES, DARE, SLERP... (dusk merge)",
                schema=_merge_schema,
                run=_merge_run,
                prepare=_merge_prepare,
                collect=model_result,
                inputs=("models", "base_model"),
            )
        )
    if _module_exists("dusk.data.mixture"):
        kinds.append(
            StageKind(
                name="mix",
                summary="a data mixture: (dataset, max_examples or weight) sources -> one JSONL (dusk data mix)",
                schema=_mix_schema,
                run=_mix_run,
                prepare=lambda fields, paths, _resume: MixJob(fields, paths.out),
                collect=_data_result,
                inputs=(),
                data_files=_mix_data_files,
                artifact="data",
                output=lambda out: out / DATA_FILE,
            )
        )
    if _module_exists("dusk.data.decontam"):
        kinds.append(
            StageKind(
                name="decontaminate",
                summary="drop records that overlap the H6 benchmarks, and duplicates (dusk data decontaminate)",
                schema=_decontam_schema,
                run=_decontam_run,
                prepare=_decontam_prepare,
                collect=_data_result,
                inputs=(),
                data_inputs=("input",),
                data_files=lambda fields: data_paths(fields.input),
                artifact="data",
                output=lambda out: out / DATA_FILE,
            )
        )
    if _module_exists("dusk.eval.contamination"):
        kinds.append(
            StageKind(
                name="contamination",
                summary="contamination test of a model against a reference (paper's Appendix C) and Min-K% Prob",
                schema=_contamination_schema,
                run=_contamination_run,
                prepare=_set_out,
                collect=_contamination_result,
                inputs=("model", "reference"),
                data_files=_contamination_data_files,
                normalize=_eval_normalize,
                artifact="eval",
            )
        )
    return kinds


def _module_exists(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _optional_kinds() -> list[StageKind]:
    """Kinds whose stage modules are installed (each area lands on its own schedule)."""
    kinds = []
    if _module_exists("dusk.train.pretrain"):
        kinds.append(
            _train_kind("pretrain", "continued pretraining on text (dusk pretrain)", "PretrainConfig", "pretrain")
        )
    if _module_exists("dusk.train.sft"):
        kinds.append(_train_kind("sft", "supervised fine-tuning, loss on responses (dusk sft)", "SFTConfig", "sft"))
    if _module_exists("dusk.train.dpo"):
        kinds.append(
            _train_kind("dpo", "DPO on preference pairs (dusk dpo)", "DPOConfig", "dpo", inputs=("model", "ref_model"))
        )
    if _module_exists("dusk.train.sdpo"):
        kinds.append(
            _train_kind(
                "sdpo",
                "staged DPO: K chunks, each step's reference is the previous step's model (dusk sdpo)",
                "DPOConfig",
                "sdpo",
                normalize=_sdpo_normalize,
                collect=_sdpo_result,
                output=lambda out: out / "final",
            )
        )
    return kinds


KINDS: dict[str, StageKind] = {
    kind.name: kind
    for kind in [
        StageKind(
            name="upscale",
            summary="Depth Up-Scaling: SOLAR's `drop` or general `slices` (dusk upscale)",
            schema=_upscale_schema,
            run=_upscale_run,
            prepare=_upscale_prepare,
            collect=model_result,
        ),
        StageKind(
            name="eval",
            summary="score a model on H6 tasks (dusk eval); its numbers fill the report's tables",
            schema=_eval_schema,
            run=_eval_run,
            prepare=_set_out,
            collect=eval_result,
            data_files=_eval_data_files,
            normalize=_eval_normalize,
            artifact="eval",
        ),
        *_optional_kinds(),
        *_data_kinds(),
    ]
}


def get_kind(name: str) -> StageKind:
    """The stage kind called `name`, or an error listing the known kinds."""
    if name not in KINDS:
        raise DuskError(f"unknown stage kind {name!r}; known kinds: {', '.join(sorted(KINDS))}")
    return KINDS[name]
