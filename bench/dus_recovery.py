"""Issue 16's recovery experiment: which DUS form, given the same training tokens, beats the un-expanded base?

Arms (SmolLM2-135M-Instruct by default): the base; SOLAR's drop m; the stacking `--drop auto` picks for the same
layer count; drop m with seam blending; identity expansion (`--expand every:K`) training only the new layers, and
training all. Every arm continues pretraining on the same book with the same seed, schedule, batch and steps (so
the same tokens), and is scored on a different book: held-out perplexity, with the standard error over held-out
sequences, at step 0 and at every checkpoint. Each arm is resumable: its model, its training (checkpoints every
--eval-every steps, resumed from the latest) and each evaluation are skipped when already on disk, so a killed run
picks up where it was. Results: OUT/results.json, a markdown table on stdout, OUT/dus_recovery.png.

    DUSK_DATA_DIR=../shared/data .venv/bin/python bench/dus_recovery.py --out runs/dus_recovery
    # smoke run (seconds): --model tests' 4-layer tiny Llama, --drop 1 --layers 6 --blend 1 --steps 4 --eval-every 2
"""

import argparse
import json
import math
import time
from pathlib import Path

import torch

from dusk.data.paths import data_root
from dusk.models import upscale
from dusk.models.io import load_model, load_tokenizer, resolve_model
from dusk.train import pretrain
from dusk.train.checkpoint import list_checkpoints
from dusk.train.config import PretrainConfig


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--out", type=Path, default=Path("runs/dus_recovery"))
    parser.add_argument("--drop", type=int, default=8, help="SOLAR's m (30 -> 44 layers for SmolLM2)")
    parser.add_argument("--layers", type=int, default=44, help="layer count for the --drop auto arm")
    parser.add_argument("--blend", type=int, default=4, help="K of the blended arm")
    parser.add_argument("--expand", default="every:2", help="identity expansion of the LLaMA-Pro arms")
    parser.add_argument("--train-book", default="pg1342.txt", help="gutenberg file for continued pretraining")
    parser.add_argument("--heldout-book", default="pg11.txt", help="a different gutenberg file, held out")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--eval-every", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--eval-seqs", type=int, default=16, help="held-out sequences of --seq-len tokens")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", nargs="*", help="run only these arms")
    return parser.parse_args()


def arms(args: argparse.Namespace) -> dict[str, tuple[dict | None, str]]:
    """Arm name -> (upscale options, or None for the base model itself; --trainable of its training)."""
    return {
        "base": (None, "all"),
        f"solar_m{args.drop}": ({"drop": args.drop}, "all"),
        f"auto_{args.layers}": ({"drop": "auto", "layers": args.layers}, "all"),
        f"solar_m{args.drop}_blend{args.blend}": ({"drop": args.drop, "blend": args.blend}, "all"),
        f"expand_{args.expand.replace(':', '')}_new": ({"expand": args.expand}, "new"),
        f"expand_{args.expand.replace(':', '')}_all": ({"expand": args.expand}, "all"),
    }


def book_jsonl(name: str, out: Path) -> Path:
    """A gutenberg book as a one-record JSONL text file."""
    if not out.exists():
        text = (data_root() / "train" / "gutenberg" / name).read_text(encoding="utf-8")
        out.write_text(json.dumps({"text": text}) + "\n")
    return out


def build_arm(args: argparse.Namespace, options: dict | None, arm_dir: Path) -> Path:
    """The arm's starting model (built once; the base arm is the model itself)."""
    if options is None:
        return resolve_model(args.model)
    model_dir = arm_dir / "model"
    if not (model_dir / "config.json").exists():
        upscale.run(upscale.config_for_model(args.model, model_dir, scan_samples=8, **options))
    return model_dir


def train_arm(args: argparse.Namespace, model_dir: Path, trainable: str, arm_dir: Path, data: Path) -> dict:
    """Continued pretraining with checkpoints every --eval-every steps; resumed from the latest checkpoint."""
    cfg = PretrainConfig(
        model=str(model_dir),
        data=str(data),
        out=arm_dir / "trained",
        eval_size=0,
        max_steps=args.steps,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=min(args.steps // 10, args.steps),
        seed=args.seed,
        trainable=trainable,
        save_every=args.eval_every,
        keep_checkpoints=args.steps // args.eval_every + 1,
        progress=False,
    )
    timing = arm_dir / "cpu_seconds.json"
    spent = json.loads(timing.read_text()) if timing.exists() else []
    if not (cfg.out / "config.json").exists():
        if list_checkpoints(cfg.work_dir):
            cfg = cfg.model_copy(update={"resume": "latest"})
        start = time.process_time()
        pretrain.run(cfg)
        spent.append(time.process_time() - start)
        timing.write_text(json.dumps(spent) + "\n")
    log = [json.loads(line) for line in (cfg.work_dir / "log.jsonl").read_text().splitlines()]
    tokens = max((line.get("tokens", 0) for line in log), default=0)
    return {"tokens": tokens, "cpu_seconds": sum(spent), "work_dir": cfg.work_dir}


def heldout_batches(model_dir: Path, path: Path, count: int, seq_len: int) -> torch.Tensor:
    """`count` sequences of `seq_len` tokens from the held-out book (the same ids for every arm: one tokenizer)."""
    ids = load_tokenizer(model_dir)(json.loads(path.read_text())["text"], add_special_tokens=False)["input_ids"]
    stride = max(len(ids) // count, seq_len)
    return torch.tensor([ids[i * stride : i * stride + seq_len] for i in range(count)])


def sequence_losses(lm, batches: torch.Tensor) -> list[float]:
    """Mean next-token NLL of each held-out sequence."""
    losses = []
    with torch.no_grad():
        for row in batches:
            logits = lm(row[None]).logits[0, :-1].float()
            losses.append(torch.nn.functional.cross_entropy(logits, row[1:]).item())
    return losses


def overlay(lm, checkpoint_dir: Path) -> None:
    """Load a checkpoint's trainable tensors into the model (names may carry the trainer's `lm.` prefix)."""
    from safetensors.torch import load_file

    params = dict(lm.named_parameters())
    with torch.no_grad():
        for name, tensor in load_file(checkpoint_dir / "trainable.safetensors").items():
            params[name.removeprefix("lm.")].copy_(tensor)


def evaluate_arm(model_dir: Path, work_dir: Path, batches: torch.Tensor, eval_dir: Path) -> list[dict]:
    """Perplexity and its standard error at step 0 and at every checkpoint (each cached as a JSON file)."""
    eval_dir.mkdir(parents=True, exist_ok=True)
    points = [(0, None)] + [(int(p.name.rsplit("-", 1)[-1]), p) for p in list_checkpoints(work_dir)]
    rows = []
    for step, checkpoint_dir in points:
        cached = eval_dir / f"step-{step:06d}.json"
        if not cached.exists():
            lm = load_model(model_dir)
            if checkpoint_dir is not None:
                overlay(lm, checkpoint_dir)
            losses = sequence_losses(lm, batches)
            mean = sum(losses) / len(losses)
            sd = math.sqrt(sum((x - mean) ** 2 for x in losses) / max(len(losses) - 1, 1))
            se = sd / math.sqrt(len(losses))
            row = {"step": step, "nll": mean, "nll_se": se, "ppl": math.exp(mean), "ppl_se": math.exp(mean) * se}
            row["losses"] = losses  # per held-out sequence, for paired differences between arms
            cached.write_text(json.dumps(row) + "\n")
        rows.append(json.loads(cached.read_text()))
    return rows


def paired_difference(arm: list[float], base: list[float]) -> tuple[float, float]:
    """Mean and standard error of the per-sequence NLL difference arm - base (same held-out sequences)."""
    diffs = [a - b for a, b in zip(arm, base, strict=True)]
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / max(len(diffs) - 1, 1))
    return mean, sd / math.sqrt(len(diffs))


def table(results: dict) -> str:
    """Markdown: perplexity ± s.e. per arm and step, then the last step's paired NLL difference from the base."""
    steps = [r["step"] for r in next(iter(results.values()))["eval"]]
    lines = [
        "| arm | tokens | CPU s | " + " | ".join(f"ppl @ {s}" for s in steps) + " | Δ NLL vs base (last) |",
        "|---" * (len(steps) + 4) + "|",
    ]
    base = results.get("base")
    for arm, result in results.items():
        cells = " | ".join(f"{r['ppl']:.2f} ± {r['ppl_se']:.2f}" for r in result["eval"])
        delta = "-"
        if base and arm != "base":
            mean, se = paired_difference(result["eval"][-1]["losses"], base["eval"][-1]["losses"])
            delta = f"{mean:+.4f} ± {se:.4f}"
        lines.append(f"| {arm} | {result['tokens']} | {result['cpu_seconds']:.0f} | {cells} | {delta} |")
    return "\n".join(lines)


def plot(results: dict, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arm, result in results.items():
        steps = [r["step"] for r in result["eval"]]
        ppl = [r["ppl"] for r in result["eval"]]
        se = [r["ppl_se"] for r in result["eval"]]
        ax.errorbar(steps, ppl, yerr=se, label=arm, capsize=2, marker="o", markersize=3)
    ax.set_xlabel("optimizer step (same tokens for every arm)")
    ax.set_ylabel("held-out perplexity (± s.e. over sequences)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train_data = book_jsonl(args.train_book, args.out / "train.jsonl")
    heldout = book_jsonl(args.heldout_book, args.out / "heldout.jsonl")
    batches = heldout_batches(resolve_model(args.model), heldout, args.eval_seqs, args.seq_len)
    results = {}
    for arm, (options, trainable) in arms(args).items():
        if args.arms and arm not in args.arms:
            continue
        arm_dir = args.out / arm
        arm_dir.mkdir(exist_ok=True)
        model_dir = build_arm(args, options, arm_dir)
        trained = train_arm(args, model_dir, trainable, arm_dir, train_data)
        rows = evaluate_arm(model_dir, trained.pop("work_dir"), batches, arm_dir / "eval")
        results[arm] = {**trained, "trainable": trainable, "eval": rows}
        print(f"{arm}: " + ", ".join(f"step {r['step']} ppl {r['ppl']:.2f}±{r['ppl_se']:.2f}" for r in rows))
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    plot(results, args.out / "dus_recovery.png")


if __name__ == "__main__":
    main()
