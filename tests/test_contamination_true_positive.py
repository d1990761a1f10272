"""True positive: a tiny model fine-tuned on 16 Winogrande items is caught on those items, and only on those.

Set-up (all from the tiny random Llama, plain AdamW): a base model learns English-like text from Winogrande's
train_s split; the *contaminated* model is the base trained further on 16 dev items; the *control* is the base
trained the same way on 16 train sentences. The base is the reference for both. Held-out = 16 other dev items.
"""

import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from contamination_fixtures import finetune_on_texts
from eval_task_fixtures import real_data_dir

from dusk.contamination.items import task_items
from dusk.contamination.run import ContaminationConfig, load_pair, run_task
from dusk.data.benchmarks import load_docs
from dusk.models.tiny import build_tiny_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    data = real_data_dir()
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("DUSK_DATA_DIR", str(data))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread is faster, and much faster on a shared machine
    root = tmp_path_factory.mktemp("contamination-tp")
    pool = [doc["sentence"].replace("_", doc["option" + doc["answer"]]) for doc in load_docs("winogrande", "train_s")]
    items = task_items("winogrande")[:32]
    seen, held = items[:16], items[16:]
    base = finetune_on_texts(
        build_tiny_model(root / "random", seed=0), pool, root / "base", steps=200, lr=3e-3, batch_size=16
    )
    contaminated = finetune_on_texts(base, [item.text for item in seen], root / "cont", steps=40, lr=3e-3, seed=1)
    control = finetune_on_texts(base, pool[:16], root / "control", steps=40, lr=3e-3, seed=1)
    yield {"base": base, "contaminated": contaminated, "control": control, "seen": seen, "held": held}
    torch.set_num_threads(threads)
    monkeypatch.undo()


def _figures(model: Path, reference: Path, items: list, sampler: str = "reference") -> tuple[float, float, float]:
    """(share of items scoring below 0.1, mean score, mean Min-K 20% Prob minus the reference's)."""
    cfg = ContaminationConfig(model=str(model), reference=str(reference), samples=20, n=len(items), sampler=sampler)
    scores = run_task(load_pair(cfg), "winogrande", items, cfg).scores
    assert len(scores) == len(items)
    return (
        statistics.fmean(s.suspicious for s in scores),
        statistics.fmean(s.score for s in scores),
        statistics.fmean(s.min_k["20"] - s.min_k_reference["20"] for s in scores),
    )


def test_contaminated_model_is_flagged_on_its_training_items_only(trained: dict) -> None:
    base = trained["base"]
    cont_seen = _figures(trained["contaminated"], base, trained["seen"])
    cont_held = _figures(trained["contaminated"], base, trained["held"])
    ctrl_seen = _figures(trained["control"], base, trained["seen"])
    ctrl_held = _figures(trained["control"], base, trained["held"])
    # The items it trained on: nearly all suspicious, nearly every sample harder than the real text.
    assert cont_seen[0] >= 0.9 and cont_seen[1] <= 0.1
    # The control model on the same items, and both models on held-out items: not flagged.
    for share, mean, _delta in (ctrl_seen, cont_held, ctrl_held):
        assert share <= 0.35 and mean >= 0.3
    assert cont_seen[0] - ctrl_seen[0] >= 0.6
    assert abs(cont_held[1] - ctrl_held[1]) <= 0.2
    # Min-K% Prob (relative to the reference) separates them too.
    assert cont_seen[2] > max(cont_held[2], ctrl_seen[2], ctrl_held[2]) + 2.0


def test_model_sampled_test_also_flags_the_training_items_only(trained: dict) -> None:
    """Samples drawn from the model under test: its trained items still stand out, held-out ones do not."""
    base = trained["base"]
    cont_seen = _figures(trained["contaminated"], base, trained["seen"], sampler="model")
    cont_held = _figures(trained["contaminated"], base, trained["held"], sampler="model")
    assert cont_seen[0] >= 0.8 and cont_held[0] <= 0.2
    assert cont_held[1] - cont_seen[1] >= 0.6
