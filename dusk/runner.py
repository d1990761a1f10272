"""Run a recipe: stages in dependency order, each skipped when its cache key already has a complete artifact,
resumed from its checkpoint when an earlier run was interrupted, and recorded in the run directory's store.

A stage's cache key hashes its settings, its input artifacts' hashes (or the built-in model's name), the bytes of
the data files it reads and dusk's version. The run directory holds everything a run writes:

    RUN_DIR/artifacts/<stage>/   the stage's output (a model directory, an eval's results.json, a data file)
    RUN_DIR/logs/<stage>.log     the stage's log
    RUN_DIR/work/<stage>/launch/ a stage run in N processes (`launch:`, --processes): its ranks' logs
    RUN_DIR/results.sqlite       the results store (runs, stages, cache keys, artifacts, scores)

    dusk run recipes/tiny.yaml --run-dir runs/tiny --dry-run
"""

import json
import logging
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dusk import __version__
from dusk.errors import DuskError
from dusk.hashing import HashMemo, sha256_dir, sha256_file
from dusk.launch import check_devices, key_fields, launch_note, launched
from dusk.recipe import Recipe, Stage
from dusk.run_lock import hold_run_dir
from dusk.stages import StagePaths, get_kind
from dusk.store import Artifact, Store, open_store

log = logging.getLogger(__name__)
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


def cache_key(stage: Stage, inputs: dict[str, str], data_hashes: dict[str, str], memo: HashMemo) -> str:
    """Hash of the stage's settings, input artifacts, data files and dusk's version (and, for training in several
    processes, their number: the global batch grows with it)."""
    kind = get_kind(stage.kind)
    settings = dict(stage.settings)
    for name in (*kind.inputs, *kind.data_inputs):
        if name in settings and settings[name] is not None:
            values = settings[name] if isinstance(settings[name], list) else [settings[name]]
            refs = stage.refs.get(name, ())
            hashed = [inputs[v] if v in refs else _external_hash(v, memo) if name in kind.inputs else v for v in values]
            settings[name] = hashed if isinstance(settings[name], list) else hashed[0]
    payload = {"kind": stage.kind, "settings": settings, "data": data_hashes, "dusk": __version__}
    if key_fields(stage.kind, stage.launch):
        payload["launch"] = key_fields(stage.kind, stage.launch)
    return _sha(json.dumps(payload, sort_keys=True, default=str))


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _data_hashes(stage: Stage, artifacts: dict[str, Path], memo: HashMemo) -> dict[str, str]:
    """sha256 of every data file the stage reads (input stages' artifacts are hashed through their keys too)."""
    return {
        str(path): memo.sha256(path) for path in get_kind(stage.kind).data_files(stage.config_with_inputs(artifacts))
    }


def _resumable(store: Store, stage: Stage, key: str, paths: StagePaths) -> bool:
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
        key = cache_key(stage, hashes, _data_hashes(stage, artifacts, memo), memo)
        artifact = store.artifact(key)
        if artifact is not None and Path(artifact.path).exists():
            hashes[stage.name] = artifact.sha256
            artifacts[stage.name] = get_kind(stage.kind).output(Path(artifact.path))
            items.append(PlanItem(stage, key, CACHED, Path(artifact.path)))
        else:
            state = RESUMABLE if _resumable(store, stage, key, stage_paths(run_dir, stage.name)) else TO_RUN
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


# running ----------------------------------------------------------------------------------------------------------
@contextmanager
def stage_log(path: Path) -> Iterator[None]:
    """Send every log record (INFO and up) to the stage's log file while it runs; the console keeps its level."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous = root.level
    consoles = [h for h in root.handlers if h.level == logging.NOTSET]
    for console in consoles:
        console.setLevel(previous or logging.WARNING)
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(previous)
        for console in consoles:
            console.setLevel(logging.NOTSET)
        handler.close()


def _remove(path: Path) -> None:
    """Delete a stage's own earlier output or work folder (paths come from stage_paths, strictly inside the run)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _artifact_hash(path: Path) -> str:
    return sha256_file(path) if path.is_file() else sha256_dir(path)


@dataclass
class RunContext:
    recipe: Recipe
    run_dir: Path
    store: Store
    run_id: int
    artifacts: dict[str, Path]  # stage -> artifact path, filled as stages finish
    hashes: dict[str, str]  # stage -> artifact sha256
    memo: HashMemo
    keep_checkpoints: bool = False  # keep a finished stage's checkpoints (by default they are deleted)
    show_progress: bool = True  # also show what a stage run in several processes prints (its rank 0)


def execute_stage(ctx: RunContext, position: int, item: PlanItem) -> str:
    """Run one stage (or take it from the cache); record it; return its final state."""
    stage = item.stage
    kind = get_kind(stage.kind)
    key = item.key or cache_key(stage, ctx.hashes, _data_hashes(stage, ctx.artifacts, ctx.memo), ctx.memo)
    cached = ctx.store.artifact(key)
    if cached is not None and Path(cached.path).exists():
        refs = {name: list(names) for name, names in stage.refs.items()}
        ctx.store.stage_started(ctx.run_id, stage.name, position, stage.kind, key, CACHED, stage.settings, refs)
        ctx.store.stage_cached(ctx.run_id, stage.name)
        ctx.artifacts[stage.name], ctx.hashes[stage.name] = kind.output(Path(cached.path)), cached.sha256
        return CACHED
    paths = stage_paths(ctx.run_dir, stage.name)
    out = paths.out
    resume = _resumable(ctx.store, stage, key, paths)
    refs = {name: list(names) for name, names in stage.refs.items()}
    ctx.store.stage_started(ctx.run_id, stage.name, position, stage.kind, key, "running", stage.settings, refs)
    ctx.store.forget_artifacts_at(str(out))
    if not resume:
        _remove(out)
        _remove(paths.work)
    started = time.perf_counter()
    try:
        with stage_log(ctx.run_dir / "logs" / f"{stage.name}.log"):
            log.info("stage %s (%s) key %s%s", stage.name, stage.kind, key, " (resuming)" if resume else "")
            cfg = kind.prepare(stage.config_with_inputs(ctx.artifacts), paths, resume)
            _run_stage(ctx, stage, cfg, paths)
            result = kind.collect(out, cfg)
            digest = _artifact_hash(out)
            log.info("stage %s done in %.1f s, artifact sha256 %s", stage.name, time.perf_counter() - started, digest)
    except BaseException as exc:
        ctx.store.stage_failed(ctx.run_id, stage.name, _error_text(exc), time.perf_counter() - started)
        raise
    state = "resumed" if resume else "ran"
    artifact = Artifact(key, stage.name, stage.kind, str(out), digest, result.parameters)
    ctx.store.stage_completed(ctx.run_id, stage.name, state, time.perf_counter() - started, artifact, result)
    ctx.artifacts[stage.name], ctx.hashes[stage.name] = kind.output(out), digest
    if kind.has_checkpoint is not None and not ctx.keep_checkpoints:
        from dusk.train.checkpoint import delete_checkpoints

        with stage_log(ctx.run_dir / "logs" / f"{stage.name}.log"):
            freed = delete_checkpoints(paths.work)
            if freed:
                log.info("stage %s: deleted its checkpoints (%.0f MB; see --keep-checkpoints)", stage.name, freed / 1e6)
    return state


def _run_stage(ctx: RunContext, stage: Stage, cfg: Any, paths: StagePaths) -> None:
    """The stage's run(cfg): here, or in `launch.processes` child processes when its launch asks for several."""
    if not launched(stage.kind, stage.launch):
        get_kind(stage.kind).run(cfg)
        return
    from dusk.launch_run import launch_dir, run_processes

    log.info("stage %s: %d processes (torchrun); each rank's log is in %s", stage.name, stage.launch.processes,
             launch_dir(paths.work))  # fmt: skip
    echo = sys.stderr if ctx.show_progress else None
    run_processes(stage.kind, cfg, stage.launch, paths.work, f"stage {stage.name}", echo)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, DuskError | ChildProcessError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "".join(traceback.format_exception(exc))[-4000:]


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    run_dir: Path
    states: dict[str, str]  # stage -> cached / ran / resumed
    seconds: float


def run_recipe(recipe: Recipe, run_dir: Path, show_progress: bool = True, keep_checkpoints: bool = False) -> RunSummary:
    """Execute the recipe in `run_dir`, holding the run directory's lock (`plan_text` shows what would run).

    A training stage's checkpoints are deleted once its artifact is complete, unless `keep_checkpoints`.
    """
    check_devices({name: (stage.kind, stage.launch) for name, stage in recipe.stages.items()})
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with hold_run_dir(run_dir):
        store = open_store(run_dir)
        try:
            if store.mark_killed_runs():
                log.warning("run directory %s: earlier runs that were killed are now marked 'killed'", run_dir)
            items = plan(recipe, run_dir, store)
            return _execute(recipe, run_dir, store, items, show_progress, keep_checkpoints)
        finally:
            store.close()


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


def _execute(
    recipe: Recipe, run_dir: Path, store: Store, items: list[PlanItem], show_progress: bool, keep_checkpoints: bool
) -> RunSummary:
    from tqdm import tqdm

    run_id = store.start_run(
        recipe.name, str(recipe.path), recipe.sha256, recipe.text, list(recipe.overrides), recipe.report_spec(),
        str(run_dir), __version__,
    )  # fmt: skip
    memo = HashMemo(run_dir / "state" / "hashes.json")
    ctx = RunContext(recipe, run_dir, store, run_id, {}, {}, memo, keep_checkpoints, show_progress)
    states: dict[str, str] = {}
    started = time.perf_counter()
    bar = tqdm(total=len(items), desc=f"run {recipe.name}", unit="stage", position=0, disable=not show_progress)
    status = "failed"
    try:
        for position, item in enumerate(items):
            bar.set_postfix_str(f"{item.stage.name} ({item.stage.kind})")
            stage_started = time.perf_counter()
            states[item.stage.name] = execute_stage(ctx, position, item)
            seconds = time.perf_counter() - stage_started
            if show_progress:
                bar.write(
                    f"[{position + 1}/{len(items)}] {item.stage.name:<24} {states[item.stage.name]:<8} {seconds:7.1f} s"
                )
            bar.update(1)
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        bar.close()
        store.finish_run(run_id, status)
    return RunSummary(run_id, run_dir, states, time.perf_counter() - started)
