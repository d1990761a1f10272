"""Model cards: the README.md dusk writes into an upscale, a merge and an SFT output parses as a Hub card, names the
right parents with the right hashes, and carries a command that rebuilds the same weights; `dusk card` regenerates
it (with H6 results) and never overwrites a README.md of the user's own."""

import hashlib
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from merge_fixtures import merge_models  # noqa: F401
from train_fixtures import alpaca_pairs  # noqa: F401

from dusk.cards.card import MARKER
from dusk.cli import main
from dusk.h6 import H6
from dusk.hashing import sha256_file


def weights_hash(directory: Path) -> str:
    """The parent hash the card promises, computed here from the files (sorted *.safetensors: name, sha256)."""
    digest = hashlib.sha256()
    for file in sorted(Path(directory).rglob("*.safetensors")):
        digest.update(str(file.relative_to(directory)).encode() + sha256_file(file).encode())
    return digest.hexdigest()


def card_parents(card_text: str) -> dict[str, str]:
    """The Parents table of a card: model -> sha256."""
    return dict(re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$", card_text, re.MULTILINE))


def rebuild_words(card_text: str, yaml_file: Path, out: Path) -> list[str]:
    """The card's rebuild command as argv (without `dusk`), its YAML written to `yaml_file`, writing to `out`."""
    section = card_text.split("## Rebuild", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    words = shlex.split(re.search(r"```bash\n(.*?)\n```", section, re.DOTALL).group(1))
    if block:
        yaml_file.write_text(block.group(1))
        words = [str(yaml_file) if word.endswith(".yaml") else word for word in words]
    words[words.index("--out") + 1] = str(out)
    assert words[0] == "dusk"
    return words[1:]


def same_weights(a: Path, b: Path) -> bool:
    files = sorted(p.name for p in a.glob("*.safetensors"))
    return files == sorted(p.name for p in b.glob("*.safetensors")) and all(
        (a / f).read_bytes() == (b / f).read_bytes() for f in files
    )


def test_upscale_card_names_its_parent_inherits_the_license_and_rebuilds(tiny_llama_4: Path, tmp_path: Path) -> None:
    parent = tmp_path / "base"
    shutil.copytree(tiny_llama_4, parent)
    (parent / "README.md").write_text("---\nlicense: mit\ndatasets: [org/pretraining-set]\n---\n# the base\n")
    out = tmp_path / "dus"
    assert main(["upscale", str(parent), "--drop", "1", "--out", str(out)]) == 0
    text = (out / "README.md").read_text()
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == [str(parent)]
    assert (card.data.license, card.data.datasets) == ("mit", ["org/pretraining-set"])  # inherited from the parent
    assert {"dusk", "depth-up-scaling"} <= set(card.data.tags)
    assert MARKER in text
    assert card_parents(text) == {str(parent): weights_hash(parent)}
    again = tmp_path / "again"
    assert main(rebuild_words(text, tmp_path / "slices.yaml", again)) == 0
    assert same_weights(out, again)


def test_merge_card_names_every_input_with_its_hash_and_rebuilds(merge_models: list[Path], tmp_path: Path) -> None:  # noqa: F811
    config = tmp_path / "ties.yaml"
    base, a, b = merge_models
    config.write_text(
        f"merge_method: ties\nbase_model: {base}\nparameters: {{weight: 0.5, density: 0.5}}\n"
        f"models:\n  - model: {a}\n  - model: {b}\n"
    )
    out = tmp_path / "merged"
    assert main(["merge", str(config), "--out", str(out)]) == 0
    text = (out / "README.md").read_text()
    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == [str(base), str(a), str(b)]
    assert "merge" in card.data.tags
    assert card_parents(text) == {str(m): weights_hash(m) for m in merge_models}
    again = tmp_path / "again"
    assert main(rebuild_words(text, tmp_path / "merge.yaml", again)) == 0
    assert same_weights(out, again)


QUICK = ["--max-steps", "3", "--seq-len", "64", "--batch-size", "2", "--eval-size", "4", "--no-progress"]


@pytest.fixture(scope="module")
def sft_out(tiny_llama: Path, alpaca_pairs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A directory written by a real tiny `dusk sft` run, with its card written by write_card."""
    from dusk.cards import write_card

    out = tmp_path_factory.mktemp("sft") / "sft"
    assert main(["sft", "--model", str(tiny_llama), "--data", str(alpaca_pairs), "--out", str(out), *QUICK]) == 0
    assert write_card(out) == out / "README.md"
    return out


def test_sft_card_names_the_model_and_the_data_with_their_hashes(
    sft_out: Path,
    tiny_llama: Path,
    alpaca_pairs: Path,  # noqa: F811
) -> None:
    text = (sft_out / "README.md").read_text()
    card = ModelCard.load(sft_out / "README.md")
    assert card.data.base_model == [str(tiny_llama)]
    assert "sft" in card.data.tags
    assert card_parents(text) == {str(tiny_llama): weights_hash(tiny_llama)}
    assert f"| `{alpaca_pairs}` | `{sha256_file(alpaca_pairs)}` |" in text
    steps = [json.loads(line)["step"] for line in (sft_out / "dusk_train_log.jsonl").read_text().splitlines()]
    assert f"at step {max(steps)} (last)" in text
    words = rebuild_words(text, sft_out.parent / "unused.yaml", sft_out.parent / "again")
    assert words[:3] == ["sft", "--model", str(tiny_llama)] and "--max-steps" in words


def _results(path: Path) -> dict[str, float]:
    """An evaluation's results.json with all six H6 scores (the shape dusk eval writes)."""
    scores = {b.task: 0.25 + i / 20 for i, b in enumerate(H6)}
    tasks = {b.task: {"metrics": {b.metric: {"value": scores[b.task], "stderr": 0.01}}} for b in H6 if b.task != "mmlu"}
    groups = {"mmlu": {"metric": "acc", "value": scores["mmlu"], "stderr": 0.01, "n": 57, "parts": []}}
    path.write_text(json.dumps({"tasks": tasks, "groups": groups, "settings": {"mode": "harness", "limit": 8}}))
    return scores


def test_dusk_card_regenerates_with_results_in_the_model_index(sft_out: Path, tmp_path: Path, capsys) -> None:
    (sft_out / "README.md").unlink()
    scores = _results(tmp_path / "results.json")
    assert main(["card", str(sft_out), "--results", str(tmp_path / "results.json")]) == 0
    card = ModelCard.load(sft_out / "README.md")
    got = {(r.dataset_name, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert got == {(b.title, b.metric): round(100 * scores[b.task], 2) for b in H6}
    assert main(["card", str(sft_out)]) == 0  # a later regeneration keeps the results it was given
    assert len(ModelCard.load(sft_out / "README.md").data.eval_results) == 6


def test_a_users_own_readme_survives(sft_out: Path, capsys) -> None:
    from dusk.cards import write_card

    own = "# my notes on this model\n"
    (sft_out / "README.md").write_text(own)
    try:
        assert write_card(sft_out) is None
        capsys.readouterr()
        assert main(["card", str(sft_out)]) == 2
        assert "never overwrites" in capsys.readouterr().err
        assert (sft_out / "README.md").read_text() == own
    finally:
        (sft_out / "README.md").unlink()
