"""CLI for data: `dusk data list`, `dusk data show NAME`, `dusk data mix MIX.yaml`, `dusk data decontaminate INPUT`.

DUSK_DATA_DIR=../shared/data dusk data decontaminate flan_cot --out runs/flan_clean.jsonl --report runs/flan.json
"""

import argparse
import json
import math
from pathlib import Path

from dusk.errors import DuskError


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="datasets: list, show, mix, decontaminate")
    commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    listing = commands.add_parser("list", help="every named dataset: kind, records, license")
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="a few records of a dataset, rendered with a template")
    show.add_argument("name", help="dataset name or file")
    show.add_argument("-n", type=int, default=3, help="how many records (default 3)")
    show.add_argument("--template", default="alpaca", help="alpaca (### User/### Assistant), stanford_alpaca, chat")
    show.add_argument("--tokenizer", help="model whose tokenizer renders --template chat")
    show.set_defaults(handler=_show)

    mix = commands.add_parser("mix", help="build a mixture JSONL from a YAML list of (dataset, max_examples|weight)")
    mix.add_argument("mixture", type=Path, help="mixture YAML")
    mix.add_argument("--out", type=Path, required=True, help="output JSONL")
    mix.add_argument("--tokenizer", help="model whose tokenizer counts tokens per source")
    mix.add_argument("--template", default="alpaca", help="template used to render records for token counts")
    mix.add_argument("--force", action="store_true", help="replace --out if it exists")
    mix.set_defaults(handler=_mix)

    decon = commands.add_parser("decontaminate", help="drop benchmark-contaminated and duplicate records")
    decon.add_argument("input", help="dataset name or JSON/JSONL file")
    decon.add_argument("--out", type=Path, required=True, help="output JSONL (surviving records, fields unchanged)")
    decon.add_argument("--report", type=Path, help="write the JSON report here")
    decon.add_argument("--engine", choices=["local", "spark"], default="local", help="local (default) or spark")
    decon.add_argument("--spark-master", default="local[2]", help="Spark master URL (default local[2])")
    decon.add_argument("--ngram", type=int, default=13, help="n-gram length in words (default 13)")
    decon.add_argument(
        "--min-words", type=int, help="shortest benchmark item matched whole when shorter than --ngram (default 8)"
    )
    decon.add_argument(
        "--tasks", default=",".join(_h6()), help="comma-separated benchmarks (default: the six; none: no screening)"
    )
    decon.add_argument("--threshold", type=float, default=0.8, help="near-duplicate Jaccard threshold")
    decon.add_argument("--no-task-names", action="store_true", help="skip the Table 8 FLAN task-name filter")
    decon.add_argument("--no-dedup", action="store_true", help="skip exact dedup")
    decon.add_argument("--no-near-dedup", action="store_true", help="skip MinHash near-dedup")
    decon.add_argument("--force", action="store_true", help="replace --out and --report if they exist")
    decon.set_defaults(handler=_decontaminate)


def _h6() -> tuple[str, ...]:
    from dusk.h6 import H6_DATASETS

    return H6_DATASETS


def _list(_args: argparse.Namespace) -> int:
    from dusk.data.paths import data_root
    from dusk.data.registry import DATASETS, local_files, record_count
    from dusk.settings import data_dir

    if data_dir() is not None:
        data_root()  # a DUSK_DATA_DIR that is not a directory is refused before the table starts
    print(f"{'name':<24} {'kind':<12} {'records':>8}  {'license':<18} description")
    for info in DATASETS.values():
        available = data_dir() is not None and bool(local_files(info))
        count = f"{record_count(info):>8}" if available else f"{'(' + str(info.records) + ')':>8}"
        print(f"{info.name:<24} {info.kind:<12} {count}  {info.license:<18} {info.description}")
    if data_dir() is None:
        print("(counts in parentheses are expected counts: set DUSK_DATA_DIR to count the local files)")
    return 0


def _tokenizer(model: str | None):
    if not model:
        return None
    from dusk.models.io import load_tokenizer, resolve_model

    return load_tokenizer(resolve_model(model))


def _show(args: argparse.Namespace) -> int:
    from dusk.data.registry import BENCHMARKS, benchmark_items, check_source, load_records
    from dusk.data.templates import check_template, render, render_preference

    if args.n < 1:
        raise DuskError(f"-n must be at least 1 (how many records to show), got {args.n}")
    if args.name in BENCHMARKS:
        for item in benchmark_items(args.name)[: args.n]:
            print(f"--- {args.name} #{item['doc_id']}\n{item['question']}\n=> {item['answer']}")
        return 0
    check_source(args.name)
    check_template(args.template, bool(args.tokenizer))
    tokenizer = _tokenizer(args.tokenizer)
    for index, record in enumerate(load_records(args.name)[: args.n]):
        print(f"--- {args.name} #{index}")
        if "text" in record:
            text = record["text"]
            print(text if len(text) <= 2000 else text[:2000] + f"... [{len(text)} characters]")
        elif "chosen" in record:
            prompt, chosen, rejected = render_preference(record, args.template, tokenizer)
            print(f"{prompt}\n[chosen]\n{chosen}\n[rejected]\n{rejected}")
        else:
            prompt, response = render(record, args.template, tokenizer)
            print(f"{prompt}{response}")
    return 0


def _mix(args: argparse.Namespace) -> int:
    from dusk.data.mixture import build, load_mixture, summary, token_counts, write_mixture
    from dusk.data.outputs import check_output_file
    from dusk.data.templates import check_template

    mixture = load_mixture(args.mixture)
    check_output_file(args.out, args.force)
    if args.tokenizer:
        check_template(args.template, True)
    tokenizer = _tokenizer(args.tokenizer)
    records, stats = build(mixture)
    tokens = token_counts(records, tokenizer, args.template) if tokenizer is not None else None
    write_mixture(records, args.out)
    print(summary(stats, tokens))
    print(f"wrote {len(records)} records to {args.out}")
    return 0


def _decontaminate(args: argparse.Namespace) -> int:
    from dusk.data.decontam import DecontamConfig, check_tasks, format_report
    from dusk.data.decontam_job import DecontaminateJob, run
    from dusk.data.ngrams import MIN_WORDS
    from dusk.data.outputs import check_distinct, check_output_file
    from dusk.data.registry import check_training_source

    if args.ngram < 1:
        raise DuskError(f"--ngram must be at least 1 (words per n-gram), got {args.ngram}")
    if args.min_words is not None and args.min_words < 1:
        raise DuskError(f"--min-words must be at least 1 (words), got {args.min_words}")
    if not (math.isfinite(args.threshold) and 0 < args.threshold <= 1):
        raise DuskError(f"--threshold must be in (0, 1] (a Jaccard similarity), got {args.threshold}")
    tasks = tuple(task.strip() for task in args.tasks.split(",") if task.strip())
    if tasks == ("none",):
        tasks = ()
    elif not tasks:
        raise DuskError(f"--tasks {args.tasks!r} names no benchmark; give some of {', '.join(_h6())} (or none)")
    check_tasks(tasks)
    check_distinct({"--out": args.out, "--report": args.report})
    check_output_file(args.out, args.force)
    if args.report is not None:
        check_output_file(args.report, args.force, "--report")
    check_training_source(args.input)
    rules = DecontamConfig(
        n=args.ngram,
        min_words=MIN_WORDS if args.min_words is None else args.min_words,
        tasks=tasks,
        task_names=not args.no_task_names,
        dedup=not args.no_dedup,
        near_dedup=not args.no_near_dedup,
        threshold=args.threshold,
    )
    job = DecontaminateJob(args.input, args.out, args.report, args.engine, args.spark_master, rules)
    out, report = run(job)
    print(format_report(report))
    print(f"index: {json.dumps(report['index'])}")
    print(f"wrote {report['total']['out']} of {report['total']['in']} records to {out}")
    return 0
