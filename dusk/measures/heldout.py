"""Held-out measures on instruction and preference data, for any model (base, trained, merged):

- instruction data: the mean NLL of each example's response tokens (prompt masked, EOS included, as SFT trains),
  per named dataset, with the standard error over examples;
- preference data: DPO's implicit reward r = beta x (log p_model(answer) - log p_reference(answer)) of the chosen
  and the rejected answer; reward accuracy (share of pairs with r_chosen > r_rejected) and margin (mean
  r_chosen - r_rejected), with standard errors over pairs. An sDPO model also gets one row per sDPO step, scored
  against that step's own reference (the previous step's model): the stepwise reference hand-off.

Held out = records of the named datasets that are not in `exclude` (give the training data there: a mix stage's
output, or any data file): `examples` records per dataset are drawn with `seed` from those left.

    dusk heldout smollm2-135m runs/sft --data alpaca_gpt4 gsm8k_train --exclude mix.jsonl --out runs/heldout
"""

import json
import logging
import random
from pathlib import Path

import torch

from dusk.errors import DuskError
from dusk.measures.config import HeldoutConfig, RecordKind
from dusk.measures.results import Column, MeasureRow, label_of, write_results
from dusk.measures.stats import mean_se, paired

log = logging.getLogger(__name__)
KEY_FIELDS = {"instruction": ("prompt", "response"), "preference": ("prompt", "chosen", "rejected")}


# the records -------------------------------------------------------------------------------------------------------
def record_kind(records: list[dict], source: str) -> RecordKind:
    """instruction or preference, from the records' fields."""
    first = records[0] if records else {}
    if all(name in first for name in KEY_FIELDS["preference"]):
        return "preference"
    if all(name in first for name in KEY_FIELDS["instruction"]):
        return "instruction"
    raise DuskError(f"{source}: records have fields {', '.join(first) or 'none'}; expected instruction records "
                    "(prompt, response) or preference records (prompt, chosen, rejected)")  # fmt: skip


def _key(record: dict, kind: RecordKind) -> tuple:
    return tuple(record.get(name) for name in KEY_FIELDS[kind])


def heldout_records(cfg: HeldoutConfig) -> tuple[RecordKind, dict[str, list[dict]], dict[str, int]]:
    """(kind, dataset -> drawn records, dataset -> records excluded as training data)."""
    from dusk.data.registry import load_records

    loaded = {source: load_records(source) for source in cfg.data}
    kinds = {source: record_kind(records, source) for source, records in loaded.items()}
    if len(set(kinds.values())) > 1:
        raise DuskError(f"data mixes record kinds ({', '.join(f'{s}: {k}' for s, k in kinds.items())}); "
                        "measure instruction and preference data in separate stages")  # fmt: skip
    kind = next(iter(kinds.values()))
    excluded = {_key(record, kind) for source in cfg.exclude for record in load_records(source)}
    drawn, dropped = {}, {}
    for source, records in loaded.items():
        left = [record for record in records if _key(record, kind) not in excluded]
        dropped[source] = len(records) - len(left)
        if len(left) < 2:
            raise DuskError(f"{source}: {len(left)} record(s) left after excluding the training data; need 2 or more")
        picked = sorted(random.Random(f"{cfg.seed}:{source}").sample(range(len(left)), min(cfg.examples, len(left))))
        drawn[source] = [left[i] for i in picked]
    return kind, drawn, dropped


# instruction data ----------------------------------------------------------------------------------------------------
def response_nlls(model, examples: list[dict], pad_id: int, batch_size: int) -> list[float]:
    """Each example's mean NLL over its response tokens."""
    from dusk.train.batching import pad_collate
    from dusk.train.model import IGNORE, TargetLogProbs

    scorer = TargetLogProbs(model)
    device = next(model.parameters()).device
    out: list[float] = []
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            batch = pad_collate(examples[start : start + batch_size], pad_id)
            targets = batch["targets"].to(device)
            logps = scorer(input_ids=batch["input_ids"].to(device), targets=targets)
            counts = (targets != IGNORE).sum(dim=1).tolist()
            out += [-chunk.mean().item() for chunk in torch.split(logps.float().cpu(), counts)]
    return out


def instruction_examples(source: str, records: list[dict], cfg: HeldoutConfig, tokenizer) -> list[dict]:
    from dusk.data.templates import render
    from dusk.train.sft import tokenize_pairs

    rendered = (
        records
        if cfg.template == "none"
        else [dict(zip(("prompt", "response"), render(r, cfg.template, tokenizer), strict=True)) for r in records]
    )
    examples, dropped = tokenize_pairs(rendered, tokenizer, cfg.seq_len)
    if len(examples) < 2:
        raise DuskError(f"held-out {source}: {dropped} of {len(records)} examples have a prompt of seq_len "
                        f"{cfg.seq_len} tokens or more, leaving {len(examples)}; raise seq_len")  # fmt: skip
    if dropped:
        log.warning("%s: %d held-out example(s) dropped: prompt of %d tokens or more", source, dropped, cfg.seq_len)
    return examples


def require_one_tokenizer(cfg: HeldoutConfig, model_dirs: list[Path], tokenizer) -> None:
    """Refuse models whose tokenizer differs from the first's: their losses would be over different tokens."""
    from dusk.models.io import load_tokenizer

    vocab = tokenizer.get_vocab()
    for arg, model_dir in zip(cfg.models[1:], model_dirs[1:], strict=True):
        if model_dir != model_dirs[0] and load_tokenizer(model_dir).get_vocab() != vocab:
            raise DuskError(
                f"{arg}: its tokenizer is not {cfg.models[0]}'s; held-out losses over different tokens do not "
                "compare (measure models of one tokenizer together)"
            )


def instruction_rows(cfg: HeldoutConfig, drawn: dict[str, list[dict]]) -> tuple[list[Column], list[MeasureRow]]:
    from dusk.models.io import load_model, load_tokenizer, resolve_model
    from dusk.train.stage import pad_id_of

    model_dirs = [resolve_model(arg) for arg in cfg.models]
    tokenizer = load_tokenizer(model_dirs[0])
    require_one_tokenizer(cfg, model_dirs, tokenizer)
    examples = {source: instruction_examples(source, records, cfg, tokenizer) for source, records in drawn.items()}
    losses: list[dict[str, list[float]]] = []
    for model_dir in model_dirs:
        model = load_model(model_dir, dtype="float32", device=cfg.device)
        losses.append({s: response_nlls(model, ex, pad_id_of(tokenizer), cfg.batch_size) for s, ex in examples.items()})
        del model
    columns = []
    for source in drawn:
        columns.append(Column(f"{source}:loss", f"{source} loss", False, 4, group=source))
        columns.append(Column(f"{source}:diff", f"{source} Δ vs first (paired)", False, 4, paired=True, group=source))
    labels = cfg.labels or [label_of(arg) for arg in cfg.models]
    rows = []
    for label, values in zip(labels, losses, strict=True):
        scores = {f"{s}:loss": mean_se(v).as_dict() for s, v in values.items()}
        if rows:
            scores |= {f"{s}:diff": paired(losses[0][s], v).as_dict() for s, v in values.items()}
        rows.append(MeasureRow(label, scores, {f"{s}:loss": v for s, v in values.items()}))
    return columns, rows


# preference data -----------------------------------------------------------------------------------------------------
def pair_logps(model, pairs: list[dict], pad_id: int, batch_size: int) -> torch.Tensor:
    """[N, 2] summed log-probs of the chosen and the rejected answer (as DPO scores them)."""
    from dusk.train.dpo import collate, policy_logps
    from dusk.train.loop import on_device
    from dusk.train.model import TargetLogProbs

    scorer = TargetLogProbs(model)
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            logps = policy_logps(scorer, on_device(collate(chunk, pad_id), device)).float().cpu()
            out.append(torch.stack([logps[: len(chunk)], logps[len(chunk) :]], dim=1))
    return torch.cat(out)


def sdpo_steps(model_dir: Path) -> list[Path]:
    """An sDPO output's step models in order (`<sdpo>/step-K/` beside its `final/`), else none."""
    if model_dir.name != "final":
        return []
    steps = [p for p in model_dir.parent.glob("step-*") if (p / "config.json").is_file()]
    return sorted(steps, key=lambda p: int(p.name.split("-")[1]))


def reward_scores(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> tuple[dict, list[float], list[float]]:
    """Reward accuracy and margin (each with its stderr over pairs), and their per-pair values."""
    rewards = beta * (policy - reference)  # [N, 2]
    margins = (rewards[:, 0] - rewards[:, 1]).tolist()
    wins = [1.0 if m > 0 else 0.0 for m in margins]
    return {"accuracy": mean_se(wins).as_dict(), "margin": mean_se(margins).as_dict()}, wins, margins


def preference_rows(cfg: HeldoutConfig, drawn: dict[str, list[dict]]) -> tuple[list[Column], list[MeasureRow]]:
    from dusk.data.templates import render_preference
    from dusk.models.io import load_model, load_tokenizer, resolve_model
    from dusk.train.dpo import tokenize_preferences
    from dusk.train.stage import pad_id_of

    model_dirs = [resolve_model(arg) for arg in cfg.models]
    reference_dir = resolve_model(cfg.reference) if cfg.reference else model_dirs[0]
    tokenizer = load_tokenizer(model_dirs[0])
    require_one_tokenizer(cfg, model_dirs, tokenizer)
    pad_id = pad_id_of(tokenizer)
    pairs = {}
    for source, records in drawn.items():
        rendered = (
            records
            if cfg.template == "none"
            else [
                dict(zip(("prompt", "chosen", "rejected"), render_preference(r, cfg.template, tokenizer), strict=True))
                for r in records
            ]
        )
        pairs[source] = tokenize_preferences(rendered, tokenizer, cfg.seq_len)
    cache: dict[Path, dict[str, torch.Tensor]] = {}

    def logps(model_dir: Path) -> dict[str, torch.Tensor]:
        steps = sdpo_steps(model_dir)
        model_dir = steps[-1] if steps else model_dir  # an sDPO `final` is its last step's model: score it once
        if model_dir not in cache:
            model = load_model(model_dir, dtype="float32", device=cfg.device)
            cache[model_dir] = {s: pair_logps(model, p, pad_id, cfg.batch_size) for s, p in pairs.items()}
            del model
        return cache[model_dir]

    labels = cfg.labels or [label_of(arg) for arg in cfg.models]
    reference_label = label_of(cfg.reference) if cfg.reference else labels[0]
    entries = []  # (label, model dir, its reference dir, note)
    for label, model_dir in zip(labels, model_dirs, strict=True):
        entries.append((label, model_dir, reference_dir, f"vs {reference_label}"))
        previous, previous_label = reference_dir, reference_label
        for step in sdpo_steps(model_dir):
            step_label = f"{label} {step.name}"
            entries.append((step_label, step, previous, f"vs {previous_label}, its step's reference"))
            previous, previous_label = step, step_label
    columns = []
    for source in drawn:
        columns.append(Column(f"{source}:accuracy", f"{source} reward accuracy", True, 3, group=source))
        columns.append(Column(f"{source}:margin", f"{source} reward margin", True, 4, group=source))
        columns.append(Column(f"{source}:diff", f"{source} margin Δ vs first (paired)", True, 4, paired=True,
                              group=source))  # fmt: skip
    rows, first_margins = [], {}
    for label, model_dir, ref_dir, note in entries:
        if model_dir == ref_dir:  # the reference itself: every reward is 0 by definition
            rows.append(MeasureRow(label, {}, {}, "the reference"))
            continue
        scores, items = {}, {}
        for source in drawn:
            found, wins, margins = reward_scores(logps(model_dir)[source], logps(ref_dir)[source], cfg.beta)
            scores[f"{source}:accuracy"], scores[f"{source}:margin"] = found["accuracy"], found["margin"]
            if source in first_margins and ref_dir == reference_dir:  # paired with the first scored row
                scores[f"{source}:diff"] = paired(first_margins[source], margins).as_dict()
            if ref_dir == reference_dir:
                first_margins.setdefault(source, margins)
            items |= {f"{source}:accuracy": wins, f"{source}:margin": margins}
        rows.append(MeasureRow(label, scores, items, note))
    return columns, rows


def run(cfg: HeldoutConfig) -> Path:
    """Score every model on the held-out records; write results.json into cfg.out; return cfg.out."""
    from dusk.run_output import check_out_dir

    check_out_dir(cfg.out)
    kind, drawn, dropped = heldout_records(cfg)
    columns, rows = (preference_rows if kind == "preference" else instruction_rows)(cfg, drawn)
    settings = {"measure": f"heldout_{kind}", "records": {s: len(r) for s, r in drawn.items()},
                "excluded_as_training_data": dropped, "config": json.loads(cfg.model_dump_json())}  # fmt: skip
    title = cfg.title or f"Held-out {'reward accuracy and margin' if kind == 'preference' else 'loss'}"
    write_results(cfg.out, title, columns, rows, settings)
    return cfg.out
