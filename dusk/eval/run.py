"""One `dusk eval` run: load the model into dusk's engine, let the harness prepare, score and aggregate the tasks,
and write results.json and the samples files (as `dusk.merge.run` does for merges).

    DUSK_DATA_DIR=../shared/data dusk eval tiny-llama --tasks arc_challenge --limit 5 --out /tmp/eval
"""

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dusk.config_flags import comma_separated
from dusk.devices import DEVICE_HELP, DeviceName, DtypeName
from dusk.eval.chat import ChatFormat, ChatPrompts, check_chat_template
from dusk.eval.harness import (
    EvalItem,
    Selection,
    TaskRun,
    finish_runs,
    h6_aggregate,
    mmlu_aggregate,
    prepare_runs,
    run_engine_items,
)
from dusk.eval.parallel import Processes, gather_to_main, launched, rank_device, share_out, start
from dusk.eval.results import write_results
from dusk.eval.subsets import subset_ids
from dusk.eval.tasks import expand_tasks
from dusk.eval.tasks.base import Mode
from dusk.hashing import sha256_dir
from dusk.run_output import check_out_dir


class EvalConfig(BaseModel):
    """One `dusk eval` run: the same class validates the recipe stage and generates the command's flags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="built-in name, model directory, .gguf file or hub id (org/name[@rev])")
    tasks: tuple[str, ...] = Field(
        ("h6",), description="tasks or groups, comma-separated: h6, mmlu, arc_challenge, mmlu_<subject>, ..."
    )
    out: Path | None = Field(
        None, description="directory for results.json and samples_<task>.jsonl (default runs/eval/<model name>)"
    )
    mode: Mode = Field(
        "harness", description="harness = lm-evaluation-harness 0.4.x; leaderboard = Open LLM Leaderboard v1"
    )
    limit: int | None = Field(
        None,
        description="score only the first N items of each task (each MMLU subject); with --subset, a seeded N of "
        "the subset's items per task (MMLU: N over all subjects)",
    )
    subset: str | None = Field(None, description="score a named fixed subset (tiny = 100 items per task)")
    batch_size: int = Field(8, description="requests per forward batch")
    device: DeviceName = Field("auto", description=f"where the model runs: {DEVICE_HELP}")
    dtype: DtypeName = Field("auto", description="model weights' dtype (auto = bfloat16 on CUDA, float32 on CPU)")
    attention: Literal["sdpa", "eager"] = Field(
        "sdpa", description="attention implementation (the engine's prefix sharing needs one that takes 4D masks)"
    )
    allow_pickle: bool = Field(
        False, description="load pickled weights (*.bin) when a model has no safetensors: only if you trust it"
    )
    max_new_tokens: int = Field(256, description="generation budget per GSM8K item (lm-eval's max_gen_toks)")
    apply_chat_template: bool = Field(
        False, description="render prompts through the tokenizer's chat template (lm-eval's --apply_chat_template)"
    )
    fewshot_as_multiturn: bool | None = Field(
        None,
        description="with a chat template, shots as user/assistant turns (default: on, as lm-eval; "
        "--no-fewshot-as-multiturn puts them in one user message)",
    )
    system_instruction: str | None = Field(
        None, description="system message before the task's description and shots (lm-eval's --system_instruction)"
    )

    _split_tasks = field_validator("tasks", mode="before")(comma_separated)

    @field_validator("limit")
    @classmethod
    def _positive_limit(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise ValueError("must be a positive number of items per task")
        return value

    @field_validator("batch_size")
    @classmethod
    def _positive_batch(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be a positive number of requests per batch")
        return value

    @field_validator("max_new_tokens")
    @classmethod
    def _positive_budget(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be a positive number of tokens")
        return value

    @model_validator(mode="after")
    def _chat_settings(self) -> "EvalConfig":
        if self.fewshot_as_multiturn and not self.apply_chat_template:
            raise ValueError("--fewshot-as-multiturn needs --apply-chat-template (turns exist only in a chat template)")
        if self.mode == "leaderboard" and (self.apply_chat_template or self.system_instruction is not None):
            flag = "--apply-chat-template" if self.apply_chat_template else "--system-instruction"
            raise ValueError(f"{flag} with --mode leaderboard: the Open LLM Leaderboard v1 scored plain prompts; "
                             "use --mode harness")  # fmt: skip
        return self

    @property
    def chat(self) -> ChatFormat:
        """The prompt format, lm-eval's defaults resolved: multiturn shots under a chat template unless turned off."""
        multiturn = self.apply_chat_template if self.fewshot_as_multiturn is None else self.fewshot_as_multiturn
        return ChatFormat(self.apply_chat_template, multiturn, self.system_instruction)

    @model_validator(mode="after")
    def _known_tasks(self) -> "EvalConfig":
        if not self.tasks:
            raise ValueError("--tasks is empty; name tasks or groups (h6, mmlu, ...)")
        names = expand_tasks(list(self.tasks))  # unknown names fail here, before the model loads
        if self.subset is not None:
            for name in names:
                subset_ids(self.subset, name)  # an unknown subset or a task it does not cover fails here too
        return self


def default_out(model: str) -> Path:
    """Where `dusk eval` writes without --out: runs/eval/<the model's folder or file name>."""
    return Path("runs") / "eval" / Path(os.path.abspath(model)).name.removesuffix(".gguf")


def load_engine(
    model_dir: Path,
    dtype: str,
    batch_size: int,
    device: str = "cpu",
    attention: str = "sdpa",
    allow_pickle: bool = False,
):
    """dusk's engine on the model (its tokenizer is required), on `device` in `dtype`."""
    from dusk.eval.engine import Engine  # imports torch: only when a model is evaluated
    from dusk.models.io import load_model, load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, dtype=dtype, device=device, attention=attention, allow_pickle=allow_pickle)
    return Engine(model, tokenizer, batch_size=batch_size)


def run_tokens(tokenizer, run: TaskRun) -> int:
    """A task's token count, to balance processes: prompts and continuations, plus generation budgets."""
    texts = [r.context + getattr(r, "continuation", "") for item in run.items for r in item.requests]
    budget = sum(getattr(r, "max_new_tokens", 0) for item in run.items for r in item.requests)
    return sum(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]) + budget


def _item_results(engine, items: list[EvalItem]) -> list[list]:
    run_engine_items(engine, items, progress=False)  # one block: the outer bar counts blocks
    return [item.results for item in items]


def score_shared(engine, runs: list[TaskRun], processes: Processes) -> bool:
    """Score this process's share of the items, block by block; on the main process fill every item's results
    (gathered) and the engine's summed stats and return True; elsewhere return False (it holds only its share)."""
    from dusk.eval.requests import EngineStats

    costs = [run_tokens(engine.tokenizer, run) for run in runs]
    placed = share_out(processes, [run.items for run in runs], costs, lambda items: _item_results(engine, items))
    stats = gather_to_main(processes, asdict(engine.stats))
    if placed is None:
        return False
    for run, results in zip(runs, placed, strict=True):
        for item, result in zip(run.items, results, strict=True):
            item.results = result
    engine.stats = EngineStats(**{name: sum(part[name] for part in stats) for name in stats[0]})
    return True


def run(cfg: EvalConfig) -> Path:
    """Evaluate, aggregate and write results.json + samples; return the results.json path. Under a launcher
    (accelerate launch, torchrun) every process scores its share and only the main process writes."""
    from dusk.devices import device_record, resolve_device, resolve_dtype
    from dusk.models.io import load_tokenizer, read_config, resolve_model  # imports torch: not at `dusk --help`

    if cfg.out is None:
        cfg = cfg.model_copy(update={"out": default_out(cfg.model)})
    check_out_dir(cfg.out)
    processes = launched()
    device = resolve_device(rank_device(cfg.device, processes))  # a device this machine lacks fails at once
    dtype = resolve_dtype(cfg.dtype, device)
    model_dir = resolve_model(cfg.model, cfg.allow_pickle)
    read_config(model_dir)  # an unreadable config.json is named here, not deep inside transformers
    tokenizer = load_tokenizer(model_dir)  # a model without a tokenizer fails before anything heavy
    if cfg.apply_chat_template:
        check_chat_template(tokenizer, cfg.model)
    started = time.perf_counter()
    prompts = ChatPrompts(cfg.chat, tokenizer)
    selection = Selection(cfg.limit, cfg.subset)
    runs = prepare_runs(expand_tasks(list(cfg.tasks)), cfg.mode, selection, cfg.max_new_tokens, prompts)
    # after the data: a missing file fails first
    engine = load_engine(model_dir, dtype, cfg.batch_size, device, cfg.attention, cfg.allow_pickle)
    start(processes, device)
    if not score_shared(engine, runs, processes):
        return cfg.out / "results.json"  # not the main process: it writes nothing
    finish_runs(runs, cfg.mode)
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
        **device_record(device, dtype),
        "attention": cfg.attention,
        "batch_size": cfg.batch_size,
        "processes": processes.world,
        "max_new_tokens": cfg.max_new_tokens,
        **cfg.chat.record(),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "engine": asdict(engine.stats) | {"token_efficiency": engine.stats.token_efficiency},
    }
    return write_results(cfg.out, runs, aggregates, settings)
