"""Plan a recipe run without running anything: each stage's cache key (its settings, its input artifacts' hashes or
the built-in model's name, the bytes of the data files it reads, dusk's version) and its state: cached (a complete
artifact has that key), resumable (an interrupted attempt left a checkpoint) or to run. Every path a stage writes
lies strictly inside the run directory.

    dusk run recipes/tiny.yaml --run-dir runs/tiny --dry-run
"""

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dusk import __version__
from dusk.errors import DuskError
from dusk.hashing import HashMemo
from dusk.launch import key_fields, launch_note
from dusk.recipe import Recipe, Stage
from dusk.stages import StagePaths, get_kind
from dusk.store import Store, open_store

CACHED, RESUMABLE, TO_RUN = "cached", "resumable", "to run"


@dataclass
class PlanItem:
    stage: Stage
    key: str | None  # None while an input is still to be produced
    state: str  # cached / resumable / to run
    artifact: Path


# hashing ----------------------------------------------------------------------------------------------------------
def _external_hash(value: str, memo: HashMemo) -> str:
    from dusk.models.builtin import BUILTIN_MODELS

    if value in BUILTIN_MODELS:
        return f"builtin:{value}"  # built-in weights are pinned (wheel version, seeded tiny models)
    return memo.sha256(Path(value).expanduser())


# planning ---------------------------------------------------------------------------------------------------------
def _inside(root: Path, stage: str) -> Path:
    """root/stage, refused unless it lies strictly inside root (a stage owns only its own folder)."""
    path = (root / stage).resolve()
    if not stage or path == root or not path.is_relative_to(root):
        raise DuskError(f"stage {stage!r}: its path {path} would not lie inside {root}")
    return path


def artifact_path(run_dir: Path, stage: str) -> Path:
    """Where a stage's output goes: always strictly inside RUN_DIR/artifacts."""
    return _inside(run_dir.resolve() / "artifacts", stage)


def stage_paths(run_dir: Path, stage: str) -> StagePaths:
    return StagePaths(
        artifact_path(run_dir, stage), _inside(run_dir.resolve() / "work", stage), run_dir.resolve() / "cache"
    )


def cache_key(stage: Stage, inputs: dict[str, str], file_hashes: dict[str, str], memo: HashMemo) -> str:
    """Hash of the stage's settings, input artifacts, data files and dusk's version (and, for training in several
    processes, their number: the global batch grows with it)."""
    kind = get_kind(stage.kind)
    settings = {name: value for name, value in stage.settings.items() if name not in kind.unkeyed}
    for name in (*kind.inputs, *kind.data_inputs):
        if name in settings and settings[name] is not None:
            values = settings[name] if isinstance(settings[name], list) else [settings[name]]
            refs = stage.refs.get(name, ())
            hashed = [inputs[v] if v in refs else _external_hash(v, memo) if name in kind.inputs else v for v in values]
            settings[name] = hashed if isinstance(settings[name], list) else hashed[0]
    payload = {"kind": stage.kind, "settings": settings, "data": file_hashes, "dusk": __version__}
    if key_fields(stage.kind, stage.launch):
        payload["launch"] = key_fields(stage.kind, stage.launch)
    return _sha(json.dumps(payload, sort_keys=True, default=str))


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def data_hashes(stage: Stage, artifacts: dict[str, Path], memo: HashMemo) -> dict[str, str]:
    """sha256 of every data file the stage reads (input stages' artifacts are hashed through their keys too)."""
    return {
        str(path): memo.sha256(path) for path in get_kind(stage.kind).data_files(stage.config_with_inputs(artifacts))
    }


def resumable(store: Store, stage: Stage, key: str, paths: StagePaths) -> bool:
    check = get_kind(stage.kind).has_checkpoint
    if check is None or not check(paths.work):
        return False
    last = store.last_attempt(stage.name)
    return last is not None and last["cache_key"] == key and last["state"] in ("running", "killed", "failed")


def plan(recipe: Recipe, run_dir: Path, store: Store, memo_dir: Path | None = None) -> list[PlanItem]:
    """Each stage's cache key (when its inputs are known) and state: cached, resumable or to run."""
    memo = HashMemo((memo_dir or run_dir) / "state" / "hashes.json")
    hashes: dict[str, str] = {}  # stage -> artifact sha256, for stages that are cached
    artifacts: dict[str, Path] = {}
    items = []
    for stage in recipe.stages.values():
        out = artifact_path(run_dir, stage.name)
        if any(dep not in hashes for dep in stage.depends):
            items.append(PlanItem(stage, None, TO_RUN, out))
            continue
        key = cache_key(stage, hashes, data_hashes(stage, artifacts, memo), memo)
        artifact = store.artifact(key)
        if artifact is not None and Path(artifact.path).exists():
            hashes[stage.name] = artifact.sha256
            artifacts[stage.name] = get_kind(stage.kind).output(Path(artifact.path))
            items.append(PlanItem(stage, key, CACHED, Path(artifact.path)))
        else:
            state = RESUMABLE if resumable(store, stage, key, stage_paths(run_dir, stage.name)) else TO_RUN
            items.append(PlanItem(stage, key, state, out))
    return items


def format_plan(recipe: Recipe, run_dir: Path, items: list[PlanItem]) -> str:
    width = max(len(item.stage.name) for item in items)
    kind_width = max(len(item.stage.kind) for item in items)
    lines = [f"recipe {recipe.name}: {len(items)} stages, run directory {run_dir}"]
    for index, item in enumerate(items, 1):
        key = item.key[:12] if item.key else "(after inputs)"
        note = launch_note(item.stage.kind, item.stage.launch)
        lines.append(
            f"  {index:>2}  {item.stage.name:<{width}}  {item.stage.kind:<{kind_width}}  {item.state:<9}  {key:<14}"
            f"  {note}".rstrip()
        )
    counts = {state: sum(item.state == state for item in items) for state in (CACHED, RESUMABLE, TO_RUN)}
    lines.append(", ".join(f"{count} {state}" for state, count in counts.items()))
    return "\n".join(lines)


def plan_text(recipe: Recipe, run_dir: Path) -> str:
    """The plan as text (`dusk run --dry-run`): each stage cached, resumable or to run. Nothing is created."""
    return format_plan(recipe, Path(run_dir), dry_plan(recipe, run_dir))


def dry_plan(recipe: Recipe, run_dir: Path) -> list[PlanItem]:
    """The plan of a run in `run_dir` without creating anything (an absent run directory: every stage to run)."""
    run_dir = Path(run_dir)
    if not (run_dir / "results.sqlite").is_file():
        with tempfile.TemporaryDirectory() as empty:
            store = open_store(Path(empty))
            try:
                return plan(recipe, run_dir, store, memo_dir=Path(empty))
            finally:
                store.close()
    store = open_store(run_dir)
    try:
        return plan(recipe, run_dir, store)
    finally:
        store.close()
