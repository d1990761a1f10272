"""Held-out perplexity: how well each model predicts a text it was not trained on, with the standard error over
sequences, and each model's paired difference from the first (same sequences, so the texts' own difficulty cancels).

The text (a dataset of text records or a text file) is cut into `sequences` windows of `seq_len` tokens spread
evenly over it; every model is scored on the same token ids (models with different tokenizers are refused: their
perplexities would not compare). A sequence's score is its mean next-token NLL; perplexity = exp(mean NLL).

    dusk perplexity smollm2-135m runs/solar-mini/artifacts/pretrain --data gutenberg --out runs/ppl
"""

import json
import logging
import math
from pathlib import Path

import torch

from dusk.errors import DuskError
from dusk.measures.config import PerplexityConfig
from dusk.measures.results import Column, MeasureRow, label_of, write_results
from dusk.measures.stats import mean_se, paired

log = logging.getLogger(__name__)
CHARS_PER_TOKEN = 8  # characters read per wanted token when cutting a window (English text: about 4 per token)


def read_text(data: str, exclude: list[str] | tuple[str, ...] = ()) -> str:
    """The held-out text: a dataset's text records (or a file's) joined by blank lines, without the records that
    `exclude` holds (the training text)."""
    from dusk.data.registry import load_records

    excluded = {record["text"] for source in exclude for record in load_records(source, kind="text")}
    records = [record for record in load_records(data, kind="text") if record["text"] not in excluded]
    if not records:
        raise DuskError(f"held-out text {data}: every record is in the excluded (training) data; name other text")
    return "\n\n".join(record["text"] for record in records)


def windows(text: str, tokenizer, count: int, seq_len: int) -> list[list[int]]:
    """`count` windows of `seq_len` token ids, starting at evenly spaced places in the text (each at a word start)."""
    span = seq_len * CHARS_PER_TOKEN
    if len(text) < span + count:
        raise DuskError(
            f"held-out text of {len(text)} characters is too short for {count} sequences of {seq_len} tokens"
        )
    step = (len(text) - span) // max(count - 1, 1)
    out = []
    for index in range(count):
        start = index * step
        if start and not text[start - 1].isspace():  # begin at the next word
            start = next((i for i in range(start, start + 64) if text[i].isspace()), start)
        ids = tokenizer(text[start : start + span], add_special_tokens=False)["input_ids"][:seq_len]
        if len(ids) < seq_len:
            raise DuskError(f"a window of {span} characters gave only {len(ids)} tokens (seq_len {seq_len})")
        out.append(ids)
    return out


def sequence_nlls(model, sequences: torch.Tensor, batch_size: int) -> list[float]:
    """Mean next-token NLL of each sequence (float32 log-softmax)."""
    device = next(model.parameters()).device
    out: list[float] = []
    with torch.no_grad():
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start : start + batch_size].to(device)
            logits = model(input_ids=batch, use_cache=False).logits[:, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")
            out += nll.mean(dim=1).tolist()
    return out


def _check_same_tokens(tokenizer, model_arg: str, text_ids: list[list[int]], text: str, cfg: PerplexityConfig) -> None:
    if windows(text, tokenizer, cfg.sequences, cfg.seq_len) != text_ids:
        raise DuskError(
            f"{model_arg}: its tokenizer cuts the held-out text differently from {cfg.models[0]}'s; perplexities "
            "over different tokens do not compare (measure models of one tokenizer together)"
        )


def score_models(cfg: PerplexityConfig) -> tuple[list[str], list[list[float]], list[list[int]]]:
    """(labels, per-model per-sequence NLLs, the scored token ids)."""
    from dusk.models.io import load_model, load_tokenizer, resolve_model

    text = read_text(cfg.data, cfg.exclude)
    model_dirs = [resolve_model(arg) for arg in cfg.models]
    ids = windows(text, load_tokenizer(model_dirs[0]), cfg.sequences, cfg.seq_len)
    labels = cfg.labels or [label_of(arg) for arg in cfg.models]
    nlls = []
    for label, arg, model_dir in zip(labels, cfg.models, model_dirs, strict=True):
        if model_dir != model_dirs[0]:
            _check_same_tokens(load_tokenizer(model_dir), arg, ids, text, cfg)
        model = load_model(model_dir, dtype="float32", device=cfg.device)
        nlls.append(sequence_nlls(model, torch.tensor(ids), cfg.batch_size))
        del model
        log.info("perplexity of %s: %.3f", label, math.exp(mean_se(nlls[-1]).value))
    return labels, nlls, ids


COLUMNS = [
    Column("ppl", "perplexity", higher_is_better=False, decimals=2),
    Column("nll", "NLL / token", higher_is_better=False, decimals=4),
    Column("nll_diff", "Δ NLL vs first (paired)", higher_is_better=False, decimals=4, paired=True),
]


def rows_of(labels: list[str], nlls: list[list[float]]) -> list[MeasureRow]:
    """Per model: perplexity (± delta-method stderr), mean NLL, and the paired NLL difference from the first."""
    rows = []
    for label, values in zip(labels, nlls, strict=True):
        nll = mean_se(values)
        ppl = math.exp(nll.value)
        scores = {"ppl": {"value": ppl, "stderr": None if nll.stderr is None else ppl * nll.stderr, "n": nll.n},
                  "nll": nll.as_dict()}  # fmt: skip
        if rows:
            scores["nll_diff"] = paired(nlls[0], values).as_dict()
        rows.append(MeasureRow(label, scores, {"nll": values}))
    return rows


def run(cfg: PerplexityConfig) -> Path:
    """Score every model on the held-out text; write results.json into cfg.out; return cfg.out."""
    from dusk.run_output import check_out_dir

    check_out_dir(cfg.out)
    labels, nlls, ids = score_models(cfg)
    settings = {"measure": "perplexity", "data": cfg.data, "tokens_per_sequence": cfg.seq_len,
                "config": json.loads(cfg.model_dump_json())}  # fmt: skip
    title = cfg.title or f"Held-out perplexity on {cfg.data}"
    write_results(cfg.out, title, COLUMNS, rows_of(labels, nlls), settings)
    return cfg.out
