"""One config for decontamination: `dusk data decontaminate`'s flags are generated from DecontaminateJob, which is
also the recipe stage's schema, so the same settings reach the same rules either way."""

from pathlib import Path

import pytest

from dusk.cli import build_parser
from dusk.config_flags import config_from_args
from dusk.data.decontam_job import DecontaminateJob
from dusk.data.ngrams import MIN_WORDS
from dusk.errors import DuskError
from dusk.h6 import H6_DATASETS
from dusk.stages.data import DECONTAMINATE
from dusk.stages.kind import StagePaths, validate


def _cli(*argv: str) -> DecontaminateJob:
    return config_from_args(DecontaminateJob, build_parser().parse_args(["data", "decontaminate", *argv]))


def _stage(tmp_path: Path, **raw) -> DecontaminateJob:
    fields = validate(DECONTAMINATE, raw, "stage clean")
    return DECONTAMINATE.prepare(fields, StagePaths(tmp_path / "out", tmp_path / "w", tmp_path / "c"), False)


def test_flags_and_stage_fields_give_the_same_rules(tmp_path: Path) -> None:
    cli = _cli("dolly", "--out", "o.jsonl", "--ngram", "8", "--tasks", "gsm8k,mmlu", "--no-dedup", "--threshold", "0.9")
    stage = _stage(tmp_path, input="dolly", ngram=8, tasks=["gsm8k", "mmlu"], dedup=False, threshold=0.9)
    assert cli.rules() == stage.rules()
    assert (cli.rules().n, cli.rules().tasks, cli.rules().dedup) == (8, ("gsm8k", "mmlu"), False)
    assert stage.out == tmp_path / "out" and stage.force


def test_defaults_come_from_the_config(tmp_path: Path) -> None:
    rules = _cli("dolly", "--out", "o.jsonl").rules()
    assert (rules.n, rules.min_words, rules.tasks, rules.near_dedup) == (13, MIN_WORDS, H6_DATASETS, True)
    assert _cli("dolly", "--out", "o.jsonl", "--tasks", "none").rules().tasks == ()


@pytest.mark.parametrize(
    ("raw", "culprits"),
    [({"n": 8}, ["'n'", "ngram"]), ({"report": "r.json"}, ["report", "beside its data"])],
    ids=["old-n-field", "report-field"],
)
def test_stage_fields_it_does_not_take(tmp_path: Path, raw: dict, culprits: list[str]) -> None:
    with pytest.raises(DuskError) as caught:
        _stage(tmp_path, input="dolly", **raw)
    assert all(culprit in str(caught.value) for culprit in culprits), caught.value
