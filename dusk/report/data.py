"""What a report shows, read from the results store: the paper's Table 2 layout (every evaluated model), each
ablation table the recipe declares, training curves, settings and contamination rows (`build_report`).

Every number comes from the store (`results.sqlite` in the run directory), so a report traces back to a run.

    python -c "from dusk.report.data import build_report; from dusk.store import open_store; \
print(build_report(open_store('runs/tiny', must_exist=True)).tables)"
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

from dusk.cards.body import prompt_format
from dusk.eval.metrics import unweighted_stderr
from dusk.h6 import H6
from dusk.report.measures import MeasureTable, measure_tables
from dusk.report.significance import Estimate, Verdict, leader
from dusk.store import Score, Store, TrainingSummary

COLUMNS = (("h6", "H6 (Avg.)"), *((b.task, b.title) for b in H6))  # (store task name, column title), paper's order
TYPES = {"upscale": "Pretrained", "pretrain": "Pretrained", "sft": "Instruction-tuned", "dpo": "Alignment-tuned",
         "sdpo": "Alignment-tuned"}  # fmt: skip
MODEL_KINDS = ("upscale", "pretrain", "sft", "dpo", "sdpo", "merge")
SUBSTITUTE_NOTE = (
    "Benchmark files are the local copies in DUSK_DATA_DIR (see each SOURCE.md), some of them substitutes for the "
    "leaderboard's: these numbers compare with lm-evaluation-harness run on the same files, not with the Open LLM "
    "Leaderboard to the decimal."
)


@dataclass
class ScoreRow:
    """One model's line in a table: where its numbers come from and the numbers (fractions, 0..1), each with its
    standard error and item count where the store has them."""

    label: str
    stage: str  # the model stage (or the external model name)
    eval_stage: str | None
    size: str
    type: str
    values: dict[str, float | None]
    stderrs: dict[str, float | None] = field(default_factory=dict)
    ns: dict[str, int | None] = field(default_factory=dict)
    model_dir: str | None = None  # the scored model's directory, when there is one on disk (the report links it)

    def estimate(self, task: str) -> Estimate:
        return Estimate(self.values.get(task), self.stderrs.get(task), self.ns.get(task))


@dataclass
class Table:
    name: str
    caption: str
    rows: list[ScoreRow]
    main: bool = False  # the Table 2 layout (with size and type columns)

    def verdict(self, task: str) -> Verdict:
        """The column's clear best, or the rows tied within noise at its top (see dusk.report.significance)."""
        return leader([row.estimate(task) for row in self.rows])

    def is_best(self, task: str, index: int) -> bool:
        """Whether row `index` is ahead of every other row of the column by more than the noise."""
        return self.verdict(task).best == index


@dataclass
class ReportData:
    title: str
    recipe: str
    run_id: int
    started: str
    finished: str | None
    dusk_version: str
    tables: list[Table]
    curves: dict[str, TrainingSummary]  # training stage -> its summary and loss curve
    settings: list[str]  # "mode harness, subset tiny" lines, one per distinct evaluation setting
    contamination: list[dict] = field(default_factory=list)  # per stage: model, reference, {task: suspicious share}
    measures: list[MeasureTable] = field(default_factory=list)  # perplexity and held-out stages, in run order
    models: list["ModelEntry"] = field(default_factory=list)  # every model the run made, with its card's summary


@dataclass(frozen=True)
class ModelEntry:
    """A model directory the run wrote: its stage, where it is, and what its model card says was done."""

    stage: str
    kind: str
    path: str
    card: str | None  # README.md when the directory has a dusk model card
    summary: str  # the card's one-line account of the stage ("-" without a card)
    tracker_run: str | None = None  # the experiment tracker's run id of a training stage, when it had one


def format_size(parameters: int | None) -> str:
    if not parameters:
        return "-"
    if parameters >= 1e9:
        return f"{parameters / 1e9:.1f}B"
    if parameters >= 1e7:
        return f"{parameters / 1e6:.0f}M"
    return f"{parameters / 1e6:.2f}M"


@dataclass(frozen=True)
class _StageInfo:
    name: str
    kind: str
    key: str | None
    inputs: dict[str, list[str]]
    settings: dict


def _stage_infos(store: Store, run_id: int) -> dict[str, _StageInfo]:
    return {
        row["name"]: _StageInfo(
            row["name"],
            row["kind"],
            row["cache_key"],
            json.loads(row["inputs"] or "{}"),
            json.loads(row["config"] or "{}"),
        )  # fmt: skip
        for row in store.stages(run_id)
        if row["state"] in ("cached", "ran", "resumed")
    }


def _model_of(info: _StageInfo) -> str:
    """The model an eval stage scored: the input stage's name, or the external model it names."""
    refs = info.inputs.get("model")
    return refs[0] if refs else str(info.settings.get("model"))


def _type_of(stage: str, infos: dict[str, _StageInfo]) -> str:
    info = infos.get(stage)
    if info is None:
        return "Base"
    if info.kind == "merge":
        parents = {_type_of(parent, infos) for parent in info.inputs.get("models", [])}
        return parents.pop() if len(parents) == 1 else "Merged"
    return TYPES.get(info.kind, info.kind)


def _headline_scores(store: Store, key: str | None) -> dict[str, Score]:
    """The table's columns as the store holds them; H6 gets its standard error from its six parts when the store has
    none (results written before dusk computed it): sqrt(sum se_i^2) / 6, the tasks being independent samples."""
    scores = {s.task: s for s in store.scores(key) if s.headline and not s.subject} if key else {}
    h6 = scores.get("h6")
    parts = [scores.get(task) for task, _title in COLUMNS if task != "h6"]
    if h6 is not None and h6.stderr is None and all(p is not None and p.stderr is not None for p in parts):
        scores["h6"] = Score(h6.task, h6.metric, h6.value, unweighted_stderr([p.stderr for p in parts]), h6.n, "", True)
    return scores


def _values(store: Store, key: str | None) -> tuple[dict, dict, dict]:
    """(values, stderrs, ns) by column."""
    scores = _headline_scores(store, key)
    return (
        {task: scores[task].value if task in scores else None for task, _title in COLUMNS},
        {task: scores[task].stderr if task in scores else None for task, _title in COLUMNS},
        {task: scores[task].n if task in scores else None for task, _title in COLUMNS},
    )


def _row(store: Store, infos: dict[str, _StageInfo], model: str, eval_stage: str | None, label: str,
         type_: str | None) -> ScoreRow:  # fmt: skip
    info = infos.get(model)
    evaluator = infos.get(eval_stage) if eval_stage else None
    artifact = store.artifact(info.key) if info is not None and info.key else None
    parameters = artifact.parameters if artifact else None
    if parameters is None and evaluator is not None and evaluator.key:  # a model from outside the recipe
        parameters = _parameters_of((store.settings(evaluator.key) or {}).get("model_dir"))
    size = format_size(parameters)
    values, stderrs, ns = _values(store, evaluator and evaluator.key)
    model_dir = _model_dir(store, info) if info is not None else None
    if model_dir is None and evaluator is not None and evaluator.key:  # a model from outside the recipe
        given = (store.settings(evaluator.key) or {}).get("model_dir")
        model_dir = str(given) if given and Path(given).is_dir() else None
    return ScoreRow(label, model, eval_stage, size, type_ or _type_of(model, infos), values, stderrs, ns, model_dir)


def _model_dir(store: Store, info: _StageInfo) -> str | None:
    """The model directory a model stage wrote (an sDPO stage's final model), if it is still on disk."""
    artifact = store.artifact(info.key) if info.kind in MODEL_KINDS and info.key else None
    if artifact is None or not Path(artifact.path).is_dir():
        return None
    return str(Path(artifact.path) / "final") if info.kind == "sdpo" else artifact.path


def _parameters_of(model_dir: str | None) -> int | None:
    from dusk.stages import model_parameters

    return model_parameters(Path(model_dir)) if model_dir and Path(model_dir).is_dir() else None


def _evals_of(infos: dict[str, _StageInfo]) -> dict[str, list[str]]:
    """model -> the eval stages that scored it, in run order."""
    found: dict[str, list[str]] = {}
    for info in infos.values():
        if info.kind == "eval":
            found.setdefault(_model_of(info), []).append(info.name)
    return found


def _pick_eval(candidates: list[str], preferred: str | None) -> str | None:
    if preferred:
        for name in candidates:
            if name == preferred or name.startswith(f"{preferred}/"):
                return name
    return candidates[0] if candidates else None


def _declared_table(store: Store, infos: dict, evals: dict, spec: dict) -> Table:
    rows = []
    for row in spec["rows"]:
        stage = row["stage"]
        info = infos.get(stage)
        if info is not None and info.kind == "eval":
            model, eval_stage = _model_of(info), stage
        else:
            model, eval_stage = stage, _pick_eval(evals.get(stage, []), spec.get("eval"))
        rows.append(_row(store, infos, model, eval_stage, row["label"], row.get("type")))
    return Table(spec["name"], spec["caption"], rows)


def _main_table(store: Store, infos: dict, evals: dict) -> Table:
    rows = [_row(store, infos, model, names[0], model, None) for model, names in evals.items()]
    caption = "Every evaluated model of this run, in the layout of the paper's Table 2 (scores in %)."
    return Table("main", caption, rows, main=True)


def _settings_lines(store: Store, infos: dict[str, _StageInfo]) -> list[str]:
    lines = []
    for info in infos.values():
        if info.kind != "eval" or not info.key:
            continue
        settings = store.settings(info.key) or {}
        subset = f"subset {settings['subset']}" if settings.get("subset") else f"limit {settings.get('limit') or 'all'}"
        line = f"mode {settings.get('mode')}{prompt_format(settings)}, {subset}, dtype {settings.get('dtype', '?')}"
        tasks = list(settings.get("tasks") or [])
        if tasks and tasks != ["h6"]:
            subjects = [t for t in tasks if t.startswith("mmlu_")]
            shown = [t for t in tasks if not t.startswith("mmlu_")]
            shown += (
                [f"MMLU on {len(subjects)} of 57 subjects ({', '.join(s[5:] for s in subjects)})"] if subjects else []
            )
            line += f", tasks {', '.join(shown)}"
        if line not in lines:
            lines.append(line)
    return lines


def _contamination(store: Store, infos: dict[str, _StageInfo]) -> list[dict]:
    """Per contamination stage: the model, its reference, and per task the share of suspicious items and n."""
    rows = []
    for info in infos.values():
        if info.kind != "contamination" or not info.key:
            continue
        scores = [s for s in store.scores(info.key) if s.headline]
        rows.append({
            "stage": info.name, "model": _model_of(info), "reference": _reference_of(info),
            "threshold": (store.settings(info.key) or {}).get("threshold"),
            "tasks": {s.task: s.value for s in scores}, "n": {s.task: s.n for s in scores},
        })  # fmt: skip
    return rows


def _reference_of(info: _StageInfo) -> str:
    refs = info.inputs.get("reference")
    return refs[0] if refs else str(info.settings.get("reference"))


def card_summary(model_dir: Path) -> tuple[str | None, str]:
    """(the card's path, its line saying what the stage did) of a model directory; (None, "-") without a card."""
    card = model_dir / "README.md"
    if not card.is_file():
        return None, "-"
    for line in card.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("Made by dusk"):
            return str(card), line.split(": ", 1)[-1].rstrip(".") if ": " in line else line
    return str(card), "-"


def tracker_run(store: Store, key: str | None) -> str | None:
    """A training stage's experiment tracker and run id as the store records them ("wandb 3x7k2"), or None when the
    stage logged to no tracker or its tracker has no run id (TensorBoard)."""
    summary = store.training(key) if key else None
    run = summary.tracker_run_id if summary is not None else None
    if not run:
        return None
    name = summary.detail["tracker"].get("name")
    return f"{name} {run}" if name else str(run)


def _models(store: Store, infos: dict[str, _StageInfo]) -> list[ModelEntry]:
    entries = []
    for info in infos.values():
        model_dir = _model_dir(store, info)
        if model_dir is None:
            continue
        card, summary = card_summary(Path(model_dir))
        entries.append(ModelEntry(info.name, info.kind, model_dir, card, summary, tracker_run(store, info.key)))
    return entries


def build_report(store: Store, run_id: int | None = None) -> ReportData:
    """Gather a run's tables, curves and settings from the store."""
    run = store.run(run_id)
    infos = _stage_infos(store, run["id"])
    evals = _evals_of(infos)
    spec = json.loads(run["report"] or "{}")
    tables = [_main_table(store, infos, evals)]
    tables += [_declared_table(store, infos, evals, table) for table in spec.get("tables", [])]
    curves = {}
    for name, info in infos.items():
        summary = store.training(info.key) if info.key else None
        if summary is not None and summary.curve:
            summary.detail["kind"] = info.kind
            curves[name] = summary
    return ReportData(
        title=spec.get("title") or run["recipe"],
        recipe=run["recipe"],
        run_id=run["id"],
        started=run["started"],
        finished=run["finished"],
        dusk_version=run["dusk_version"],
        tables=tables,
        curves=curves,
        settings=_settings_lines(store, infos),
        contamination=_contamination(store, infos),
        measures=measure_tables(store, run["id"]),
        models=_models(store, infos),
    )
