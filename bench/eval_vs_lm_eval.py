"""dusk eval vs lm-evaluation-harness 0.4.13 on the same items: wall time and peak RSS per tool, speed ratio per
task, dusk's token efficiency, and how many items' predictions differ (must be 0).

Each tool runs in its own subprocess (so peak RSS is its own), one after the other, on SmolLM2-135M in fp32:
the first --limit items of ARC-Challenge, HellaSwag, TruthfulQA, Winogrande, of --subjects MMLU subjects, and the
first --gen-limit GSM8K items (greedy, --max-gen-toks). lm-eval reads the same local files through dusk's YAMLs.

    DUSK_DATA_DIR=../shared/data .venv/bin/python bench/eval_vs_lm_eval.py --limit 40

With `--processes N` it compares instead dusk on one process with dusk on N processes (`accelerate launch
--num_processes N -m dusk eval`, gloo on CPU) on the same items (`--limit` items of every task, GSM8K included):
wall time, peak RSS of each process, and it asserts identical predictions and generations and per-choice
log-likelihoods within 1e-5.

    DUSK_DATA_DIR=../shared/data .venv/bin/python bench/eval_vs_lm_eval.py --processes 2 --limit 10

With `--subset tiny` it scores H6 on the subset's items instead (`--limit N`: the seeded N per task, MMLU N over all
its subjects, as `dusk eval --subset tiny --limit N`; lm-eval gets the same doc ids through `samples`) and prints
both tools' headline scores and H6 side by side. `--apply-chat-template`, `--no-fewshot-as-multiturn` and
`--system-instruction TEXT` render the prompts through the model's chat template in both tools.

    DUSK_DATA_DIR=../shared/data .venv/bin/python bench/eval_vs_lm_eval.py --subset tiny --limit 4 \
        --apply-chat-template --max-gen-toks 256
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GROUPS = {
    "arc_challenge": ["arc_challenge"],
    "hellaswag": ["hellaswag"],
    "mmlu": ["mmlu_abstract_algebra", "mmlu_anatomy", "mmlu_astronomy"],
    "truthfulqa_mc2": ["truthfulqa_mc2"],
    "winogrande": ["winogrande"],
    "gsm8k": ["gsm8k"],
}


def _limit(group: str, args: argparse.Namespace) -> int:
    return args.gen_limit if group == "gsm8k" and not args.subset else args.limit


def _groups(args: argparse.Namespace) -> dict[str, list[str]]:
    if args.subset:  # H6: the MMLU subjects the subset's draw reaches
        from dusk.eval.subsets import subset_ids
        from dusk.eval.tasks import expand_tasks

        subjects = [name for name in expand_tasks(["mmlu"]) if subset_ids(args.subset, name, args.limit)]
        return {**GROUPS, "mmlu": subjects}
    return {**GROUPS, "mmlu": GROUPS["mmlu"][: args.subjects]}


def _chat(args: argparse.Namespace):
    from dusk.eval.chat import ChatFormat

    multiturn = args.apply_chat_template if args.fewshot_as_multiturn is None else args.fewshot_as_multiturn
    return ChatFormat(args.apply_chat_template, multiturn, args.system_instruction)


LM_EVAL_METRIC = {"mc2": "acc"}  # lm-eval's truthfulqa_mc2 logs its mc2 score under the name "acc"


def _headline(task: str) -> str:
    from dusk.h6 import HEADLINE_METRIC

    return "acc" if task.startswith("mmlu_") else HEADLINE_METRIC[task]


def worker_dusk(args: argparse.Namespace) -> dict:
    from dusk.eval import harness
    from dusk.eval import run as eval_run
    from dusk.eval.chat import ChatPrompts
    from dusk.models.io import resolve_model

    engine = eval_run.load_engine(resolve_model(args.model), "float32", args.batch_size)
    prompts = ChatPrompts(_chat(args), engine.tokenizer)
    times, predictions, scores = {}, {}, {}
    for group, tasks in _groups(args).items():
        start = time.perf_counter()
        selection = harness.Selection(limit=_limit(group, args), subset=args.subset)
        runs = harness.evaluate(engine, tasks, "harness", selection, args.max_gen_toks, prompts)
        times[group] = time.perf_counter() - start
        for run in runs:
            for item in run.items:
                key = f"{run.task.name}/{item.doc_id}"
                predictions[key] = item.results[0] if run.task.output == "generate" else item.extra["prediction"]
                scores[key] = item.scores[_headline(run.task.name)]
    stats = engine.stats
    return {"times": times, "predictions": predictions, "scores": scores, "token_efficiency": stats.token_efficiency}


def worker_lm_eval(args: argparse.Namespace) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # lm_eval_yaml lives with the parity tests
    from lm_eval_yaml import write_lm_eval_tasks

    from dusk.eval.subsets import subset_ids
    from dusk.models.io import resolve_model

    lm = HFLM(pretrained=str(resolve_model(args.model)), batch_size=args.batch_size, dtype="float32", device="cpu")
    chat = _chat(args)
    times, predictions, scores = {}, {}, {}
    with tempfile.TemporaryDirectory() as yaml_dir:
        names = write_lm_eval_tasks(yaml_dir, [t for tasks in _groups(args).values() for t in tasks])
        manager = TaskManager(include_path=yaml_dir)
        for group, tasks in _groups(args).items():
            start = time.perf_counter()
            chosen = {names[t]: subset_ids(args.subset, t, args.limit) for t in tasks} if args.subset else None
            out = simple_evaluate(
                model=lm,
                tasks=[names[t] for t in tasks],
                task_manager=manager,
                limit=None if args.subset else _limit(group, args),
                samples=chosen,
                log_samples=True,
                gen_kwargs=f"max_gen_toks={args.max_gen_toks}",
                apply_chat_template=chat.apply_chat_template,
                fewshot_as_multiturn=chat.fewshot_as_multiturn,
                system_instruction=chat.system_instruction,
            )
            times[group] = time.perf_counter() - start
            for task in tasks:
                logged = out["samples"][names[task]]
                ids = sorted(chosen[names[task]]) if chosen else []
                # with samples, lm-eval may number the chosen docs 0..n-1 in split order, or keep their own ids
                renumbered = bool(chosen) and {s["doc_id"] for s in logged} != set(ids)
                for sample in logged:
                    if sample.get("filter") not in (None, "none", "strict-match"):
                        continue
                    doc_id = ids[sample["doc_id"]] if renumbered else sample["doc_id"]
                    key = f"{task}/{doc_id}"
                    if task == "gsm8k":
                        predictions[key] = sample["resps"][0][0]
                    else:
                        lls = [float(r[0][0]) for r in sample["resps"]]
                        predictions[key] = lls.index(max(lls))
                    scores[key] = float(sample[LM_EVAL_METRIC.get(_headline(task), _headline(task))])
    return {"times": times, "predictions": predictions, "scores": scores}


def h6_table(dusk: dict, lm: dict) -> list[str]:
    """Each H6 task's headline (MMLU: over all its items) and H6, for both tools, from their per-item scores."""
    from dusk.h6 import H6_TASKS

    lines = [f"{'task':<16}{'n':>4}{'dusk':>9}{'lm-eval':>9}"]
    h6 = {"dusk": [], "lm-eval": []}
    for task in H6_TASKS:
        keys = [k for k in dusk["scores"] if k.split("/")[0] == task or (task == "mmlu" and k.startswith("mmlu_"))]
        ours = sum(dusk["scores"][k] for k in keys) / len(keys)
        theirs = sum(lm["scores"][k] for k in keys) / len(keys)
        h6["dusk"].append(ours)
        h6["lm-eval"].append(theirs)
        lines.append(f"{task:<16}{len(keys):>4}{ours:>9.4f}{theirs:>9.4f}")
    n = len(dusk["scores"])
    lines.append(f"{'h6':<16}{n:>4}{sum(h6['dusk']) / 6:>9.4f}{sum(h6['lm-eval']) / 6:>9.4f}")
    return lines


def _spawn(tool: str, argv: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, *argv, "--worker", tool, "--result", out.name], check=True)
        wall = time.perf_counter() - start
        result = json.loads(Path(out.name).read_text())
    return {**result, "wall": wall}


def worker_cli(args: argparse.Namespace) -> dict:
    """One process of a `dusk eval` run (alone, or one of N under accelerate launch): the CLI, then this process's
    peak RSS, written next to --result as <result>.<rank>."""
    from dusk.cli import main as dusk_main

    tasks = ",".join(t for tasks in _groups(args).values() for t in tasks)
    argv = ["eval", args.model, "--tasks", tasks, "--limit", str(args.limit), "--out", args.out]
    code = dusk_main([*argv, "--max-new-tokens", str(args.max_gen_toks), "--batch-size", str(args.batch_size)])
    rank = os.environ.get("RANK", "0")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(f"{args.result}.{rank}").write_text(json.dumps({"code": code, "peak_rss_mb": rss}))
    return {}


def _samples(out: Path) -> dict[str, list[dict]]:
    return {p.name: [json.loads(line) for line in p.read_text().splitlines()] for p in sorted(out.glob("samples_*"))}


def same_results(one: Path, other: Path) -> tuple[int, float]:
    """Assert the two runs' items, predictions and generations are identical; return (items, largest log-likelihood
    difference)."""
    a, b = _samples(one), _samples(other)
    assert sorted(a) == sorted(b), (sorted(a), sorted(b))
    largest, items = 0.0, 0
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            assert (x["doc_id"], x.get("prediction"), x.get("generation")) == (
                y["doc_id"],
                y.get("prediction"),
                y.get("generation"),
            ), (name, x["doc_id"])
            for p, q in zip(x.get("logprobs", []), y.get("logprobs", []), strict=True):
                largest = max(largest, abs(p - q))
            items += 1
    assert largest < 1e-5, largest
    return items, largest


def _launch(processes: int, argv: list[str], work: Path) -> dict:
    """Run the cli worker on `processes` processes; wall time and every process's peak RSS."""
    out, result = work / f"out-{processes}", work / f"rss-{processes}"
    tail = [__file__, *argv, "--worker", "cli", "--result", str(result), "--out", str(out)]
    if processes == 1:
        command = [sys.executable, *tail]
    else:
        launcher = Path(sys.executable).with_name("accelerate")
        launch = ["--multi_gpu", "--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no"]
        command = [str(launcher), "launch", *launch, "--dynamo_backend", "no", "--main_process_port", "29561", *tail]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    wall = time.perf_counter() - start
    rss = [json.loads(Path(f"{result}.{rank}").read_text())["peak_rss_mb"] for rank in range(processes)]
    engine = json.loads((out / "results.json").read_text())["settings"]["engine"]
    return {"wall": wall, "rss": rss, "out": out, "efficiency": engine["token_efficiency"]}


def compare_processes(args: argparse.Namespace) -> None:
    argv = sys.argv[1:]
    with tempfile.TemporaryDirectory() as work:
        one, many = _launch(1, argv, Path(work)), _launch(args.processes, argv, Path(work))
        items, largest = same_results(one["out"], many["out"])
    print(f"{'processes':<10}{'wall s':>9}{'token eff.':>12}  peak RSS per process (MB)")
    for n, run in ((1, one), (args.processes, many)):
        rss = ", ".join(f"{value:.0f}" for value in run["rss"])
        print(f"{n:<10}{run['wall']:>9.1f}{run['efficiency']:>12.3f}  {rss}")
    print(f"speed-up {one['wall'] / many['wall']:.2f}x; {items} items identical, largest log-likelihood difference "
          f"{largest:.2e}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--limit", type=int, default=40, help="items per task (per MMLU subject)")
    parser.add_argument("--subjects", type=int, default=2, help="MMLU subjects (1-3)")
    parser.add_argument("--gen-limit", type=int, default=10, help="GSM8K items")
    parser.add_argument("--max-gen-toks", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--processes", type=int, default=1, help="compare dusk on N processes with one (no lm-eval)")
    parser.add_argument("--subset", help="score H6 on a named subset (tiny); --limit N: a seeded N of it per task")
    parser.add_argument("--apply-chat-template", action="store_true", help="prompts through the chat template")
    parser.add_argument("--fewshot-as-multiturn", action=argparse.BooleanOptionalAction, help="shots as turns")
    parser.add_argument("--system-instruction", help="a system message before the prompts")
    parser.add_argument("--worker", choices=["dusk", "lm-eval", "cli"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "cli":
        worker_cli(args)
        return
    if args.processes > 1:
        compare_processes(args)
        return
    if args.worker:
        result = worker_dusk(args) if args.worker == "dusk" else worker_lm_eval(args)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        Path(args.result).write_text(json.dumps(result))
        return
    argv = sys.argv[1:]
    dusk, lm = _spawn("dusk", argv), _spawn("lm-eval", argv)
    print(f"{'task':<16}{'dusk s':>9}{'lm-eval s':>11}{'speed-up':>10}")
    for group in dusk["times"]:
        d, m = dusk["times"][group], lm["times"][group]
        print(f"{group:<16}{d:>9.1f}{m:>11.1f}{m / d:>9.2f}x")
    d, m = sum(dusk["times"].values()), sum(lm["times"].values())
    print(f"{'all (eval only)':<16}{d:>9.1f}{m:>11.1f}{m / d:>9.2f}x")
    ratio = lm["wall"] / dusk["wall"]
    print(f"wall incl. load   dusk {dusk['wall']:.1f} s, lm-eval {lm['wall']:.1f} s, ratio {ratio:.2f}x")
    print(f"peak RSS          dusk {dusk['peak_rss_mb']:.0f} MB, lm-eval {lm['peak_rss_mb']:.0f} MB")
    print(f"token efficiency  {dusk['token_efficiency']:.3f}")
    if args.subset:
        print("\n".join(h6_table(dusk, lm)))
    keys = sorted(set(dusk["predictions"]) | set(lm["predictions"]))
    differ = [k for k in keys if dusk["predictions"].get(k) != lm["predictions"].get(k)]
    print(f"items {len(keys)}, differing predictions {len(differ)} {differ[:10]}")


if __name__ == "__main__":
    main()
