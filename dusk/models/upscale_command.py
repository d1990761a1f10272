"""CLI for `dusk upscale`: its flags, defaults and help come from `dusk.models.upscale_config.UpscaleConfig`, the same
config the recipe's upscale stage validates.

dusk upscale smollm2-135m --drop 8 --out runs/smollm2-dus
dusk upscale smollm2-135m --scan --out scan.json
"""

import argparse

from dusk.errors import DuskError


def register(subparsers: argparse._SubParsersAction) -> None:
    from dusk.config_flags import RequiredUsageFormatter, add_config_flags
    from dusk.models.upscale_config import UpscaleConfig

    text = "Depth Up-Scaling: SOLAR's --drop M, --drop auto from a layer scan, --expand every:K, or any slices"
    upscale = subparsers.add_parser("upscale", help=text, description=text, formatter_class=RequiredUsageFormatter)
    add_config_flags(upscale, UpscaleConfig, positional=("model",))
    for action in upscale._actions:  # argparse has no public way to give a generated positional nargs
        if action.dest == "model":
            action.nargs, action.default, action.metavar = "?", argparse.SUPPRESS, "MODEL"
    upscale.set_defaults(handler=_upscale)


def _upscale(args: argparse.Namespace) -> int:
    from dusk.config_flags import config_from_args
    from dusk.models import upscale
    from dusk.models.info import print_info
    from dusk.models.upscale_config import UpscaleConfig

    cfg = config_from_args(UpscaleConfig, args)
    if cfg.scan:
        return _scan(cfg)
    cfg = upscale.resolve(cfg)
    _print_choice(cfg.record)
    out = upscale.run(cfg)
    print(f"wrote {out}")
    return print_info(str(out))


def _print_choice(record: dict) -> None:
    """For --drop auto: the chosen stacking and the runner-up."""
    if "choice" not in record:
        return
    n = len(record["scan"]["layer_distance"])
    for label, key in (("chosen", "choice"), ("runner-up", "runner_up")):
        if record.get(key):
            c = record[key]
            print(f"{label}: [0, {c['a']}) + [{c['b']}, {n}), seam distance {c['seam_distance']:.4f}")


def _scan(cfg) -> int:  # noqa: ANN001 (an UpscaleConfig with scan set)
    from dusk.models import dus_scan
    from dusk.models.io import resolve_model

    samples = dus_scan.DEFAULT_SAMPLES if cfg.samples is None else cfg.samples
    dus_scan.check_scan_args(samples)
    data = dus_scan.check_scan_data(cfg.data)
    if cfg.out.is_dir() or (cfg.out.exists() and not cfg.force):
        raise DuskError(f"--out {cfg.out}: already exists; pass --force to replace a scan file")
    scan = dus_scan.scan_model(cfg.model, resolve_model(cfg.model), data, samples)
    print(dus_scan.format_scan(scan))
    print(f"wrote {dus_scan.write_scan(scan, cfg.out)}")
    return 0
