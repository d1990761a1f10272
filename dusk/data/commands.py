"""CLI for data: `dusk data list`, `dusk data show NAME`, `dusk data mix MIX.yaml`, `dusk data decontaminate INPUT`.

DUSK_DATA_DIR=../shared/data dusk data decontaminate flan_cot --out runs/flan_clean.jsonl --report runs/flan.json
"""

import argparse
import json

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

    from dusk.config_flags import RequiredUsageFormatter, add_config_flags
    from dusk.data.decontam_job import DecontaminateJob
    from dusk.data.mixture import MixRun

    mix = commands.add_parser(
        "mix",
        help="build a mixture JSONL from a YAML list of (dataset, max_examples|weight)",
        formatter_class=RequiredUsageFormatter,
    )
    add_config_flags(mix, MixRun, positional=("mixture",))
    mix.set_defaults(handler=_mix)

    decon = commands.add_parser(
        "decontaminate",
        help="drop benchmark-contaminated and duplicate records",
        formatter_class=RequiredUsageFormatter,
    )
    add_config_flags(decon, DecontaminateJob, positional=("input",))
    decon.set_defaults(handler=_decontaminate)


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
    from dusk.config_flags import config_from_args
    from dusk.data.mixture import MixRun, build, load_mixture, summary, token_counts, write_mixture
    from dusk.data.outputs import check_output_file
    from dusk.data.templates import check_template

    job = config_from_args(MixRun, args)
    mixture = load_mixture(job.mixture)
    check_output_file(job.out, job.force)
    if job.tokenizer:
        check_template(job.template, True)
    tokenizer = _tokenizer(job.tokenizer)
    records, stats = build(mixture)
    tokens = token_counts(records, tokenizer, job.template) if tokenizer is not None else None
    write_mixture(records, job.out)
    print(summary(stats, tokens))
    print(f"wrote {len(records)} records to {job.out}")
    return 0


def _decontaminate(args: argparse.Namespace) -> int:
    from dusk.config_flags import config_from_args
    from dusk.data.decontam import format_report
    from dusk.data.decontam_job import DecontaminateJob, run
    from dusk.data.outputs import check_distinct, check_output_file
    from dusk.data.registry import check_training_source

    job = config_from_args(DecontaminateJob, args)
    check_distinct({"--out": job.out, "--report": job.report})
    check_output_file(job.out, job.force)
    if job.report is not None:
        check_output_file(job.report, job.force, "--report")
    check_training_source(job.input)
    out, report = run(job)
    print(format_report(report))
    print(f"index: {json.dumps(report['index'])}")
    print(f"wrote {report['total']['out']} of {report['total']['in']} records to {out}")
    return 0
