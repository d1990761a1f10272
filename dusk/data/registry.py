"""Named datasets: local files under `$DUSK_DATA_DIR` (the layout of ../shared/data), or the same set on the hub.

A name resolves, in order: an explicit file path; `$DUSK_DATA_DIR/<files>`; the Hugging Face hub id (loaded with
`datasets`, only when the local files are absent and `HF_HUB_OFFLINE` is not set). `load_records` returns
normalized records (see dusk.data.formats); `load_raw` returns the original rows (decontamination keeps them).

    DUSK_DATA_DIR=../shared/data python -c "from dusk.data.registry import load_records as l; print(l('dolly')[0])"
"""

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from dusk.data.formats import (
    CONVERTERS,
    KINDS,
    RecordError,
    convert,
    detect_format,
    kind_of,
    preference_to_instruction,
)
from dusk.data.paths import data_root
from dusk.data.readers import (
    FLAN_COT_COLUMNS,
    SUFFIXES,
    Row,
    check_input_file,
    read_json,
    read_jsonl,
    read_rows,
    read_text,
    read_tsv,
)
from dusk.errors import DuskError
from dusk.h6 import H6_DATASETS
from dusk.settings import data_dir

log = logging.getLogger(__name__)
BENCHMARKS = H6_DATASETS  # their scored items are never training data


@dataclass(frozen=True)
class DatasetInfo:
    """One named dataset: where its files are, how to read and convert them, and what it is."""

    name: str  # registry name (the folder name for training sets)
    kind: str  # text | instruction | preference | benchmark | hub (a hub dataset id, see get_info)
    files: tuple[str, ...]  # glob patterns relative to $DUSK_DATA_DIR, read in sorted order
    format: str  # converter name in dusk.data.formats.CONVERTERS ("" for benchmarks)
    records: int  # record count of the local files (checked by the tests)
    license: str  # the data's license, from SOURCE.md
    description: str  # one line for `dusk data list`
    reader: str = "auto"  # auto (by extension) | flan_tsv | text_file | text_line | text_paragraph
    hub: str | None = None  # "owner/name[:config]@split" of the same set on the Hugging Face hub, if any


def _d(*args, **kwargs) -> DatasetInfo:
    return DatasetInfo(*args, **kwargs)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        _d(
            "alpaca_gpt4",
            "instruction",
            ("train/alpaca_gpt4/alpaca_en_demo.json",),
            "alpaca",
            999,
            "CC BY-NC 4.0",
            "Alpaca-GPT4, LLaMA-Factory's 1k demo sample",
            hub="vicgalle/alpaca-gpt4@train",
        ),
        _d(
            "alpaca",
            "instruction",
            ("train/alpaca/random_9k.json",),
            "alpaca",
            9229,
            "CC BY-NC 4.0",
            "Stanford Alpaca (davinci-003), AlpaGasus random 9k",
            hub="tatsu-lab/alpaca@train",
        ),
        _d(
            "dolly",
            "instruction",
            ("train/dolly/dolly_3k.json",),
            "dolly",
            2996,
            "CC BY-SA 3.0",
            "databricks-dolly-15k, AlpaGasus-filtered 3k",
            hub="databricks/databricks-dolly-15k@train",
        ),
        _d(
            "flan_cot",
            "instruction",
            ("train/flan_cot/*_train.tsv",),
            "flan_cot",
            25970,
            "Apache-2.0",
            "FLAN v2 CoT submix, 6 tasks (OpenOrca substitute)",
            reader="flan_tsv",
        ),
        _d(
            "gsm8k_train",
            "instruction",
            ("gsm8k/train.jsonl",),
            "gsm8k",
            7473,
            "MIT",
            "GSM8K train split (math SFT)",
            hub="openai/gsm8k:main@train",
        ),
        _d(
            "ultrafeedback",
            "preference",
            ("train/ultrafeedback/train_clean.jsonl",),
            "preference",
            1000,
            "MIT",
            "UltraFeedback binarized, 1k train pairs",
            hub="trl-lib/ultrafeedback_binarized@train",
        ),
        _d(
            "hh_rlhf",
            "preference",
            ("train/hh_rlhf/harmless-base/test.jsonl.gz",),
            "hh_rlhf",
            2312,
            "MIT",
            "Anthropic HH-RLHF harmless-base test",
            hub="Anthropic/hh-rlhf:harmless-base@test",
        ),
        _d(
            "hh_rlhf_test_sample",
            "preference",
            ("train/hh_rlhf_test_sample/test_prefs.jsonl",),
            "hh_split",
            1000,
            "MIT",
            "HH-RLHF 1k test pairs, split prompt/chosen/rejected",
        ),
        _d(
            "orca_dpo_pairs",
            "preference",
            ("train/orca_dpo_pairs/validation.jsonl",),
            "openai_preference",
            284,
            "Apache-2.0",
            "Intel orca_dpo_pairs sample (OpenOrca prompts)",
            hub="Intel/orca_dpo_pairs@train",
        ),
        _d(
            "llamafactory_dpo_demo",
            "preference",
            ("train/llamafactory_dpo_demo/dpo_en_demo.json",),
            "llamafactory_preference",
            300,
            "Apache-2.0",
            "LLaMA-Factory DPO demo mix",
        ),
        _d(
            "gutenberg",
            "text",
            ("train/gutenberg/pg*.txt",),
            "text",
            14,
            "public domain",
            "14 Project Gutenberg books, one record per book",
            reader="text_file",
        ),
        _d(
            "tinyshakespeare",
            "text",
            ("train/tinyshakespeare/input.txt",),
            "text",
            7222,
            "public domain",
            "tinyshakespeare, one record per speech (blank-line paragraphs)",
            reader="text_paragraph",
        ),
        _d(
            "llamafactory_text_demo",
            "text",
            ("train/llamafactory_text_demo/wiki_demo.txt", "train/llamafactory_text_demo/c4_demo.jsonl"),
            "text",
            330,
            "CC BY-SA / ODC-BY",
            "Wikipedia (one article per line) + C4 demo documents",
            reader="text_line",
        ),
        _d(
            "arc_challenge",
            "benchmark",
            ("arc_challenge/ARC-Challenge-Test.jsonl",),
            "",
            1172,
            "CC BY-SA 4.0",
            "ARC-Challenge test (scored, 25-shot)",
            hub="allenai/ai2_arc:ARC-Challenge@test",
        ),
        _d(
            "hellaswag",
            "benchmark",
            ("hellaswag/hellaswag_val_full.txt.bz2",),
            "",
            10042,
            "MIT",
            "HellaSwag validation (scored, 10-shot)",
            hub="Rowan/hellaswag@validation",
        ),
        _d(
            "mmlu",
            "benchmark",
            ("mmlu/test/*_test.csv",),
            "",
            14042,
            "MIT",
            "MMLU test, 57 subjects (5-shot)",
            hub="cais/mmlu:all@test",
        ),
        _d(
            "truthfulqa",
            "benchmark",
            ("truthfulqa/mc_task.json",),
            "",
            817,
            "Apache-2.0",
            "TruthfulQA mc2 (scored, 0-shot)",
            hub="truthfulqa/truthful_qa:multiple_choice@validation",
        ),
        _d(
            "winogrande",
            "benchmark",
            ("winogrande/dev.jsonl",),
            "",
            1267,
            "CC-BY",
            "Winogrande dev (scored, 5-shot)",
            hub="allenai/winogrande:winogrande_xl@validation",
        ),
        _d(
            "gsm8k",
            "benchmark",
            ("gsm8k/test.jsonl",),
            "",
            1319,
            "MIT",
            "GSM8K test (scored, 5-shot)",
            hub="openai/gsm8k:main@test",
        ),
    ]
}


def get_info(name: str) -> DatasetInfo:
    """The registry entry for `name` (a hub dataset id gets an entry of its own), or an error listing the names."""
    if name in DATASETS:
        return DATASETS[name]
    if hub_dataset(name) is not None:
        return DatasetInfo(name, "hub", (), "", 0, "", f"hub dataset {name}", hub=name)
    raise DuskError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))} (or give a file path)")


def local_files(info: DatasetInfo) -> list[Path]:
    """The dataset's files under $DUSK_DATA_DIR, or [] when any pattern matches nothing; a hub dataset id's: the
    files of its snapshot in the hub cache (fetched first when online)."""
    if info.kind == "hub":
        return _hub_snapshot_files(info.name)
    root = data_root()
    files: list[Path] = []
    for pattern in info.files:
        matches = sorted(root.glob(pattern))
        if not matches:
            return []
        files.extend(matches)
    return files


def _read_local(info: DatasetInfo, path: Path) -> list[Row]:
    if info.reader == "flan_tsv":  # FLAN's collection calls these tasks cot_<name> (cf. the paper's cot_gsm8k)
        task = "cot_" + path.name.removesuffix("_train.tsv")
        return [Row(row.where, {**row.fields, "_task_name": task}) for row in read_tsv(path, FLAN_COT_COLUMNS)]
    if info.reader.startswith("text_") and path.suffix == ".txt":
        return read_text(path, info.reader.removeprefix("text_"))
    if path.name.endswith(".json"):
        return read_json(path)
    return read_jsonl(path) if ".jsonl" in path.name else read_rows(path)


def _hub_allowed(info: DatasetInfo) -> bool:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    return bool(info.hub) and not offline


def _hub_rows(info: DatasetInfo) -> list[Row]:
    """Rows of the same set from the Hugging Face hub (only when the local files are absent)."""
    if not info.hub:
        raise DuskError(
            f"dataset {info.name!r}: local files {', '.join(info.files)} not found under "
            f"$DUSK_DATA_DIR and it has no hub copy; set DUSK_DATA_DIR to a folder holding them"
        )
    if not _hub_allowed(info):
        raise DuskError(
            f"dataset {info.name!r}: local files {', '.join(info.files)} not found under $DUSK_DATA_DIR "
            f"and the hub is offline (HF_HUB_OFFLINE); set DUSK_DATA_DIR or allow hub access"
        )
    import datasets

    repo, split = info.hub.split("@")
    repo, _, config = repo.partition(":")
    log.info("loading %s from the hub: %s (%s) split %s", info.name, repo, config or "default", split)
    try:
        table = datasets.load_dataset(repo, config or None, split=split)
    except Exception as exc:  # any hub/network failure becomes a user-facing message
        raise DuskError(f"dataset {info.name!r}: local files missing and hub load of {info.hub} failed: {exc}") from exc
    return [Row(f"{info.hub}[{index}]", dict(row)) for index, row in enumerate(table)]


@dataclass(frozen=True)
class HubDataset:
    """A dataset named by Hugging Face id: `org/name[:config][@split]` (split default: train, as training data)."""

    repo: str
    config: str | None
    split: str


_HUB_DATASET = re.compile(r"^([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?::([\w.-]+))?(?:@([\w.\[\]:%+-]+))?$")


def hub_dataset(name_or_path: str | Path, split: str | None = None) -> HubDataset | None:
    """The hub dataset a name means, or None (a registry name, an existing path, or not of the id form); `split`
    (a stated --split) is used when the name gives none."""
    text = str(name_or_path)
    if text in DATASETS or Path(text).exists() or text.endswith(SUFFIXES):
        return None
    match = _HUB_DATASET.match(text)
    return HubDataset(match[1], match[2], match[3] or split or "train") if match else None


def record_kinds() -> list[str]:
    """The names --data-kind takes: dusk's normalized layouts (text, instruction, preference), then the converters."""
    return [*KINDS, *(name for name in CONVERTERS if name not in KINDS)]


def check_stated(data: str, split: str | None, kind: str | None) -> None:
    """A stated --split needs a hub dataset id without its own @split; a stated --data-kind a file or hub id (a
    registry set has its own converter, a mixture its sources')."""
    if kind is not None and kind not in CONVERTERS:
        raise DuskError(f"--data-kind {kind}: unknown record kind; expected one of {', '.join(record_kinds())}")
    mixture = Path(data).suffix in (".yaml", ".yml")
    if split is not None:
        spec = None if mixture else hub_dataset(data)
        if spec is None:
            raise DuskError(
                f"--split {split} with --data {data}: a split is chosen for a hub dataset id (org/name[:config]); "
                "registry sets and files have theirs, a mixture names each source's as org/name@SPLIT"
            )
        if "@" in data:
            raise DuskError(f"--split {split} with --data {data}: the split is stated twice; give one of them")
    if kind is not None and (mixture or data in DATASETS):
        what = "a mixture reads each source by its own kind" if mixture else f"its converter is {DATASETS[data].format}"
        raise DuskError(f"--data-kind {kind} with --data {data}: {what}; it is for files and hub dataset ids")


def _hub_snapshot_files(name: str) -> list[Path]:
    """Every file of a hub dataset's cached snapshot (what a cache key hashes), sorted."""
    from dusk.hub import HubId, resolve_hub_dataset

    spec = hub_dataset(name)
    if spec is None:
        return []
    folder = resolve_hub_dataset(HubId(spec.repo))
    return sorted(path for path in folder.rglob("*") if path.is_file())


def _hub_dataset_rows(spec: HubDataset) -> list[Row]:
    """Rows of a hub dataset's split, read by `datasets` from the data files in the hub cache (dusk.hub)."""
    import datasets

    from dusk.hub import HubId, resolve_hub_dataset

    datasets.disable_progress_bars()  # around a one-line error they would be extra lines
    folder = resolve_hub_dataset(HubId(spec.repo))
    where = f"{spec.repo}{':' + spec.config if spec.config else ''}"
    try:
        table = datasets.load_dataset(str(folder), spec.config, split=spec.split)
    except ValueError as exc:
        reason = str(exc).splitlines()[0].rstrip(".")
        raise DuskError(
            f"{where}@{spec.split}: no split {spec.split!r} to read ({reason}); name one as {where}@SPLIT or --split"
        ) from exc
    return [Row(f"{where}@{spec.split}[{index}]", dict(row)) for index, row in enumerate(table)]


def is_file_input(name_or_path: str | Path) -> bool:
    """True when `name_or_path` means a file (not a registry name): it has an extension or exists."""
    path = Path(name_or_path)
    return str(name_or_path) not in DATASETS and bool(path.suffix or path.exists())


def check_source(name_or_path: str | Path) -> None:
    """Refuse, before any loading, a name that is neither a registry dataset nor an existing file."""
    if is_file_input(name_or_path):
        check_input_file(Path(name_or_path))
    elif hub_dataset(name_or_path) is None:
        get_info(str(name_or_path))


def check_training_source(name_or_path: str | Path) -> None:
    """check_source, and refuse a benchmark: its scored items are never training data."""
    name = str(name_or_path)
    if name in BENCHMARKS:
        raise DuskError(
            f"{name!r} is a benchmark (its items are scored), not training data; "
            + ("use 'gsm8k_train' for GSM8K's train split" if name == "gsm8k" else "pick a training set")
        )
    check_source(name_or_path)


def _nonempty(rows: list[Row], where: str) -> list[Row]:
    if not rows:
        raise DuskError(f"{where}: holds no records (the file is empty); expected at least one record")
    return rows


def load_raw(name_or_path: str | Path, split: str | None = None) -> list[Row]:
    """The original rows of a named dataset or a file, unchanged (what decontamination filters and writes back);
    `split`: a hub dataset id's split when the id names none (training's --split)."""
    if is_file_input(name_or_path):
        return _nonempty(read_rows(Path(name_or_path)), str(name_or_path))
    spec = hub_dataset(name_or_path, split)
    if spec is not None:
        return _nonempty(_hub_dataset_rows(spec), str(name_or_path))
    info = get_info(str(name_or_path))
    files = local_files(info) if data_dir() else []
    if not files:
        if data_dir() is None and not _hub_allowed(info):
            data_root()  # raises the "set DUSK_DATA_DIR" message
        return _hub_rows(info)
    where = f"dataset {info.name!r} ({', '.join(map(str, files))})"
    return _nonempty([row for file in files for row in _read_local(info, file)], where)


def _convert_rows(rows: list[Row], format_name: str | None, skip_invalid: bool) -> tuple[str, list[dict], list[str]]:
    """(kind, records, skipped) where skipped lists "where: why" of records that failed conversion."""
    records, skipped, detected = [], [], format_name
    for row in rows:
        try:
            detected = detected or detect_format(row.fields)
            records.append(convert(detected, row.fields))
        except RecordError as exc:
            if not skip_invalid:
                raise DuskError(f"{row.where}: {exc}") from exc
            skipped.append(f"{row.where}: {exc}")
    return (kind_of(detected) if detected else "text"), records, skipped


def convert_rows(
    rows: list[Row], name: str, skip_invalid: bool | None = None, data_kind: str | None = None
) -> tuple[str, list[dict], list[str]]:
    """Convert raw rows of dataset/file `name`; registry sets skip their few invalid records, files are strict.
    `data_kind`: how to read a file's or hub dataset's rows (training's --data-kind; default: detected)."""
    info = DATASETS.get(name)
    skip = info is not None if skip_invalid is None else skip_invalid
    kind, records, skipped = _convert_rows(rows, info.format if info else data_kind, skip)
    if skipped:
        log.warning("%s: skipped %d invalid record(s), first: %s", name, len(skipped), skipped[0])
    return kind, records, skipped


def load_records(
    name_or_path: str | Path,
    kind: str | None = None,
    skip_invalid: bool | None = None,
    split: str | None = None,
    data_kind: str | None = None,
) -> list[dict]:
    """Normalized records (text / instruction / preference) of a named dataset or a file; `split` and `data_kind` as
    training's --split and --data-kind state them (see load_raw, convert_rows).

    With `kind`, the records must be of that kind; a preference set asked for as `instruction` yields its prompts with
    the chosen answers (SFT on preference data). Records that cannot be converted (a missing field, an empty
    response) raise a DuskError naming file and line; for registry names they are skipped with a warning instead
    (the real sets hold a few such records: alpaca 4, ultrafeedback 2, hh_rlhf 9, hh_rlhf_test_sample 3).
    """
    name = str(name_or_path)
    check_training_source(name)
    found, records, _ = convert_rows(load_raw(name_or_path, split), name, skip_invalid, data_kind)
    if kind is None or kind == found:
        return records
    if kind == "instruction" and found == "preference":
        return [preference_to_instruction(record) for record in records]
    raise DuskError(f"{name}: holds {found} records, not {kind} records")


def benchmark_items(name: str) -> list[dict]:
    """The scored items of a benchmark as `{"doc_id", "question", "answer"}` (from dusk.data.benchmarks)."""
    from dusk.data.decontam import benchmark_items_for

    return [
        {"doc_id": item.doc_id, "question": item.question, "answer": item.answer}
        for item in benchmark_items_for([name])
    ]


def record_count(info: DatasetInfo) -> int:
    """Records in the local files (rows as stored; a benchmark's scored items)."""
    if info.kind == "benchmark":
        return len(benchmark_items(info.name))
    return len(load_raw(info.name))
