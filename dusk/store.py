"""The results store: one SQLite file per run directory holding runs, stages, cache keys, artifacts, training
summaries and evaluation scores (per task and per MMLU subject, with the settings that produced them).

Results belong to a cache key, not to a run: a stage skipped because its key is cached in run 2 points at the
scores run 1 computed. A stage's result (artifact, training summary, scores, stage row) is written in one
transaction, so the store never holds half a stage.

    dusk results --run-dir runs/tiny
"""

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dusk.errors import DuskError

STORE_NAME = "results.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, recipe TEXT NOT NULL, recipe_path TEXT, recipe_sha256 TEXT,
    recipe_text TEXT, overrides TEXT, report TEXT, run_dir TEXT, dusk_version TEXT,
    started TEXT, finished TEXT, status TEXT);
CREATE TABLE IF NOT EXISTS stages (
    run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL, position INTEGER, kind TEXT NOT NULL,
    cache_key TEXT, state TEXT NOT NULL, config TEXT, inputs TEXT, started TEXT, finished TEXT, seconds REAL,
    error TEXT, PRIMARY KEY (run_id, name));
CREATE TABLE IF NOT EXISTS artifacts (
    cache_key TEXT PRIMARY KEY, stage TEXT, kind TEXT, path TEXT NOT NULL, sha256 TEXT NOT NULL,
    bytes INTEGER, parameters INTEGER, created TEXT);
CREATE TABLE IF NOT EXISTS training (
    cache_key TEXT PRIMARY KEY, steps INTEGER, final_loss REAL, tokens INTEGER, seconds REAL,
    log_path TEXT, summary TEXT, curve TEXT, tracker_run_id TEXT);
CREATE TABLE IF NOT EXISTS scores (
    cache_key TEXT NOT NULL, task TEXT NOT NULL, subject TEXT NOT NULL DEFAULT '', metric TEXT NOT NULL,
    value REAL, stderr REAL, n INTEGER, headline INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (cache_key, task, subject, metric));
CREATE TABLE IF NOT EXISTS settings (cache_key TEXT PRIMARY KEY, mode TEXT, subset TEXT, lim INTEGER, detail TEXT);
"""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Score:
    """One number: a task's (or an MMLU subject's) metric."""

    task: str
    metric: str
    value: float | None
    stderr: float | None = None
    n: int | None = None
    subject: str = ""
    headline: bool = False


@dataclass
class TrainingSummary:
    """What a training stage did: steps, last loss, tokens, time, and its loss curve [(step, loss), ...]."""

    steps: int
    final_loss: float | None
    tokens: int | None
    seconds: float | None
    log_path: str | None
    curve: list[tuple[int, float]] = field(default_factory=list)
    detail: dict = field(default_factory=dict)

    @property
    def tracker_run_id(self) -> str | None:
        """The experiment tracker's run id (`--report-to`; W&B, MLflow), from the train record in `detail`."""
        tracker = self.detail.get("tracker")
        return tracker.get("run_id") if isinstance(tracker, dict) else None


@dataclass
class StageResult:
    """Everything a finished stage contributes to the store besides its artifact."""

    scores: list[Score] = field(default_factory=list)
    settings: dict | None = None  # evaluation settings: mode, subset, limit, and the rest as detail
    training: TrainingSummary | None = None
    parameters: int | None = None  # parameter count when the artifact is a model


@dataclass(frozen=True)
class Artifact:
    cache_key: str
    stage: str
    kind: str
    path: str
    sha256: str
    parameters: int | None


class Store:
    """A connection to a run directory's results store (created on first use)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(SCHEMA)
        _add_missing_columns(self.db)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.db:  # commits on success, rolls back on an exception
            yield self.db

    # runs ------------------------------------------------------------------------------------------------------
    def start_run(self, recipe: str, recipe_path: str, recipe_sha256: str, recipe_text: str, overrides: list[str],
                  report: dict, run_dir: str, version: str) -> int:  # fmt: skip
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (recipe, recipe_path, recipe_sha256, recipe_text, overrides, report, run_dir,"
                " dusk_version, started, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running')",
                (recipe, recipe_path, recipe_sha256, recipe_text, json.dumps(overrides), json.dumps(report),
                 run_dir, version, now()),
            )  # fmt: skip
            return int(cursor.lastrowid)

    def finish_run(self, run_id: int, status: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished = ?, status = ? WHERE id = ?", (now(), status, run_id))

    def mark_killed_runs(self) -> int:
        """Runs still marked `running` whose process is gone (the caller holds the run directory's lock): mark them
        and their running stages `killed`; return how many runs."""
        with self.transaction() as db:
            db.execute("UPDATE stages SET state = 'killed' WHERE state = 'running'")
            return db.execute("UPDATE runs SET status = 'killed' WHERE status = 'running'").rowcount

    def runs(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM runs ORDER BY id").fetchall()

    def run(self, run_id: int | None = None) -> sqlite3.Row:
        """The run with this id, or the latest run."""
        if run_id is None:
            row = self.db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                raise DuskError(f"{self.path}: no runs recorded yet; run `dusk run RECIPE.yaml` first")
            return row
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            known = ", ".join(str(r["id"]) for r in self.runs()) or "none"
            raise DuskError(f"{self.path}: no run with id {run_id}; recorded runs: {known}")
        return row

    # stages ----------------------------------------------------------------------------------------------------
    def stage_started(self, run_id: int, name: str, position: int, kind: str, key: str | None, state: str,
                      config: dict, inputs: dict) -> None:  # fmt: skip
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO stages (run_id, name, position, kind, cache_key, state, config, inputs,"
                " started) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, name, position, kind, key, state, json.dumps(config), json.dumps(inputs), now()),
            )

    def stage_failed(self, run_id: int, name: str, error: str, seconds: float) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE stages SET state = 'failed', error = ?, finished = ?, seconds = ?"
                " WHERE run_id = ? AND name = ?",
                (error, now(), seconds, run_id, name),
            )

    def stage_cached(self, run_id: int, name: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE stages SET finished = ?, seconds = 0 WHERE run_id = ? AND name = ?", (now(), run_id, name)
            )

    def stage_completed(self, run_id: int, name: str, state: str, seconds: float, artifact: Artifact,
                        result: StageResult) -> None:  # fmt: skip
        """Record a finished stage: its artifact, training summary, settings, scores and state, in one transaction."""
        key = artifact.cache_key
        with self.transaction() as db:
            for table in ("artifacts", "training", "scores", "settings"):
                db.execute(f"DELETE FROM {table} WHERE cache_key = ?", (key,))
            db.execute(
                "INSERT INTO artifacts (cache_key, stage, kind, path, sha256, parameters, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, artifact.stage, artifact.kind, artifact.path, artifact.sha256, artifact.parameters, now()),
            )
            if result.training is not None:
                _insert_training(db, key, result.training)
            if result.settings is not None:
                _insert_settings(db, key, result.settings)
            db.executemany(
                "INSERT OR REPLACE INTO scores (cache_key, task, subject, metric, value, stderr, n, headline)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(key, s.task, s.subject, s.metric, s.value, s.stderr, s.n, int(s.headline)) for s in result.scores],
            )
            db.execute(
                "UPDATE stages SET state = ?, finished = ?, seconds = ?, error = NULL WHERE run_id = ? AND name = ?",
                (state, now(), seconds, run_id, name),
            )

    def stages(self, run_id: int) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM stages WHERE run_id = ? ORDER BY position", (run_id,)).fetchall()

    def last_attempt(self, name: str) -> sqlite3.Row | None:
        """The most recent record of a stage by this name, in any run (to find an interrupted one)."""
        return self.db.execute("SELECT * FROM stages WHERE name = ? ORDER BY run_id DESC LIMIT 1", (name,)).fetchone()

    # cache -----------------------------------------------------------------------------------------------------
    def artifact(self, key: str) -> Artifact | None:
        row = self.db.execute("SELECT * FROM artifacts WHERE cache_key = ?", (key,)).fetchone()
        if row is None:
            return None
        return Artifact(row["cache_key"], row["stage"], row["kind"], row["path"], row["sha256"], row["parameters"])

    def forget_artifacts_at(self, path: str) -> None:
        """An artifact directory is about to be overwritten: keys pointing at it are no longer cached."""
        with self.transaction() as db:
            db.execute("DELETE FROM artifacts WHERE path = ?", (path,))

    # results ---------------------------------------------------------------------------------------------------
    def scores(self, key: str) -> list[Score]:
        rows = self.db.execute(
            "SELECT * FROM scores WHERE cache_key = ? ORDER BY task, subject, metric", (key,)
        ).fetchall()
        return [Score(r["task"], r["metric"], r["value"], r["stderr"], r["n"], r["subject"], bool(r["headline"]))
                for r in rows]  # fmt: skip

    def settings(self, key: str) -> dict | None:
        row = self.db.execute("SELECT * FROM settings WHERE cache_key = ?", (key,)).fetchone()
        if row is None:
            return None
        return {"mode": row["mode"], "subset": row["subset"], "limit": row["lim"], **json.loads(row["detail"])}

    def training(self, key: str) -> TrainingSummary | None:
        row = self.db.execute("SELECT * FROM training WHERE cache_key = ?", (key,)).fetchone()
        if row is None:
            return None
        curve = [(int(step), float(loss)) for step, loss in json.loads(row["curve"] or "[]")]
        return TrainingSummary(row["steps"], row["final_loss"], row["tokens"], row["seconds"], row["log_path"],
                               curve, json.loads(row["summary"] or "{}"))  # fmt: skip


# Columns added after a store's first release: (table, column, type); an older store gets them on open.
ADDED_COLUMNS = (("training", "tracker_run_id", "TEXT"),)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    for table, column, kind in ADDED_COLUMNS:
        if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
            with db:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def _insert_training(db: sqlite3.Connection, key: str, summary: TrainingSummary) -> None:
    db.execute(
        "INSERT INTO training (cache_key, steps, final_loss, tokens, seconds, log_path, summary, curve,"
        " tracker_run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (key, summary.steps, summary.final_loss, summary.tokens, summary.seconds, summary.log_path,
         json.dumps(summary.detail), json.dumps(summary.curve), summary.tracker_run_id),
    )  # fmt: skip


def tracker_run_ids(store: "Store", run_id: int) -> dict[str, str]:
    """The tracker run id of each training stage of a run that logged to a tracker with run ids, by stage name."""
    rows = store.db.execute(
        "SELECT s.name, t.tracker_run_id FROM stages s JOIN training t ON t.cache_key = s.cache_key"
        " WHERE s.run_id = ? AND t.tracker_run_id IS NOT NULL ORDER BY s.position",
        (run_id,),
    ).fetchall()
    return {row["name"]: row["tracker_run_id"] for row in rows}


def _insert_settings(db: sqlite3.Connection, key: str, settings: dict) -> None:
    detail = {k: v for k, v in settings.items() if k not in ("mode", "subset", "limit")}
    db.execute(
        "INSERT INTO settings (cache_key, mode, subset, lim, detail) VALUES (?, ?, ?, ?, ?)",
        (key, settings.get("mode"), settings.get("subset"), settings.get("limit"), json.dumps(detail, default=str)),
    )


def open_store(run_dir: Path, must_exist: bool = False) -> Store:
    """The store of a run directory (`RUN_DIR/results.sqlite`)."""
    path = Path(run_dir) / STORE_NAME
    if must_exist and not path.is_file():
        raise DuskError(f"{path}: no results store here; run `dusk run RECIPE.yaml --run-dir {run_dir}` first")
    return Store(path)


def find_run_dir(root: Path = Path("runs")) -> Path:
    """The run directory used most recently under `root` (the one whose store changed last)."""
    stores = sorted(Path(root).glob(f"*/{STORE_NAME}"), key=lambda p: p.stat().st_mtime)
    if not stores:
        raise DuskError(f"no results store under {root}/; run `dusk run RECIPE.yaml` first or pass --run-dir")
    return stores[-1].parent
