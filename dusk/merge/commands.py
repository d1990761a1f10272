"""CLI for `dusk merge`: a mergekit-style YAML config, or the short form naming the models and the method. The flags
come from the short form's config (`dusk.merge.short_form.MergeShortForm`, also the recipe's merge stage).

dusk merge merge.yaml --out runs/merged [--force] [--shard-size 2GiB]
dusk merge runs/sft-v3 runs/sft-v4 --method linear --weights 0.5,0.5 --out runs/sft-v3+v4
"""

import argparse

from dusk.errors import DuskError

SHORT_FORM_FLAGS = ("method", "weights", "base_model", "density", "t", "parameters", "model_parameters")
FILE_FORM_FLAGS = ("dtype", "out_dtype", "seed")  # options a config file's merge takes from the command line too


def register(subparsers: argparse._SubParsersAction) -> None:
    from dusk.config_flags import RequiredUsageFormatter, add_config_flags
    from dusk.merge.short_form import MergeShortForm

    class Formatter(RequiredUsageFormatter, argparse.RawDescriptionHelpFormatter):
        """Required flags shown without brackets; the methods epilog kept as written."""

    merge = subparsers.add_parser(
        "merge",
        help="merge models (mergekit 0.1.5's methods: linear, ties, dare_ties, slerp, della, model_stock, ...)",
        description="Merge models from a mergekit-style YAML config (CONFIG.yaml), or name the models "
        "and the method directly (MODEL MODEL ... --method M).",
        epilog=METHODS_HELP.replace("%", "%%"),
        formatter_class=Formatter,
    )
    add_config_flags(merge, MergeShortForm, positional=("models",))
    for action in merge._actions:  # argparse has no public way to give a generated positional nargs
        if action.dest == "models":
            action.nargs, action.metavar = "+", "CONFIG.yaml | MODEL"
    # `--base`, the flag's spelling before it came from the config's base_model field, still works
    merge.add_argument("--base", dest="base_model", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
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


def build_config(args: argparse.Namespace):
    """The MergeConfig the command line describes (config file or short form)."""
    from dusk.config_flags import config_from_args, flag_name
    from dusk.merge import config
    from dusk.merge.short_form import MergeShortForm

    short = config_from_args(MergeShortForm, args)
    if not short.is_config_file():
        return short.merge_config()
    given = [flag_name(name) for name in SHORT_FORM_FLAGS if hasattr(args, name)]
    if given:
        raise DuskError(f"{', '.join(given)}: short-form flags do not combine with a config file; set them in it")
    extra = {name: getattr(short, name) for name in FILE_FORM_FLAGS if hasattr(args, name)}
    return config.load_merge_config(short.models[0], short.out, short.force, short.shard_size, **extra)


def _merge(args: argparse.Namespace) -> int:
    from dusk.merge.run import return_large_buffers_to_the_os, run

    return_large_buffers_to_the_os()
    out = run(build_config(args))
    print(f"wrote {out}")
    return 0
