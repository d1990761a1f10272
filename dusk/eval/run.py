"""One `dusk eval` run: load the model into dusk's engine, let the harness prepare, score and aggregate the tasks,
and write results.json and the samples files (as `dusk.merge.run` does for merges).

    DUSK_DATA_DIR=../shared/data dusk eval tiny-llama --tasks arc_challenge --limit 5 --out /tmp/eval
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dusk.errors import DuskError
from dusk.eval.harness import Selection, h6_aggregate, mmlu_aggregate, prepare_runs, score_runs
from dusk.eval.results import write_results
from dusk.eval.subsets import subset_ids
from dusk.eval.tasks import expand_tasks
from dusk.eval.tasks.base import MODES, Mode
from dusk.hashing import sha256_dir
from dusk.run_output import check_out_dir


@dataclass(frozen=True)
class EvalConfig:
    """One `dusk eval` run."""

    model: str  # built-in name, Hugging Face model directory or .gguf file
    tasks: tuple[str, ...]  # task or group names (h6, mmlu, arc_challenge, mmlu_anatomy, ...)
    out: Path  # directory for results.json and samples_<task>.jsonl
    mode: Mode = "harness"  # harness = lm-evaluation-harness 0.4.x; leaderboard = Open LLM Leaderboard v1
    limit: int | None = None  # score only the first N items of each task (each MMLU subject)
    subset: str | None = None  # score a named fixed subset (tiny = 100 items per task)
    batch_size: int = 8  # requests per forward batch
    dtype: str = "float32"  # model weights' dtype: float32 or bfloat16
    max_new_tokens: int = 256  # generation budget per GSM8K item (lm-eval's max_gen_toks)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise DuskError(f"--mode {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.limit is not None and self.limit <= 0:
            raise DuskError(f"--limit must be a positive number of items per task, got {self.limit}")
        if self.limit is not None and self.subset is not None:
            raise DuskError("give --limit or --subset, not both")
        if self.batch_size <= 0:
            raise DuskError(f"--batch-size must be a positive number of requests per batch, got {self.batch_size}")
        if self.max_new_tokens <= 0:
            raise DuskError(f"--max-new-tokens must be a positive number of tokens, got {self.max_new_tokens}")
        if not self.tasks:
            raise DuskError("--tasks is empty; name tasks or groups (h6, mmlu, ...)")
        names = expand_tasks(list(self.tasks))  # unknown names fail here, before the model loads
        if self.subset is not None:
            for name in names:
                subset_ids(self.subset, name)  # an unknown subset or a task it does not cover fails here too


def load_engine(model_dir: Path, dtype: str, batch_size: int):
    """dusk's engine on the model (its tokenizer is required)."""
    from dusk.eval.engine import Engine  # imports torch: only when a model is evaluated
    from dusk.models.io import load_model, load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    return Engine(load_model(model_dir, dtype=dtype), tokenizer, batch_size=batch_size)


def run(cfg: EvalConfig) -> Path:
    """Evaluate, aggregate and write results.json + samples; return the results.json path."""
    from dusk.models.io import load_tokenizer, read_config, resolve_model  # imports torch: not at `dusk --help`

    check_out_dir(cfg.out)
    model_dir = resolve_model(cfg.model)
    read_config(model_dir)  # an unreadable config.json is named here, not deep inside transformers
    load_tokenizer(model_dir)  # a model without a tokenizer fails before anything heavy
    started = time.perf_counter()
    runs = prepare_runs(expand_tasks(list(cfg.tasks)), cfg.mode, Selection(cfg.limit, cfg.subset), cfg.max_new_tokens)
    engine = load_engine(model_dir, cfg.dtype, cfg.batch_size)  # after the data: a missing file fails first
    score_runs(engine, runs, cfg.mode)
    aggregates = [a for a in [mmlu_aggregate(runs, cfg.mode)] if a]
    h6 = h6_aggregate(runs, aggregates[0] if aggregates else None)
    aggregates += [h6] if h6 else []
    settings = {
        "model": cfg.model,
        "model_dir": str(model_dir),
        "model_dir_sha256": sha256_dir(model_dir),
        "mode": cfg.mode,
        "tasks": list(cfg.tasks),
        "limit": cfg.limit,
        "subset": cfg.subset,
        "dtype": cfg.dtype,
        "batch_size": cfg.batch_size,
        "max_new_tokens": cfg.max_new_tokens,
        "wall_seconds": round(time.perf_counter() - started, 2),
        "engine": asdict(engine.stats) | {"token_efficiency": engine.stats.token_efficiency},
    }
    return write_results(cfg.out, runs, aggregates, settings)
