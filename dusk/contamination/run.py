"""The contamination test of a trained model (SOLAR's Appendix C, after Shi et al. 2023), plus Min-K% Prob.

For each benchmark item (question + correct answer as one text) the REFERENCE model (e.g. the base model the
tested model was trained from) samples continuations of the text's first 40% of words. The item's score is the
fraction of those samples on which MODEL's loss is lower than its loss on the real text. A model that has
trained on the item finds the real text unusually easy, so its score is near 0; an item is *suspicious* when
its score is below 0.1, and a task's result ("result < 0.1, %", the paper's column) is the share of suspicious
items: near 0 = no sign of contamination, near 1 (the public tool says above 0.9) = the model has very likely
trained on that benchmark.

    DUSK_DATA_DIR=../shared/data dusk contamination runs/my-finetune --reference smollm2-135m --tasks h6 --n 20
"""

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from dusk.contamination.config import ContaminationConfig
from dusk.contamination.items import ContaminationItem, expand_task_names, select_items, split_prefix, task_items
from dusk.contamination.min_k import min_k_profile
from dusk.contamination.scoring import sample_continuations, score_rows
from dusk.errors import DuskError
from dusk.run_output import check_out_dir

log = logging.getLogger(__name__)


@dataclass
class ModelPair:
    """The model under test, the reference and their shared tokenizer, loaded once."""

    model: object
    reference: object
    tokenizer: object
    banned_ids: list[int]
    model_dir: Path
    reference_dir: Path


@dataclass(frozen=True)
class ItemScore:
    """One tested item: its score, the losses behind it and its Min-K% Prob under both models."""

    task: str
    doc_id: str
    words: int
    prefix_words: int
    prefix_tokens: int
    continuation_tokens: int
    real_loss: float
    sample_loss_mean: float
    sample_loss_min: float
    score: float
    suspicious: bool
    min_k: dict[str, float]
    min_k_reference: dict[str, float]
    seconds: float


@dataclass
class TaskResult:
    """The items tested for one task, the ones skipped as too short, and how many were asked for and exist."""

    task: str
    requested: int
    available: int
    scores: list[ItemScore] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def check_same_tokenizer(model_tok, reference_tok, model_dir: Path, reference_dir: Path) -> None:
    """Refuse two tokenizers with different vocabularies: samples are reference token ids scored by the model."""
    mine, theirs = model_tok.get_vocab(), reference_tok.get_vocab()
    if mine != theirs:
        differ = len(set(mine.items()) ^ set(theirs.items()))
        raise DuskError(
            f"the model ({model_dir}) and the reference ({reference_dir}) have different tokenizers "
            f"({len(mine)} vs {len(theirs)} tokens, {differ} entries differ); the test scores the reference's "
            "sampled token ids with the model, so use a reference with the model's tokenizer (e.g. its base model)"
        )


def banned_token_ids(tokenizer, vocab_size: int) -> list[int]:
    """Ids never sampled: special tokens (so every sample has the real text's length) and embedding padding rows."""
    return sorted(set(tokenizer.all_special_ids) | set(range(len(tokenizer), vocab_size)))


def load_pair(cfg: ContaminationConfig) -> ModelPair:
    """Resolve and load both models (once if they are the same directory) and check their tokenizers agree."""
    from dusk.models.io import load_model, load_tokenizer, read_config, resolve_model

    model_dir, reference_dir = (
        resolve_model(cfg.model, cfg.allow_pickle),
        resolve_model(cfg.reference, cfg.allow_pickle),
    )
    for directory in (model_dir, reference_dir):
        read_config(directory)  # an unreadable config.json is named here, not deep inside transformers
    tokenizer, reference_tok = load_tokenizer(model_dir), load_tokenizer(reference_dir)
    check_same_tokenizer(tokenizer, reference_tok, model_dir, reference_dir)
    options = {"dtype": cfg.dtype, "device": cfg.device, "allow_pickle": cfg.allow_pickle}
    model = load_model(model_dir, **options)
    same = model_dir.resolve() == reference_dir.resolve()
    reference = model if same else load_model(reference_dir, **options)
    vocab = min(model.get_output_embeddings().weight.shape[0], reference.get_output_embeddings().weight.shape[0])
    return ModelPair(model, reference, tokenizer, banned_token_ids(tokenizer, vocab), model_dir, reference_dir)


def item_seed(seed: int, item: ContaminationItem) -> int:
    """The item's sampling seed: fixed by (seed, task, doc_id), so it does not depend on which items run."""
    digest = hashlib.sha256(f"{seed}:{item.task}:{item.doc_id}".encode()).hexdigest()
    return int(digest[:15], 16)


def score_item(pair: ModelPair, item: ContaminationItem, cfg: ContaminationConfig) -> ItemScore | None:
    """Score one item (None when it is too short for a prefix and a continuation)."""
    split = split_prefix(item.text, cfg.prefix_ratio, cfg.min_words)
    if split is None:
        return None
    prefix_ids = pair.tokenizer(split.prefix)["input_ids"]
    real = pair.tokenizer(split.rest, add_special_tokens=False)["input_ids"]
    if not real or not prefix_ids:
        return None
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(item_seed(cfg.seed, item))
    sampler = pair.reference if cfg.sampler == "reference" else pair.model
    samples = sample_continuations(
        sampler, prefix_ids, len(real), cfg.samples, generator, pair.banned_ids, cfg.top_k, cfg.temperature
    )
    rows = torch.cat([torch.tensor([real]), samples])  # row 0 is the real continuation
    prefix_lp, rows_lp = score_rows(pair.model, prefix_ids, rows)
    losses = -rows_lp.double().mean(dim=1)  # mean token NLL of each continuation (all rows have len(real) tokens)
    score = (losses[1:] < losses[0]).double().mean().item()
    ref_prefix_lp, ref_rows_lp = score_rows(pair.reference, prefix_ids, rows[:1])
    return ItemScore(
        task=item.task,
        doc_id=item.doc_id,
        words=split.words,
        prefix_words=split.prefix_words,
        prefix_tokens=len(prefix_ids),
        continuation_tokens=len(real),
        real_loss=losses[0].item(),
        sample_loss_mean=losses[1:].mean().item(),
        sample_loss_min=losses[1:].min().item(),
        score=score,
        suspicious=score < cfg.threshold,
        min_k=min_k_profile(torch.cat([prefix_lp, rows_lp[0]])),
        min_k_reference=min_k_profile(torch.cat([ref_prefix_lp, ref_rows_lp[0]])),
        seconds=time.perf_counter() - start,
    )


def run_task(pair: ModelPair, task: str, items: list[ContaminationItem], cfg: ContaminationConfig) -> TaskResult:
    """Test `cfg.n` items of one task drawn with `cfg.seed` (all of them, with a warning, if there are fewer)."""
    if cfg.n > len(items):
        log.warning(
            "%s: --n %d is larger than the split (%d items); testing all %d", task, cfg.n, len(items), len(items)
        )
    result = TaskResult(task=task, requested=cfg.n, available=len(items))
    selected = select_items(items, cfg.n, cfg.seed)
    bar = tqdm(selected, desc=f"contamination {task}", unit="item", disable=None)  # None: only on a terminal
    for index, item in enumerate(bar):
        scored = score_item(pair, item, cfg)
        if scored is None:
            result.skipped.append(item.doc_id)
            continue
        result.scores.append(scored)
        flagged = sum(s.suspicious for s in result.scores)
        bar.set_postfix_str(f"suspicious {flagged}/{len(result.scores)}, last score {scored.score:.2f}")
        log.info(
            "%s %d/%d doc %s score %.2f (%.1fs)",
            task,
            index + 1,
            min(cfg.n, len(items)),
            item.doc_id,
            scored.score,
            scored.seconds,
        )
    if result.skipped:
        log.warning(
            "%s: skipped %d item(s) too short for a %.0f%% prefix", task, len(result.skipped), 100 * cfg.prefix_ratio
        )
    return result


def run_tasks_shared(
    pair: ModelPair, items_by_task: dict[str, list[ContaminationItem]], cfg: ContaminationConfig, processes
) -> list[TaskResult] | None:
    """Several processes: each scores its share of every task's drawn items (whole blocks, balanced by text
    length); the main process gathers them into the tasks' results (None elsewhere). Items are independent and
    seeded by (seed, task, doc_id), so the results are those of one process."""
    from dusk.eval.parallel import share_out

    selected = {task: select_items(items, cfg.n, cfg.seed) for task, items in items_by_task.items()}
    units = list(selected.values())
    costs = [sum(len(item.text) for item in unit) or 1 for unit in units]

    def work(items: list[ContaminationItem]) -> list[ItemScore | None]:
        bar = tqdm(items, desc=f"contamination (process {processes.rank})", unit="item", disable=None)
        return [score_item(pair, item, cfg) for item in bar]

    placed = share_out(processes, units, costs, work)
    if placed is None:
        return None
    results = []
    for (task, items), scored in zip(selected.items(), placed, strict=True):
        result = TaskResult(task=task, requested=cfg.n, available=len(items_by_task[task]))
        for item, score in zip(items, scored, strict=True):
            result.scores.append(score) if score is not None else result.skipped.append(item.doc_id)
        results.append(result)
    return results


def run(cfg: ContaminationConfig, items_by_task: dict[str, list[ContaminationItem]] | None = None) -> Path:
    """Run the test on every task of `cfg.tasks`; write results.json, table.md and samples_<task>.jsonl to cfg.out.

    `items_by_task` replaces the benchmark files (tests use it to run on texts they build); by default each task's
    items come from `$DUSK_DATA_DIR`. Under a launcher (accelerate launch, torchrun) the items are shared out over
    the processes and only the main process writes.
    """
    from dusk.contamination.report import write_outputs
    from dusk.devices import resolve_device, resolve_dtype
    from dusk.eval.parallel import launched, rank_device, start

    processes = launched()
    device = resolve_device(rank_device(cfg.device, processes))  # a device this machine lacks fails at once
    cfg = cfg.model_copy(update={"device": device, "dtype": resolve_dtype(cfg.dtype, device)})
    if cfg.out is None:
        cfg = cfg.model_copy(update={"out": Path("runs") / f"contamination-{Path(os.path.abspath(cfg.model)).name}"})
    check_out_dir(cfg.out)
    data_files = items_by_task is None
    if items_by_task is None:  # the data is read before the models load: a missing file fails first
        items_by_task = {task: task_items(task) for task in expand_task_names(list(cfg.tasks))}
    pair = load_pair(cfg)
    if processes.world == 1:
        results = [run_task(pair, task, items, cfg) for task, items in items_by_task.items()]
    else:
        start(processes, device)
        results = run_tasks_shared(pair, items_by_task, cfg, processes)
        if results is None:
            return Path(cfg.out) / "results.json"  # not the main process: it writes nothing
    return write_outputs(cfg, pair, results, data_files=data_files)
