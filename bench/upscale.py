"""DUS speed and memory: `dusk upscale smollm2-135m --drop 8` vs mergekit 0.1.5's passthrough of the same slices.

Both tools read the same converted SmolLM2 directory; each runs in its own process (wall time, peak RSS); the
outputs are compared tensor by tensor (they must be identical). Targets: peak RSS <= 0.5x mergekit's, time <= 1.0x.

    .venv/bin/python bench/upscale.py [--repeats 3]
"""

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from measure import Measurement, measure  # noqa: E402

from dusk.models.io import read_config, resolve_model  # noqa: E402
from dusk.models.safetensors_io import ModelTensors  # noqa: E402

BIN = Path(sys.executable).parent


def mergekit_config(model_dir: Path, n: int, drop: int) -> str:
    return (
        f"merge_method: passthrough\ndtype: float32\nslices:\n"
        f"  - sources: [{{model: {model_dir}, layer_range: [0, {n - drop}]}}]\n"
        f"  - sources: [{{model: {model_dir}, layer_range: [{drop}, {n}]}}]\n"
    )


def compare(dusk_dir: Path, mergekit_dir: Path) -> tuple[int, int, float]:
    """(tensors compared, tensors only in one output, max abs difference)."""
    ours, theirs = ModelTensors(dusk_dir), ModelTensors(mergekit_dir)
    common = sorted(set(ours.names()) & set(theirs.names()))
    only = len(set(ours.names()) ^ set(theirs.names()))
    worst = 0.0
    for name in common:
        a, b = ours.read(name), theirs.read(name)
        worst = max(worst, float("inf") if a.shape != b.shape else (a - b).abs().max().item())
    return len(common), only, worst


def run_once(model_dir: Path, n: int, drop: int, work: Path) -> tuple[Measurement, Measurement]:
    config = work / "passthrough.yaml"
    config.write_text(mergekit_config(model_dir, n, drop))
    for out in (work / "dusk", work / "mergekit"):
        shutil.rmtree(out, ignore_errors=True)
    dusk = measure([str(BIN / "dusk"), "upscale", str(model_dir), "--drop", str(drop), "--out", str(work / "dusk")])
    mergekit = measure(
        [
            str(BIN / "mergekit-yaml"),
            str(config),
            str(work / "mergekit"),
            "--quiet",
            "--copy-tokenizer",
            "--out-shard-size",
            "5B",
        ]
    )
    if dusk.returncode or mergekit.returncode:
        raise SystemExit(f"a tool failed: dusk exit {dusk.returncode}, mergekit exit {mergekit.returncode}")
    return dusk, mergekit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--drop", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model_dir = resolve_model(args.model)
    n = read_config(model_dir)["num_hidden_layers"]
    with tempfile.TemporaryDirectory(prefix="dusk-bench-") as tmp:
        work = Path(tmp)
        runs = [run_once(model_dir, n, args.drop, work) for _ in range(args.repeats)]
        compared, only, worst = compare(work / "dusk", work / "mergekit")
    dusk_s = statistics.median(d.seconds for d, _m in runs)
    merge_s = statistics.median(m.seconds for _d, m in runs)
    dusk_rss = statistics.median(d.peak_rss_mib for d, _m in runs)
    merge_rss = statistics.median(m.peak_rss_mib for _d, m in runs)
    print(
        f"model {args.model} ({n} layers), --drop {args.drop} -> {2 * (n - args.drop)} layers; "
        f"median of {args.repeats} runs, each tool in its own process"
    )
    print(f"{'tool':<10} {'wall s':>8} {'peak RSS MiB':>13}")
    print(f"{'dusk':<10} {dusk_s:>8.2f} {dusk_rss:>13.0f}")
    print(f"{'mergekit':<10} {merge_s:>8.2f} {merge_rss:>13.0f}")
    print(
        f"ratio dusk/mergekit: time {dusk_s / merge_s:.2f}x (target <= 1.0), "
        f"peak RSS {dusk_rss / merge_rss:.2f}x (target <= 0.5)"
    )
    print(f"outputs: {compared} tensors compared, {only} in one output only, max abs diff {worst:g} (must be 0)")


if __name__ == "__main__":
    main()
