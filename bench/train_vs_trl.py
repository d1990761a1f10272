"""Training speed and memory on SmolLM2-135M: dusk SFT vs TRL 1.16 SFTTrainer, dusk DPO vs TRL DPOTrainer.

Same records (real Alpaca-GPT4 and UltraFeedback, Alpaca-style template, only examples that fit --seq-len so
neither tool truncates), same sequence length, batch, steps, lr and schedule. Each trainer runs in its own
process: training tokens/s (prompt and response tokens read, padding excluded, timed from the first to the last
step), and peak RSS of the whole process. dusk DPO's reference log-probs are computed once (cold cache here,
timed separately); TRL keeps its reference model in memory and runs it every step (its default). TRL runs with
its defaults, which include gradient checkpointing: dusk is measured without it (its default) and with it (-gc).
Then quality on the real model (dusk only): held-out response loss before/after --quality-steps SFT steps, and
held-out reward accuracy before/after --quality-steps DPO steps.
Targets: SFT >= 1.0x TRL tokens/s, DPO >= 1.5x, peak RSS <= TRL's.

With --processes N every trainer runs under `accelerate launch` with N processes (gloo on CPU; --batch-size is per
process); --shard fsdp shards dusk (`--shard fsdp`, FSDP2) and TRL (accelerate's FSDP config, version 2, one unit
per decoder layer). Peak RSS is then the largest process's.

    .venv/bin/python bench/train_vs_trl.py [--steps 10] [--seq-len 256] [--batch-size 4] [--quality-steps 50]
    .venv/bin/python bench/train_vs_trl.py --processes 2 --shard fsdp --steps 4 --seq-len 128 --batch-size 2 \
        --quality-steps 0 --eval-size 0 --only dusk-sft trl-sft
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import measure  # noqa: E402

LR = {"sft": 2e-5, "dpo": 5e-6}


def _fits(records: list[dict], tokenizer, seq_len: int, answers: tuple[str, ...]) -> list[dict]:
    """Records whose prompt + longest answer + EOS fit in seq_len tokens (so no tool has to truncate)."""
    kept = []
    for record in records:
        prompt = len(tokenizer(record["prompt"])["input_ids"])
        longest = max(len(tokenizer(record[a], add_special_tokens=False)["input_ids"]) for a in answers)
        if prompt + longest + 1 <= seq_len and prompt < seq_len // 2:
            kept.append(record)
    return kept


def prepare(args: argparse.Namespace, work: Path) -> dict:
    """Write the rendered SFT and DPO records (train and held-out) as JSONL; return the paths."""
    from dusk.models.io import load_tokenizer, resolve_model
    from dusk.train.data_source import load_records

    model_dir = resolve_model("smollm2-135m")
    tokenizer = load_tokenizer(model_dir)
    need = max(args.steps, args.quality_steps) * args.batch_size + args.eval_size
    spec = {"model": str(model_dir), "work": str(work)}
    for kind, name, answers in (
        ("sft", "alpaca_gpt4", ("response",)),
        ("dpo", "ultrafeedback", ("chosen", "rejected")),
    ):
        records = load_records(name, "instruction" if kind == "sft" else "preference", "alpaca", tokenizer)
        fitting = _fits(records, tokenizer, args.seq_len, answers)[:need]
        for split, rows in (("train", fitting[args.eval_size :]), ("eval", fitting[: args.eval_size])):
            path = work / f"{kind}-{split}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
            spec[f"{kind}_{split}"] = str(path)
        print(f"{name}: {len(records)} records, {len(fitting)} used (fit in {args.seq_len} tokens)")
    return spec


def dusk_worker(kind: str, spec: dict, args: argparse.Namespace, variant: str) -> dict:
    """variant '' (speed run), 'gc' (speed run with gradient checkpointing, TRL's default) or 'quality'."""
    from dusk.train import dpo, sft
    from dusk.train.config import DPOConfig, SFTConfig

    quality = variant == "quality"
    steps = args.quality_steps if quality else args.steps
    batch = args.quality_batch_size if quality else args.batch_size
    common = dict(model=spec["model"], data=spec[f"{kind}_train"], out=Path(spec["work"]) / f"dusk-{kind}-{variant}",
                  max_steps=steps, seq_len=args.seq_len, batch_size=batch, lr=LR[kind], template="none",
                  eval_size=0, progress=False, force=True, gradient_checkpointing=variant == "gc",
                  shard=args.shard)  # fmt: skip
    if quality:
        common.update(eval_data=spec[f"{kind}_eval"], eval_size=args.eval_size, eval_every=steps)
    start = time.perf_counter()
    if kind == "sft":
        out = sft.run(SFTConfig(**common))
    else:
        out = dpo.run(DPOConfig(**common, ref_cache=Path(spec["work"]) / f"ref-cache-{variant}"))
    summary = json.loads((out / "dusk_train.json").read_text())
    log = [json.loads(line) for line in (out / "dusk_train_log.jsonl").read_text().splitlines()]
    evals = [line for line in log if line.get("kind") == "eval"]
    total = time.perf_counter() - start
    return {"tokens": summary["tokens"], "train_seconds": summary["seconds"], "total_seconds": total, "evals": evals,
            "final_loss": summary["train_loss"]}  # fmt: skip


class _Counter:
    """Wrap TRL's collator: count the non-padding tokens of every batch it builds."""

    def __init__(self, collator) -> None:
        self.collator, self.tokens = collator, 0

    def __call__(self, features):
        batch = self.collator(features)
        mask = batch.get("attention_mask")
        self.tokens += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        return batch


def trl_worker(kind: str, spec: dict, args: argparse.Namespace) -> dict:
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    data = load_dataset("json", data_files=spec[f"{kind}_train"], split="train")
    common = dict(output_dir=str(Path(spec["work"]) / f"trl-{kind}"), max_steps=args.steps, max_length=args.seq_len,
                  per_device_train_batch_size=args.batch_size, learning_rate=LR[kind], lr_scheduler_type="cosine",
                  logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
                  dataloader_num_workers=0)  # fmt: skip
    if kind == "sft":
        from trl import SFTConfig, SFTTrainer

        data = data.rename_column("response", "completion")
        trainer = SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=data, processing_class=tokenizer)
    else:
        from trl import DPOConfig, DPOTrainer

        trainer = DPOTrainer(model=model, args=DPOConfig(**common), train_dataset=data, processing_class=tokenizer)
    counter = _Counter(trainer.data_collator)
    trainer.data_collator = counter
    times: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, *_a, **_k):
            times["begin"] = time.perf_counter()

        def on_train_end(self, *_a, **_k):
            times["end"] = time.perf_counter()

    trainer.add_callback(Clock())
    result = trainer.train()
    counter.tokens = _sum_over_processes(counter.tokens)
    return {"tokens": counter.tokens, "train_seconds": times["end"] - times["begin"],
            "total_seconds": time.perf_counter() - start, "final_loss": result.training_loss}  # fmt: skip


def _sum_over_processes(count: int) -> int:
    """TRL counts the tokens of its own process's batches: the run's total is the sum over processes."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return count
    import torch

    total = torch.tensor([count])
    dist.all_reduce(total)
    return int(total.item())


FSDP_CONFIG = """compute_environment: LOCAL_MACHINE
distributed_type: FSDP
use_cpu: true
mixed_precision: 'no'
num_machines: 1
num_processes: {processes}
main_process_port: 29571
fsdp_config:
  fsdp_version: 2
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_transformer_layer_cls_to_wrap: LlamaDecoderLayer
  fsdp_state_dict_type: SHARDED_STATE_DICT
  fsdp_cpu_ram_efficient_loading: true
  fsdp_reshard_after_forward: true
"""


def _launcher(name: str, args: argparse.Namespace, work: Path) -> list[str]:
    """How a worker is started: plain python, or accelerate launch with N processes (FSDP config for TRL)."""
    if args.processes == 1:
        return [sys.executable]
    launch = [str(Path(sys.executable).with_name("accelerate")), "launch", "--num_processes", str(args.processes)]
    if name.startswith("trl") and args.shard == "fsdp":
        config = work / "accelerate-fsdp.yaml"
        config.write_text(FSDP_CONFIG.format(processes=args.processes))
        return [*launch, "--config_file", str(config)]
    return [*launch, "--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", "29572"]  # fmt: skip


def run_worker(name: str, spec_path: Path, args: argparse.Namespace) -> dict:
    """Run one trainer in a child process (or N): (result from the child, peak RSS MiB of the largest, wall s)."""
    result_path = spec_path.with_name(f"{name}.json")
    command = [*_launcher(name, args, spec_path.parent), __file__, "--worker", name, "--spec", str(spec_path),
               "--steps", str(args.steps), "--seq-len", str(args.seq_len), "--batch-size", str(args.batch_size),
               "--eval-size", str(args.eval_size), "--quality-steps", str(args.quality_steps),
               "--threads", str(args.threads), "--quality-batch-size", str(args.quality_batch_size),
               "--processes", str(args.processes), "--shard", args.shard]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(args.threads)}
    measured = measure(command, env=env, quiet=not args.verbose)
    if measured.returncode != 0:
        raise SystemExit(f"{name} failed (exit {measured.returncode}); rerun with --verbose")
    result = json.loads(result_path.read_text())
    return {**result, "peak_rss_mib": measured.peak_rss_mib, "wall_seconds": measured.seconds}


def _rate(result: dict) -> float:
    return result["tokens"] / result["train_seconds"]


def report(results: dict[str, dict]) -> None:
    print(f"\n{'run':<12} {'tokens':>8} {'train s':>8} {'tokens/s':>9} {'total s':>8} {'peak RSS MiB':>12}")
    for name, r in results.items():
        if name.endswith("-quality"):
            continue
        print(f"{name:<12} {r['tokens']:>8} {r['train_seconds']:>8.1f} {_rate(r):>9.0f} {r['total_seconds']:>8.1f} "
              f"{r['peak_rss_mib']:>12.0f}")  # fmt: skip
    for kind, target in (("sft", 1.0), ("dpo", 1.5)):
        theirs = results.get(f"trl-{kind}")
        for name in (f"dusk-{kind}", f"dusk-{kind}-gc"):
            ours = results.get(name)
            if ours and theirs:
                speed, rss = _rate(ours) / _rate(theirs), ours["peak_rss_mib"] / theirs["peak_rss_mib"]
                print(f"{name} / trl-{kind}: tokens/s {speed:.2f}x (target >= {target}x), "
                      f"peak RSS {rss:.2f}x (target <= 1.0)")  # fmt: skip
    for kind, metric in (("sft", "eval_loss"), ("dpo", "eval_reward_accuracy")):
        quality = results.get(f"dusk-{kind}-quality")
        if quality:
            before, after = quality["evals"][0], quality["evals"][-1]
            extra = (
                f", held-out DPO loss {before['eval_loss']:.4f} -> {after['eval_loss']:.4f}" if kind == "dpo" else ""
            )
            print(f"{kind} quality: held-out {metric} at step {before['step']}: {before[metric]:.4f}, "
                  f"at step {after['step']}: {after[metric]:.4f}{extra}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps of each speed run")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--eval-size", type=int, default=32, help="held-out examples of the quality runs")
    parser.add_argument("--quality-steps", type=int, default=50, help="steps of the quality runs (0: skip them)")
    parser.add_argument("--quality-batch-size", type=int, default=1, help="batch of the quality runs (CPU time)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (1: best on a shared machine)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these (dusk-sft trl-sft dusk-dpo ...)")
    parser.add_argument("--processes", type=int, default=1, help="processes per trainer (accelerate launch)")
    parser.add_argument("--shard", choices=["none", "fsdp"], default="none", help="fsdp: shard dusk and TRL")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help="show the workers' output")
    args = parser.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        spec = json.loads(args.spec.read_text())
        tool, kind, *variant = args.worker.split("-")
        result = trl_worker(kind, spec, args) if tool == "trl" else dusk_worker(kind, spec, args, "".join(variant))
        if int(os.environ.get("RANK", "0")) == 0:
            args.spec.with_name(f"{args.worker}.json").write_text(json.dumps(result))
        return
    work = Path(tempfile.mkdtemp(prefix="dusk-bench-train-"))
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(prepare(args, work)))
    names = ["dusk-sft", "dusk-sft-gc", "trl-sft", "dusk-dpo", "dusk-dpo-gc", "trl-dpo"]
    if args.quality_steps:
        names += ["dusk-sft-quality", "dusk-dpo-quality"]
    results = {}
    for name in args.only or names:
        print(f"running {name} ...", flush=True)
        results[name] = run_worker(name, spec_path, args)
    report(results)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nresults: {work / 'results.json'}")


if __name__ == "__main__":
    main()
