"""Run a recipe: stages in dependency order, each skipped when its cache key already has a complete artifact,
resumed from its checkpoint when an earlier run was interrupted, and recorded in the run directory's store.

Planning (cache keys and states, `dusk run --dry-run`) is `dusk/run_plan.py`; this module runs a plan. The run
directory holds everything a run writes:

    RUN_DIR/artifacts/<stage>/   the stage's output (a model directory, an eval's results.json, a data file)
    RUN_DIR/logs/<stage>.log     the stage's log
    RUN_DIR/work/<stage>/launch/ a stage run in N processes (`launch:`, --processes): its ranks' logs
    RUN_DIR/results.sqlite       the results store (runs, stages, cache keys, artifacts, scores)

    dusk run recipes/tiny.yaml --run-dir runs/tiny --dry-run
"""

import logging
import shutil
import sys
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
from dusk.launch import check_devices, launched
from dusk.recipe import Recipe, Stage
from dusk.run_lock import hold_run_dir
from dusk.run_plan import (
    CACHED,
    PlanItem,
    artifact_path,
    cache_key,
    data_hashes,
    dry_plan,
    format_plan,
    plan,
    plan_text,
    resumable,
    stage_paths,
)
from dusk.stages import StagePaths, get_kind
from dusk.store import Artifact, Store, open_store

# planning's names that callers of the runner use, handed on
__all__ = ["CACHED", "PlanItem", "RunSummary", "artifact_path", "dry_plan", "format_plan", "plan_text", "run_recipe"]
log = logging.getLogger(__name__)


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
    key = item.key or cache_key(stage, ctx.hashes, data_hashes(stage, ctx.artifacts, ctx.memo), ctx.memo)
    cached = ctx.store.artifact(key)
    if cached is not None and Path(cached.path).exists():
        refs = {name: list(names) for name, names in stage.refs.items()}
        ctx.store.stage_started(ctx.run_id, stage.name, position, stage.kind, key, CACHED, stage.settings, refs)
        ctx.store.stage_cached(ctx.run_id, stage.name)
        ctx.artifacts[stage.name], ctx.hashes[stage.name] = kind.output(Path(cached.path)), cached.sha256
        return CACHED
    paths = stage_paths(ctx.run_dir, stage.name)
    out = paths.out
    resume = resumable(ctx.store, stage, key, paths)
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
