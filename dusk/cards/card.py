"""A Hugging Face Hub model card (README.md) for a model directory dusk wrote, from the directory's own records.

YAML front matter: `base_model` (the parents), `tags` (dusk and the stage's), `datasets` (hub ids of the data, and
those of the parents' cards), `license` (the first parent card's, when it has one), `model-index` (H6 scores, when
an evaluation's results are given). The body says what was done: the stage and its config, parents with hashes,
data with hashes and the decontamination report, the training curve, the merge config or DUS slices, and the
command that rebuilds it.

    python -c "from dusk.cards import write_card; print(write_card('runs/sft'))"

A README.md dusk did not write (it lacks `MARKER`) is the user's own and is never overwritten.
"""

import json
import logging
from pathlib import Path

import yaml

from dusk.atomic import atomic_output_file
from dusk.cards.body import body, h6_scores
from dusk.cards.provenance import Provenance, read_provenance
from dusk.cards.rebuild import rebuild
from dusk.errors import DuskError

log = logging.getLogger(__name__)
CARD = "README.md"
RESULTS_COPY = "dusk_card_results.json"  # the results a card was last given, so a later `dusk card` keeps them
MARKER = "<!-- dusk model card: `dusk card DIR` regenerates it; a README.md without this line is never overwritten -->"
STAGE_TAGS = {
    "upscale": ["depth-up-scaling"],
    "merge": ["merge"],
    "pretrain": ["continued-pretraining"],
    "sft": ["sft"],
    "dpo": ["dpo"],
    "sdpo": ["dpo", "sdpo"],
}


def is_dusk_card(path: Path) -> bool:
    """True when `path` is a README.md dusk wrote (it carries the marker line)."""
    try:
        return MARKER in Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def write_card(model_dir: Path, results: Path | None = None, out_name: str | None = None) -> Path | None:
    """Write MODEL_DIR/README.md from the directory's records (atomically); return it, or None when the directory
    holds a README.md of the user's own (kept as it is). `results`: an evaluation's results.json for model-index
    (kept in MODEL_DIR/dusk_card_results.json for later regenerations). `out_name`: the directory's final name,
    when it is written into a temporary directory first."""
    model_dir = Path(model_dir)
    card = model_dir / CARD
    if card.exists() and not is_dusk_card(card):
        log.warning("%s is not a dusk card (no marker line): kept as it is, no card written", card)
        return None
    prov = read_provenance(model_dir)
    document = _results(model_dir, results)
    text = render_card(prov, document, out_name or str(model_dir))
    if results is not None:  # kept only once the card it feeds could be made
        with atomic_output_file(model_dir / RESULTS_COPY) as tmp:
            tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    with atomic_output_file(card) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return card


def _results(model_dir: Path, results: Path | None) -> dict | None:
    """The results document given now, else the one a previous card was given (MODEL_DIR/dusk_card_results.json)."""
    if results is None:
        copy = model_dir / RESULTS_COPY
        return json.loads(copy.read_text(encoding="utf-8")) if copy.is_file() else None
    try:
        document = json.loads(Path(results).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DuskError(f"--results {results}: cannot read an evaluation's results.json ({exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("tasks"), dict):
        raise DuskError(f"--results {results}: not an evaluation's results.json (no 'tasks' mapping); see dusk eval")
    return document


def front_matter(prov: Provenance, results: dict | None, name: str) -> dict:
    """The card's YAML metadata as a mapping."""
    from huggingface_hub import ModelCardData

    parents = _parent_cards(prov)
    inherited = [name for card in parents for name in _strings(card.get("datasets"))]
    datasets = list(dict.fromkeys([*(source.hub_id for source in prov.data if source.hub_id), *inherited]))
    license_ = next((card["license"] for card in parents if isinstance(card.get("license"), str)), None)
    data = ModelCardData(
        base_model=[parent.name for parent in prov.parents],
        tags=["dusk", *STAGE_TAGS.get(prov.stage, [])],
        datasets=datasets or None,
        license=license_,
        library_name="transformers",
        model_name=(Path(name).name or name) if results else None,
        eval_results=[_eval_result(benchmark, value) for benchmark, value in h6_scores(results)] if results else None,
    )
    if not data.eval_results:
        data.eval_results = data.model_name = None
    return data.to_dict()


def _strings(value: object) -> list[str]:
    """A card's list field (or single string) as strings."""
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [item for item in items if isinstance(item, str)]


def _eval_result(benchmark, value: float):
    from huggingface_hub import EvalResult

    from dusk.data.registry import DATASETS

    hub = DATASETS[benchmark.dataset].hub or benchmark.dataset
    repo, _, split = hub.partition("@")
    repo, _, config = repo.partition(":")
    return EvalResult(
        task_type="text-generation",
        dataset_type=repo,
        dataset_name=benchmark.title,
        dataset_config=config or None,
        dataset_split=split or None,
        metric_type=benchmark.metric,
        metric_value=round(100 * value, 2),
    )


def _parent_cards(prov: Provenance) -> list[dict]:
    """The front matter of each parent's README.md (a Hub card or a dusk card), in parent order."""
    from dusk.models.io import resolve_model

    cards = []
    for parent in prov.parents:
        try:
            cards.append(read_front_matter(resolve_model(parent.name) / CARD))
        except DuskError:
            continue
    return cards


def read_front_matter(path: Path) -> dict:
    """The YAML mapping between a card's opening `---` lines ({} when there is none or it does not parse)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    if not text.startswith("---"):
        return {}
    block = text[3:].split("\n---", 1)[0]
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def render_card(prov: Provenance, results: dict | None, name: str) -> str:
    """The card's text: front matter, marker, then the body."""
    meta = yaml.safe_dump(front_matter(prov, results, name), sort_keys=False, allow_unicode=True)
    return f"---\n{meta}---\n{MARKER}\n\n{body(prov, results, name, rebuild(prov, name))}"
