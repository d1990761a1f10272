"""CLI for `dusk merge`: a mergekit-style YAML config, or the short form naming the models and the method.

dusk merge merge.yaml --out runs/merged [--force] [--shard-size 2GiB]
dusk merge runs/sft-v3 runs/sft-v4 --method linear --weights 0.5,0.5 --out runs/sft-v3+v4
"""

import argparse
from pathlib import Path

from dusk.errors import DuskError

SHORT_FORM_FLAGS = ("method", "weights", "base", "density", "t")


def register(subparsers: argparse._SubParsersAction) -> None:
    merge = subparsers.add_parser(
        "merge",
        help="merge models (mergekit 0.1.5's methods: linear, ties, dare_ties, slerp, della, model_stock, ...)",
        description="Merge models from a mergekit-style YAML config (CONFIG.yaml), or name the models "
        "and the method directly (MODEL MODEL ... --method M).",
        epilog=METHODS_HELP.replace("%", "%%"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    merge.add_argument("inputs", nargs="+", metavar="CONFIG.yaml | MODEL", help="a merge config, or the models")
    merge.add_argument("--out", type=Path, required=True, help="output model directory")
    merge.add_argument("--force", action="store_true", help="replace an existing output directory")
    merge.add_argument("--shard-size", default="2GiB", help="maximum safetensors shard size (default 2GiB)")
    merge.add_argument("--method", help="short form: merge method (default linear)")
    merge.add_argument("--weights", help="short form: comma-separated weight per model (default equal)")
    merge.add_argument("--base", help="short form: base model (task_arithmetic, ties, dare_*, della*, slerp, ...)")
    merge.add_argument("--density", type=float, help="short form: fraction of each task vector kept, in (0, 1]")
    merge.add_argument("--t", type=float, help="short form: slerp position (0 = base, 1 = other); nearswap distance")
    merge.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="cast inputs to this dtype")
    merge.add_argument("--seed", type=int, help="random seed for DARE, DELLA and Arcee Fusion sampling (default 0)")
    merge.set_defaults(handler=_merge)


# `dusk merge --help`'s list of methods: static text, so building the parser imports no torch
# (tests/test_merge_cli.py checks it names every registered method). Formulas in full: docs/merge.md.
METHODS_HELP = """\
merge methods (x_i the models, b the base, d_i = x_i - b, w_i weights; formulas in full: docs/merge.md):
  linear            sum w_i x_i / sum w_i                                  [2203.05482] weight, normalize
  task_arithmetic   b + lambda sum w_i d_i                        base     [2212.04089] weight, lambda, ...
  ties              top-density trim, sign election, disjoint mean base    [2306.01708] weight, density, ...
  dare_ties         random drop (1 - density) + rescale, then TIES base    [2311.03099] random: --seed
  dare_linear       random drop + rescale, then task arithmetic    base    [2311.03099] random: --seed
  breadcrumbs       drop the gamma largest and smallest |d_i|      base    [2312.06795] density, gamma
  breadcrumbs_ties  breadcrumbs' trim, then TIES's sign election   base    [2312.06795] density, gamma
  della             rank-weighted random drop (MagPrune), TIES     base    [2406.11617] random: --seed, epsilon
  della_linear      MagPrune, then task arithmetic                 base    [2406.11617] random: --seed, epsilon
  slerp             spherical interpolation of 2 models            base    [wiki Slerp] t
  nuslerp           SLERP of 2 models or their task vectors  base optional [mergekit] weight, nuslerp_*
  multislerp        barycentric SLERP of N models           base optional [goddard.blog] weight
  karcher           Riemannian mean on the unit sphere                     [2603.04972] max_iter, tol
  model_stock       t * mean x_i + (1 - t) b, t from task-vector angles    [2403.19522] filter_wise (3+ models)
  sce               select by variance, weight by energy, TIES     base    [2408.07990] select_topk
  nearswap          take x where |x - b| < t, blend near it        base    [QuartetAnemoi] t (2 models)
  arcee_fusion      take x where |x - b| * KL is an outlier        base    [arcee.ai] (2 models)
  ram               average the task vectors moving each entry    base    [2601.13572] epsilon
  ramplus_tl        RAM, boosting each model's unique entries      base    [2601.13572] r, alpha, epsilon
  passthrough       one model's tensor (times scale); stacks slices        scale
"""


def _weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError as exc:
        raise DuskError(f"--weights {text!r}: expected comma-separated numbers such as 0.5,0.5") from exc


def build_config(args: argparse.Namespace):
    """The MergeConfig the command line describes (config file or short form)."""
    from dusk.merge import config

    extra = {"force": args.force, "shard_size": args.shard_size}
    if args.dtype:
        extra["dtype"] = args.dtype
    if args.seed is not None:
        extra["seed"] = args.seed
    first = Path(args.inputs[0])
    if len(args.inputs) == 1 and first.suffix in (".yaml", ".yml"):
        given = [f"--{flag}" for flag in SHORT_FORM_FLAGS if getattr(args, flag) is not None]
        if given:
            raise DuskError(f"{', '.join(given)}: short-form flags do not combine with a config file; set them in it")
        return config.load_merge_config(first, args.out, **extra)
    method = args.method or "linear"
    if method in ("slerp", "nearswap") and args.t is None:
        what = "the position between the models (0 = the base, 1 = the other)" if method == "slerp" else "the distance"
        raise DuskError(f"--method {method} needs --t, {what}")
    base = args.base
    if method in ("slerp", "nearswap", "arcee_fusion") and base is None and len(args.inputs) == 2:
        base = args.inputs[0]
    return config.short_form_config(
        args.inputs, method, args.out, _weights(args.weights), base, args.density, args.t, **extra
    )


def _merge(args: argparse.Namespace) -> int:
    from dusk.merge.run import return_large_buffers_to_the_os, run

    return_large_buffers_to_the_os()
    out = run(build_config(args))
    print(f"wrote {out}")
    return 0
