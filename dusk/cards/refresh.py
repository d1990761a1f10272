"""After a recipe's eval stage scores a model, that model's card is written again with the H6 results in its
model-index, as `dusk card MODEL_DIR --results RESULTS` would: only for a model directory the run itself wrote
(inside RUN_DIR/artifacts) and never over a README.md of the user's own. A base model named by path or hub id, or a
hub cache, lies outside the run and is left alone.

    python -c "from dusk.cards.refresh import refresh_card; print(refresh_card('runs/tiny/artifacts/sft', \
'runs/tiny/artifacts/evals/sft/results.json', 'runs/tiny/artifacts'))"

A card that cannot be refreshed (a parent moved since, say) is logged as a warning: the evaluation it follows has
its scores either way. The card files are not part of a directory's hash (dusk/hashing.py), so a refresh leaves
every cache key as it was.
"""

import logging
from pathlib import Path

from dusk.cards.card import CARD, is_dusk_card, write_card
from dusk.cards.provenance import RECORDS
from dusk.errors import DuskError

log = logging.getLogger(__name__)


def refresh_card(model_dir: Path | str, results: Path, run_artifacts: Path) -> Path | None:
    """Rewrite MODEL_DIR's card with `results` (an eval's results.json) when the directory is a model this run wrote
    (strictly inside `run_artifacts`, with a dusk record) and its README.md, if any, is dusk's. Return the card, or
    None when the directory is left alone or the card could not be made (a warning says why)."""
    reason = skip_reason(Path(model_dir), Path(run_artifacts))
    if reason is not None:
        log.info("model card of %s not refreshed: %s", model_dir, reason)
        return None
    try:
        card = write_card(Path(model_dir), results)
    except (DuskError, OSError) as exc:  # the scores stand without the card; say why it was not written
        log.warning("model card of %s not refreshed after the evaluation: %s", model_dir, exc)
        return None
    log.info("model card %s refreshed with the H6 results of %s", card, results)
    return card


def skip_reason(model_dir: Path, run_artifacts: Path) -> str | None:
    """Why a card refresh leaves MODEL_DIR alone (outside the run, not a dusk model, a user's README), or None."""
    if not model_dir.is_dir():
        return "not a directory (a built-in model or a hub id)"
    root = run_artifacts.resolve()
    resolved = model_dir.resolve()
    if resolved == root or not resolved.is_relative_to(root):
        return f"it lies outside this run's artifacts ({root})"
    if not any((resolved / name).is_file() for name in RECORDS):
        return "no dusk record in it (not a model dusk wrote)"
    if (resolved / CARD).exists() and not is_dusk_card(resolved / CARD):
        return f"its {CARD} is the user's own (no dusk marker line)"
    return None
