"""Merge speed and memory: `dusk merge` vs mergekit 0.1.5 (`mergekit-yaml`) on SmolLM2-135M-sized models.

The inputs are SmolLM2-135M-Instruct (the base) and two perturbed copies (each tensor plus 5% of its standard
deviation of seeded Gaussian noise, standing in for two fine-tunes), written to a temporary directory. For each
method (METHOD_PARAMS: base + the two copies for base-taking methods, e.g. TIES is three models), each tool runs
the same YAML in its own process (wall time and peak RSS from os.wait4), then the outputs are compared tensor by
tensor. Targets: time <= 1.0x mergekit's, peak RSS <= 0.5x, bit-equal outputs for deterministic methods.

    .venv/bin/python bench/merge_vs_mergekit.py [--methods linear,ties | all] [--dtype float16] [--repeats 1]
        [--mergekit-threads 1]

Each row also prints the machine's 1-minute load average before the method (the bench machine may be shared);
a method whose tool fails is reported and the bench goes on. Random methods are marked * (different draws).
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from measure import Measurement, measure  # noqa: E402

from dusk.models.io import copy_side_files, resolve_model  # noqa: E402
from dusk.models.safetensors_io import ModelTensors, write_sharded  # noqa: E402

BIN = Path(sys.executable).parent


def perturbed_copy(base: Path, out: Path, seed: int, scale: float = 0.05) -> Path:
    """Write base + scale * std(tensor) * N(0, 1) (seeded) for every tensor, streaming one tensor at a time."""
    out.mkdir(parents=True)
    source = ModelTensors(base)
    generator = torch.Generator().manual_seed(seed)

    def noisy(spec):
        tensor = source.read(spec.name)
        return tensor + scale * tensor.std() * torch.randn(tensor.shape, generator=generator, dtype=tensor.dtype)

    write_sharded(out, [source.spec(name) for name in source.names()], noisy)
    shutil.copyfile(base / "config.json", out / "config.json")
    copy_side_files(base, out)
    return out


# Each method's parameters on the bench's models (a = the base, b and c = the two perturbed copies); {w} stands
# for the per-model parameters of two-model configs. Three-model TIES is mergekit's examples/ties.yml shape.
METHOD_PARAMS = {
    "linear": ("", "{weight: 0.6}", "{weight: 0.4}", False),
    "task_arithmetic": ("", "{weight: 0.6}", "{weight: 0.4}", True),
    "ties": ("", "{weight: 0.6, density: 0.5}", "{weight: 0.4, density: 0.7}", True),
    "dare_ties": ("", "{weight: 0.6, density: 0.5}", "{weight: 0.4, density: 0.7}", True),
    "dare_linear": ("", "{weight: 0.6, density: 0.5}", "{weight: 0.4, density: 0.7}", True),
    "breadcrumbs": ("", "{weight: 0.6, density: 0.8}", "{weight: 0.4, density: 0.8}", True),
    "breadcrumbs_ties": ("", "{weight: 0.6, density: 0.8}", "{weight: 0.4, density: 0.8}", True),
    "della": ("", "{weight: 0.6, density: 0.6}", "{weight: 0.4, density: 0.6}", True),
    "della_linear": ("", "{weight: 0.6, density: 0.6}", "{weight: 0.4, density: 0.6}", True),
    "slerp": ("{t: 0.4}", "", "", "first"),
    "nuslerp": ("", "{weight: 0.6}", "{weight: 0.4}", True),
    "multislerp": ("", "{weight: 0.6}", "{weight: 0.4}", True),
    "karcher": ("", "", "", False),
    "model_stock": ("", "", "", True),
    "sce": ("{select_topk: 0.5}", "", "", True),
    "nearswap": ("{t: 0.001}", "", "", "first"),
    "arcee_fusion": ("", "", "", "first"),
    "ram": ("", "", "", True),
    "ramplus_tl": ("", "", "", True),
    "passthrough": ("", "", "", None),
}


# Methods that draw random numbers (dusk seeds its own generator, mergekit uses torch's global one): their outputs
# differ from mergekit's by design; arcee_fusion samples quartiles only for tensors over 1M entries.
RANDOM = {"dare_ties", "dare_linear", "della", "della_linear", "arcee_fusion"}


def config_text(method: str, dtype: str, base: Path, first: Path, second: Path) -> str:
    """The bench's config of `method`: base + two copies (a base-taking method), the two copies, or one model."""
    shared, params_b, params_c, uses_base = METHOD_PARAMS[method]
    text = f"merge_method: {method}\ndtype: {dtype}\n" + (f"parameters: {shared}\n" if shared else "")
    if uses_base is None:
        return text + f"models:\n  - model: {base}\n"
    if uses_base == "first":
        return text + f"base_model: {first}\nmodels:\n  - model: {first}\n  - model: {second}\n"
    text += f"base_model: {base}\n" if uses_base else ""
    return (
        text
        + "models:\n"
        + "".join(
            f"  - model: {model}\n" + (f"    parameters: {params}\n" if params else "")
            for model, params in ((first, params_b), (second, params_c))
        )
    )


def dusk_command(config: Path, out: Path) -> list[str]:
    return [str(BIN / "dusk"), "merge", str(config), "--out", str(out)]


def max_abs_diff(ours: Path, theirs: Path) -> tuple[int, float]:
    """(tensors compared, max abs difference); tensor names and shapes must agree."""
    a, b = ModelTensors(ours), ModelTensors(theirs)
    if sorted(a.names()) != sorted(b.names()):
        raise SystemExit(f"outputs differ in tensor names: {sorted(set(a.names()) ^ set(b.names()))[:5]}")
    worst = 0.0
    for name in a.names():
        x, y = a.read(name), b.read(name)
        y = y.to(x.dtype)  # mergekit writes some methods' float32-promoted results as float32
        worst = max(worst, float("inf") if x.shape != y.shape else (x.double() - y.double()).abs().max().item())
    return len(a.names()), worst


class ToolFailed(Exception):
    """One tool exited non-zero on a method's config (the bench reports it and goes on to the next method)."""


def run_method(
    method: str, dtype: str, models: list[Path], work: Path, repeats: int, mergekit_env: dict[str, str] | None = None
) -> tuple[Measurement, Measurement, float]:
    config = work / f"{method}.yaml"
    config.write_text(config_text(method, dtype, *models))
    dusk_runs, mergekit_runs = [], []
    for _ in range(repeats):
        for out in (work / f"{method}-dusk", work / f"{method}-mergekit"):
            shutil.rmtree(out, ignore_errors=True)
        dusk_runs.append(measure(dusk_command(config, work / f"{method}-dusk")))
        mergekit = [str(BIN / "mergekit-yaml"), str(config), str(work / f"{method}-mergekit"), "--quiet"]
        mergekit_runs.append(measure(mergekit + ["--copy-tokenizer", "--out-shard-size", "5B"], env=mergekit_env))
        if dusk_runs[-1].returncode or mergekit_runs[-1].returncode:
            raise ToolFailed(f"dusk exit {dusk_runs[-1].returncode}, mergekit exit {mergekit_runs[-1].returncode}")
    _count, worst = max_abs_diff(work / f"{method}-dusk", work / f"{method}-mergekit")
    return _median(dusk_runs), _median(mergekit_runs), worst


def _median(runs: list[Measurement]) -> Measurement:
    return Measurement(statistics.median(r.seconds for r in runs), statistics.median(r.peak_rss_mib for r in runs), 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--methods", default="linear,ties", help="comma-separated, or 'all'")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--mergekit-threads", type=int, help="run mergekit-yaml on this many torch threads (default: torch's default)"
    )
    args = parser.parse_args()
    threads = args.mergekit_threads
    mergekit_env = None if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads)}
    base = resolve_model(args.model)
    with tempfile.TemporaryDirectory(prefix="dusk-merge-bench-") as tmp:
        work = Path(tmp)
        models = [base, perturbed_copy(base, work / "ft1", 1), perturbed_copy(base, work / "ft2", 2)]
        print(f"{'method':<16} {'dusk s':>8} {'mergekit s':>10} {'time x':>7} {'dusk MiB':>9} {'mergekit MiB':>12} "
              f"{'RSS x':>6} {'max abs diff':>13} {'load':>5}")  # fmt: skip
        methods = list(METHOD_PARAMS) if args.methods == "all" else args.methods.split(",")
        for method in methods:
            load = os.getloadavg()[0]  # the machine's 1-minute load before the method (other jobs share it)
            try:
                dusk, mergekit, worst = run_method(method, args.dtype, models, work, args.repeats, mergekit_env)
            except ToolFailed as failure:
                print(f"{method:<16} failed: {failure}", flush=True)
                continue
            print(
                f"{method:<16} {dusk.seconds:>8.1f} {mergekit.seconds:>10.1f} {dusk.seconds / mergekit.seconds:>7.2f} "
                f"{dusk.peak_rss_mib:>9.0f} {mergekit.peak_rss_mib:>12.0f} "
                f"{dusk.peak_rss_mib / mergekit.peak_rss_mib:>6.2f} {worst:>13.2e}{'*' if method in RANDOM else ' '}"
                f"{load:>5.1f}",
                flush=True,
            )
    print(f"dtype {args.dtype}; targets: time x <= 1.0, RSS x <= 0.5, max abs diff 0; * random methods (dusk and "
          f"mergekit draw differently); mergekit-yaml runs on {args.mergekit_threads or 'torch default'} thread(s) "
          "(multi-threaded, its whole-tensor sums differ from single-threaded ones by a rounding step: slerp, nuslerp, "
          "multislerp, model_stock, rescaled ties)")  # fmt: skip


if __name__ == "__main__":
    main()
