"""SmolLM2 true positive and timing for `dusk contamination`.

Fine-tunes SmolLM2-135M-Instruct (plain causal-LM loss, AdamW) on a few items of each H6 task, then runs the
test three ways, with SmolLM2 as the reference: the fine-tune on the items it trained on, the fine-tune on
held-out items of the same tasks, and SmolLM2 itself on the trained items. Prints the Table 9 figures of each
run, the time per item, and the projected time of 6 tasks x 20 items (from the last run). Each run's outputs land
in --out/<run>/.

    DUSK_DATA_DIR=../shared/data .venv/bin/python bench/contamination_smollm2.py --per-task 4 --samples 20
"""

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from contamination_fixtures import finetune_on_texts  # noqa: E402

from dusk.contamination.items import DATASETS, select_items, task_items  # noqa: E402
from dusk.contamination.report import TITLES  # noqa: E402
from dusk.contamination.run import ContaminationConfig, run  # noqa: E402
from dusk.models.io import resolve_model  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-task", type=int, default=4, help="trained items per task (as many held out)")
    parser.add_argument("--samples", type=int, default=20, help="continuations per item")
    parser.add_argument("--steps", type=int, default=24, help="fine-tuning steps")
    parser.add_argument("--batch-size", type=int, default=4, help="fine-tuning batch size")
    parser.add_argument("--lr", type=float, default=5e-4, help="fine-tuning learning rate")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument(
        "--samplers", default="reference", help="comma-separated: reference (the paper's test), model, or both"
    )
    parser.add_argument(
        "--control", action="store_true",
        help="also train and test the control: the same fine-tune with the leaked items replaced by Alpaca records",
    )  # fmt: skip
    parser.add_argument("--skip-clean", action="store_true", help="skip the run of SmolLM2 itself (the slowest)")
    parser.add_argument(
        "--mix-count", type=int, default=0,
        help="also train on this many Alpaca-GPT4 records (instruction + response), so the leaked items are a small "
        "share of the fine-tuning data, as in a real leak (0 = train on the benchmark items alone)",
    )  # fmt: skip
    parser.add_argument("--rerun", action="store_true", help="test again even where results.json exists")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-contamination"))
    return parser.parse_args()


def split_items(per_task: int) -> tuple[dict, dict]:
    """Per task: `per_task` items to train on and `per_task` held-out items, from one seeded draw."""
    seen, held = {}, {}
    for task in DATASETS:
        drawn = select_items(task_items(task), 2 * per_task, seed=0)
        seen[task], held[task] = drawn[:per_task], drawn[per_task:]
    return seen, held


GENERAL_CHARS = 600  # about as long as a benchmark item, so a fine-tuning step stays cheap on CPU


def general_texts(count: int) -> list[str]:
    """The first `count` Alpaca-GPT4 records as plain text: the clean part of a diluted, realistic leak."""
    if count <= 0:
        return []
    from dusk.train.data_source import load_records

    records = load_records("alpaca_gpt4", "instruction")[:count]
    return [f"{record['prompt']}\n{record['response']}"[:GENERAL_CHARS] for record in records]


def finetune(base: Path, seen: dict, args: argparse.Namespace, control: bool = False) -> tuple[Path, float]:
    """The contaminated model, or with `control` the same fine-tune with every leaked item replaced by one more
    Alpaca-GPT4 record (same data size, steps and seed: the leak is the only difference). Reused if already trained
    with these settings. Returns the model directory and the seconds training took."""
    mix = f"-mix{args.mix_count}" if args.mix_count else ""
    name = "control" if control else "contaminated"
    out = args.out / f"smollm2-{name}-{args.per_task}x6-{args.steps}x{args.batch_size}-lr{args.lr:g}{mix}"
    if (out / "config.json").is_file():
        return out, 0.0
    start = time.perf_counter()
    leaked = [item.text for items in seen.values() for item in items]
    general = general_texts(args.mix_count + (len(leaked) if control else 0))
    texts = general if control else leaked + general
    finetune_on_texts(base, texts, out, steps=args.steps, lr=args.lr, batch_size=args.batch_size)
    return out, time.perf_counter() - start


def contamination_run(name: str, model: Path, base: Path, items: dict, args: argparse.Namespace, sampler: str) -> dict:
    cfg = ContaminationConfig(
        model=str(model),
        reference=str(base),
        samples=args.samples,
        n=args.per_task,
        sampler=sampler,
        out=args.out / f"{name}-{sampler}-sampled",
    )
    if (cfg.out / "results.json").is_file() and not args.rerun:
        print(f"reusing {cfg.out} (--rerun to test again)", flush=True)
        return json.loads((cfg.out / "results.json").read_text())
    start, cpu_start = time.perf_counter(), time.process_time()
    results = run(cfg, items_by_task=items)
    document = json.loads(results.read_text())
    document["wall_seconds"] = time.perf_counter() - start
    document["cpu_seconds"] = time.process_time() - cpu_start  # with --threads 1: the time on an idle machine
    return document


def report(runs: dict[str, dict]) -> str:
    tasks = list(DATASETS)
    head = "| run | " + " | ".join(TITLES[t] for t in tasks) + " |\n|---|" + "---|" * len(tasks) + "\n"
    lines = [
        "result < 0.1, % (mean score; Min-K 20% Prob model - reference) per task; near 1 / near 0 = suspicious",
        "",
        head.rstrip("\n"),
    ]
    for name, document in runs.items():
        cells = []
        for task in tasks:
            s = document["tasks"][task]
            cells.append(f"{s['result_below_threshold']:.2f} ({s['mean_score']:.2f}; {s['min_k_delta']['20']:+.2f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "seconds per item", head.rstrip("\n")]
    for name, document in runs.items():
        cells = [f"{document['tasks'][t]['seconds_per_item']:.1f}" for t in tasks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    base = resolve_model("smollm2-135m")
    seen, held = split_items(args.per_task)
    contaminated, train_seconds = finetune(base, seen, args)
    mix = f"-mix{args.mix_count}" if args.mix_count else ""
    print(f"fine-tuned on {sum(map(len, seen.values()))} items in {train_seconds:.0f}s -> {contaminated}", flush=True)
    models = {"fine-tune": (contaminated, f"contaminated{mix}")}
    if args.control:
        control, control_seconds = finetune(base, seen, args, control=True)
        print(f"control fine-tune in {control_seconds:.0f}s -> {control}", flush=True)
        models["control fine-tune"] = (control, f"control{mix}")
    if not args.skip_clean:
        models["SmolLM2"] = (base, "clean")
    runs = {}
    samplers = [name.strip() for name in args.samplers.split(",") if name.strip()]
    for sampler in samplers:
        for label, (model, tag) in models.items():
            if model == base and sampler != samplers[0]:
                continue  # SmolLM2 is its own reference: every sampler draws the same samples
            for split, items in (("trained", seen), ("held-out", held)):
                key = f"{label}, {split} items, {sampler}-sampled"
                runs[key] = contamination_run(f"{tag}-{split}", model, base, items, args, sampler)
    print(report(runs))
    per_item = {t: list(runs.values())[-1]["tasks"][t]["seconds_per_item"] for t in DATASETS}
    print(f"\nwall time of 6 tasks x 20 items at --samples {args.samples}: {20 * sum(per_item.values()) / 60:.1f} min")
    for name, document in runs.items():
        if "wall_seconds" not in document:
            continue  # reused from an earlier invocation
        items = sum(task["items"] for task in document["tasks"].values())
        wall, cpu = document["wall_seconds"], document["cpu_seconds"]
        print(f"{name}: {items} items, wall {wall:.0f}s ({wall / items:.1f}s/item), ", end="")
        print(f"process CPU {cpu:.0f}s ({cpu / items:.1f}s/item; 6 tasks x 20 items: {120 * cpu / items / 60:.1f} min)")
    summary = {"settings": vars(args) | {"out": str(args.out)}, "train_seconds": train_seconds, "runs": runs}
    (args.out / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
