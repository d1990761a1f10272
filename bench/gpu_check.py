"""The prepared GPU check (issue 14): random-weight Llama models built from configs (no download), dusk's eval engine
on MMLU-like, ARC-like and GSM8K-like requests, fast path vs plain path vs a plain batched transformers forward
(`generate` for GSM8K), in bf16 and fp32. Prints per shape and workload: tokens/s of each, the engine's token
efficiency, the largest log-likelihood difference fast vs plain, and peak GPU memory.

Runs anywhere: on CUDA with the 1B and 7B shapes (`bench/gpu_check.sh`, under 8 minutes on one H200-class card), on
the CPU with the tiny shape (tests/test_gpu_check.py runs it that way so it cannot rot).

    .venv/bin/python bench/gpu_check.py --shapes tiny --scale 1 --json /tmp/gpu_check.json

Tokens/s counts the requested tokens (each request's whole sequence, as a plain evaluator forwards them), so the
three columns divide the same work by each one's time. `--section train|all` appends the training section from
bench/gpu_check_train.py (its `main(argv) -> list[dict]`) when that file exists.
"""

import argparse
import importlib.util
import json
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere in the checkout

from dusk.eval.engine import Engine  # noqa: E402
from dusk.eval.requests import GenerationRequest, LoglikelihoodRequest  # noqa: E402
from dusk.eval.tokenization import encode_context, encode_request  # noqa: E402

SHAPES = {  # Llama shapes: hidden, layers, heads, kv heads, MLP width, vocab
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, vocab_size=0),
    "1b": dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=8192, vocab_size=32000),
    "7b": dict(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
               intermediate_size=14336, vocab_size=32000),
}  # fmt: skip
WORDS = (
    "the of and to in is was for on as with by at from that which this are be an or have had not but were "
    "water light energy cell plant animal force mass heat earth moon sun star rock river city market price number"
).split()
LETTERS = (" A", " B", " C", " D")


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def mmlu_like(rng: random.Random, scale: int) -> list[LoglikelihoodRequest]:
    """2 subjects, each a 5-shot prefix shared by 4*scale questions; 4 one-token choices each."""
    requests = []
    for subject in range(2):
        prefix = f"The following are multiple choice questions (with answers) about subject {subject}.\n\n"
        prefix += "".join(f"{_sentence(rng, 20, 40)}\nA. a\nB. b\nC. c\nD. d\nAnswer:{rng.choice(LETTERS)}\n\n"
                          for _ in range(5))  # fmt: skip
        for _ in range(4 * scale):
            question = f"{_sentence(rng, 10, 30)}\nA. {_sentence(rng, 1, 4)}\nB. no\nC. yes\nD. maybe\nAnswer:"
            requests += [LoglikelihoodRequest(prefix + question, letter) for letter in LETTERS]
    return requests


def arc_like(rng: random.Random, scale: int) -> list[LoglikelihoodRequest]:
    """4*scale questions, each with its own few-shot examples (no long shared prefix); 4 multi-token answers."""
    requests = []
    for _ in range(4 * scale):
        shots = "".join(f"Question: {_sentence(rng, 8, 20)}\nAnswer: {_sentence(rng, 1, 5)}\n\n" for _ in range(8))
        context = shots + f"Question: {_sentence(rng, 8, 20)}\nAnswer:"
        requests += [LoglikelihoodRequest(context, " " + _sentence(rng, 1, 6)) for _ in range(4)]
    return requests


def gsm8k_like(rng: random.Random, scale: int, new_tokens: int) -> list[GenerationRequest]:
    """2*scale problems after a shared 5-shot prefix, greedy for `new_tokens` tokens (no stop: equal work)."""
    prefix = "".join(f"Question: {_sentence(rng, 15, 30)}\nAnswer: {_sentence(rng, 10, 25)}\n\n" for _ in range(5))
    return [GenerationRequest(prefix + f"Question: {_sentence(rng, 10, 25)}\nAnswer:", (), new_tokens)
            for _ in range(2 * scale)]  # fmt: skip


def tiny_tokenizer():
    """dusk's tiny byte-level BPE tokenizer (trained once into the cache; no download)."""
    from dusk.models.io import load_tokenizer
    from dusk.models.tiny import cached_tiny_model

    return load_tokenizer(cached_tiny_model("llama"))


def random_llama(shape: str, vocab: int, dtype: torch.dtype, device: str):
    """A random-weight Llama of the shape, built on the device (weights drawn there, not copied)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    sizes = dict(SHAPES[shape])
    sizes["vocab_size"] = max(sizes["vocab_size"], vocab)
    config = LlamaConfig(**sizes, max_position_embeddings=4096, attn_implementation="sdpa", initializer_range=0.02)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    return model.eval()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, call):
    _sync(device)
    start = time.perf_counter()
    result = call()
    _sync(device)
    return result, time.perf_counter() - start


@torch.no_grad()
def batched_forward(model, tokenizer, requests: list[LoglikelihoodRequest], batch_size: int, max_length: int):
    """The plain evaluator's way: right-padded batches (longest first), one full forward each, float32 log-softmax."""
    sequences = [encode_request(tokenizer, r, max_length) for r in requests]
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i].forwarded))
    device, out = next(model.parameters()).device, [0.0] * len(sequences)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(sequences[i].forwarded) for i in chunk)
        ids = torch.zeros(len(chunk), width, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(chunk):
            ids[row, : len(sequences[i].forwarded)] = torch.tensor(sequences[i].forwarded)
            mask[row, : len(sequences[i].forwarded)] = 1
        logits = model(input_ids=ids, attention_mask=mask).logits
        for row, i in enumerate(chunk):
            seq, end = sequences[i], len(sequences[i].forwarded)
            scores = logits[row, end - seq.n_continuation : end].float().log_softmax(-1)
            out[i] = float(scores.gather(-1, torch.tensor(seq.targets, device=device)[:, None]).sum())
    return out


@torch.no_grad()
def batched_generate(model, tokenizer, requests: list[GenerationRequest], batch_size: int, max_length: int):
    """transformers `generate`, greedy, left-padded batches: the plain way to run GSM8K."""
    device, pad = next(model.parameters()).device, tokenizer.pad_token_id or tokenizer.eos_token_id or 0
    for start in range(0, len(requests), batch_size):
        chunk = requests[start : start + batch_size]
        contexts = [encode_context(tokenizer, r.context, r.max_new_tokens, max_length) for r in chunk]
        width = max(map(len, contexts))
        ids = torch.full((len(chunk), width), pad, dtype=torch.long, device=device)
        mask = torch.zeros_like(ids)
        for row, context in enumerate(contexts):
            ids[row, width - len(context) :] = torch.tensor(context)
            mask[row, width - len(context) :] = 1
        new = chunk[0].max_new_tokens
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                       pad_token_id=pad)  # fmt: skip


def requested_tokens(tokenizer, requests, max_length: int) -> int:
    if isinstance(requests[0], GenerationRequest):
        return sum(len(encode_context(tokenizer, r.context, r.max_new_tokens, max_length)) + r.max_new_tokens
                   for r in requests)  # fmt: skip
    return sum(len(encode_request(tokenizer, r, max_length).forwarded) for r in requests)


def check_workload(model, tokenizer, name: str, requests, batch_size: int, device: str) -> dict:
    """One workload on one model: fast, plain and batched-transformers times, efficiency, largest difference."""
    fast, plain = Engine(model, tokenizer, batch_size=batch_size), Engine(model, tokenizer, fast=False)
    tokens = requested_tokens(tokenizer, requests, fast.max_length)
    generate = isinstance(requests[0], GenerationRequest)
    method = "generate" if generate else "loglikelihood"
    fast_out, fast_s = timed(device, lambda: getattr(fast, method)(requests, progress=False))
    plain_out, plain_s = timed(device, lambda: getattr(plain, method)(requests, progress=False))
    batched = batched_generate if generate else batched_forward
    _, batched_s = timed(device, lambda: batched(model, tokenizer, requests, batch_size, fast.max_length))
    row = {"workload": name, "requests": len(requests), "tokens": tokens,
           "fast_tok_s": tokens / fast_s, "plain_tok_s": tokens / plain_s, "batched_tok_s": tokens / batched_s,
           "token_efficiency": fast.stats.token_efficiency}  # fmt: skip
    if generate:
        row["same_generations"] = sum(a == b for a, b in zip(fast_out, plain_out, strict=True)) / len(requests)
    else:
        row["max_ll_diff"] = max(abs(a.logprob - b.logprob) for a, b in zip(fast_out, plain_out, strict=True))
    return row


def check_shape(shape: str, dtype_name: str, args: argparse.Namespace, tokenizer) -> list[dict]:
    dtype = {"bfloat16": torch.bfloat16, "float32": torch.float32}[dtype_name]
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = random_llama(shape, len(tokenizer), dtype, args.device)
    rng = random.Random(0)
    workloads = {"mmlu-like": mmlu_like(rng, args.scale), "arc-like": arc_like(rng, args.scale),
                 "gsm8k-like": gsm8k_like(rng, args.scale, args.new_tokens)}  # fmt: skip
    rows = []
    for name, requests in workloads.items():
        row = check_workload(model, tokenizer, name, requests, args.batch_size, args.device)
        peak = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None
        rows.append({"shape": shape, "dtype": dtype_name, **row, "peak_gpu_gib": peak})
        print(format_row(rows[-1]), flush=True)
    del model
    return rows


def format_row(row: dict) -> str:
    diff = f"max|dLL| {row['max_ll_diff']:.2e}" if "max_ll_diff" in row else f"same gen {row['same_generations']:.0%}"
    peak = f"{row['peak_gpu_gib']:.1f} GiB" if row["peak_gpu_gib"] is not None else "-"
    speeds = "".join(f"{row[key]:>10.0f}" for key in ("fast_tok_s", "plain_tok_s", "batched_tok_s"))
    name = f"{row['shape']:<6}{row['dtype']:<9}{row['workload']:<11}"
    return f"{name}{speeds}{row['token_efficiency']:>7.2f}  {diff:<20}{peak:>9}"


def eval_section(args: argparse.Namespace) -> list[dict]:
    tokenizer = tiny_tokenizer()
    print(f"eval engine on {args.device} ({torch.cuda.get_device_name(args.device) if args.device != 'cpu' else 'cpu'})"
          f", torch {torch.__version__}, CUDA {torch.version.cuda}")  # fmt: skip
    print(f"{'shape':<6}{'dtype':<9}{'workload':<11}{'fast t/s':>10}{'plain t/s':>10}{'HF t/s':>10}{'eff.':>7}  "
          f"{'fast vs plain':<20}{'peak mem':>9}")  # fmt: skip
    return [row for shape in args.shapes for dtype in args.dtypes for row in check_shape(shape, dtype, args, tokenizer)]


def train_section(args: argparse.Namespace) -> list[dict] | None:
    """The training section: bench/gpu_check_train.py (SFT and DPO steps; 1B shape on CUDA, tiny on the CPU)."""
    path = Path(__file__).with_name("gpu_check_train.py")
    if not path.exists():
        print("train section: bench/gpu_check_train.py is not there yet; skipped")
        return None
    spec = importlib.util.spec_from_file_location("gpu_check_train", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    on_gpu = args.device.startswith("cuda")
    shape = "1b" if on_gpu else "tiny"
    steps = [] if on_gpu else ["--steps", "2", "--warmup", "1", "--seq-len", "64", "--batch-size", "2"]
    print(f"train section (bench/gpu_check_train.py, {shape} shape)", flush=True)
    return module.main(["--shape", shape, "--device", args.device, *steps])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=["eval", "train", "all"], default="all")
    parser.add_argument("--device", default="auto", help="auto = cuda:0 when there is one, else cpu")
    parser.add_argument("--shapes", default=None, help="comma-separated of tiny,1b,7b (default: 1b,7b on CUDA, tiny)")
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--scale", type=int, default=None, help="workload size (default 8 on CUDA, 1 on CPU)")
    parser.add_argument("--new-tokens", type=int, default=None, help="GSM8K-like tokens (default 64 on CUDA, 4)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--json", type=Path, help="also write every row as JSON here")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    args.device = ("cuda:0" if cuda else "cpu") if args.device == "auto" else args.device
    on_gpu = args.device.startswith("cuda")
    args.shapes = (args.shapes or ("1b,7b" if on_gpu else "tiny")).split(",")
    args.dtypes = args.dtypes.split(",")
    args.scale = args.scale or (8 if on_gpu else 1)
    args.new_tokens = args.new_tokens or (64 if on_gpu else 4)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    report: dict = {"device": args.device, "torch": torch.__version__, "cuda": torch.version.cuda}
    if args.section in ("eval", "all"):
        report["eval"] = eval_section(args)
    if args.section in ("train", "all"):
        report["train"] = train_section(args)
    report["seconds"] = time.perf_counter() - started
    print(f"gpu_check done in {report['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
