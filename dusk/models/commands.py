"""CLI for models: `dusk models`, `dusk info MODEL`, `dusk upscale ...`, `dusk generate MODEL PROMPT`.

dusk upscale smollm2-135m --drop 8 --out runs/smollm2-dus
"""

import argparse
from pathlib import Path

from dusk.devices import DEVICE_HELP, DTYPE_CHOICES
from dusk.errors import DuskError


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="list built-in model names and where their weights come from")
    models.set_defaults(handler=_models)

    info = subparsers.add_parser("info", help="summarize a model (architecture, layers, parameters, tokenizer)")
    info.add_argument("model", help="built-in name, Hugging Face model directory or .gguf file")
    info.set_defaults(handler=_info)

    upscale = subparsers.add_parser(
        "upscale",
        help="Depth Up-Scaling: SOLAR's --drop M, --drop auto from a layer scan, --expand every:K, or any slices",
    )
    upscale.add_argument("model", nargs="?", help="model to up-scale (omit with --slices)")
    upscale.add_argument(
        "--drop", type=_drop, help="SOLAR's m: keep [0, n-m) of one copy and [m, n) of another; auto: pick by scan"
    )
    upscale.add_argument("--layers", type=int, help="with --drop auto: the output layer count")
    upscale.add_argument("--scan", action="store_true", help="print the layer scan and write it as JSON to --out")
    upscale.add_argument("--data", help="calibration text for --scan / --drop auto (default: tinyshakespeare)")
    upscale.add_argument("--samples", type=int, help="calibration sequences of 128 tokens (default 8)")
    upscale.add_argument("--expand", help="every:K: insert an identity-initialised copy after every K layers")
    upscale.add_argument("--blend", type=int, help="cross-fade the K layers on each side of the seam")
    upscale.add_argument("--slices", type=Path, help="mergekit-style YAML with `slices:` (half-open layer ranges)")
    upscale.add_argument("--out", type=Path, required=True, help="output model directory (with --scan: JSON file)")
    upscale.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="cast weights (default: keep)")
    upscale.add_argument("--shard-size", default="2GiB", help="maximum safetensors shard size (default 2GiB)")
    upscale.add_argument("--force", action="store_true", help="replace an existing output directory")
    upscale.set_defaults(handler=_upscale)

    generate = subparsers.add_parser("generate", help="greedy generation from a model, for a quick look")
    generate.add_argument("model", help="built-in name, model directory or .gguf file")
    generate.add_argument("prompt")
    generate.add_argument("--max-new-tokens", type=int, default=32)
    generate.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    generate.add_argument("--device", default="auto", help=f"where the model runs: {DEVICE_HELP} (default: auto)")
    generate.add_argument(
        "--dtype", default="auto", choices=DTYPE_CHOICES, help="weights' dtype (auto = bfloat16 on CUDA, else float32)"
    )
    generate.add_argument(
        "--allow-pickle", action="store_true", help="load pickled weights (*.bin) when a model has no safetensors"
    )
    generate.set_defaults(handler=_generate)


def _models(_args: argparse.Namespace) -> int:
    from dusk.models.builtin import BUILTIN_MODELS

    width = max(len(name) for name in BUILTIN_MODELS)
    for model in BUILTIN_MODELS.values():
        print(f"{model.name:<{width}}  {model.description}\n{'':<{width}}  source: {model.source}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from dusk.models.info import summarize
    from dusk.models.io import resolve_model

    summary = summarize(resolve_model(args.model))
    width = max(len(key) for key, _value in summary.as_rows())
    for key, value in summary.as_rows():
        print(f"{key:<{width}}  {value}")
    return 0


def _drop(text: str) -> int | str:
    """--drop M (an integer) or --drop auto."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer m or 'auto'") from None


def _upscale(args: argparse.Namespace) -> int:
    from dusk.models import upscale

    if args.scan:
        return _scan(args)
    if args.slices is not None:
        if args.model:
            raise DuskError("with --slices, the models are named in the slices file; drop the MODEL argument")
        if args.drop is not None or args.layers is not None:
            raise DuskError("give either MODEL --drop M (SOLAR's recipe) or --slices FILE.yaml")
        cfg = upscale.load_slices_file(args.slices, args.out, args.force, args.shard_size)
        cfg = cfg.model_copy(update={"expand": args.expand, "blend": args.blend})
        if args.dtype:
            cfg = cfg.model_copy(update={"dtype": args.dtype})
    elif args.drop is None and args.expand is None:
        raise DuskError(
            "give either MODEL --drop M (SOLAR's recipe), MODEL --drop auto --layers L, MODEL --expand every:K, "
            "or --slices FILE.yaml"
        )
    else:
        if not args.model:
            raise DuskError(f"{'--drop' if args.drop is not None else '--expand'} needs a MODEL argument")
        cfg = upscale.config_for_model(
            args.model,
            args.out,
            drop=args.drop,
            layers=args.layers,
            expand=args.expand,
            blend=args.blend,
            scan_data=args.data,
            scan_samples=args.samples,
            force=args.force,
            dtype=args.dtype,
            shard_size=args.shard_size,
        )
        _print_choice(cfg)
    out = upscale.run(cfg)
    print(f"wrote {out}")
    return _info(argparse.Namespace(model=str(out)))


def _print_choice(cfg) -> None:
    """For --drop auto: the chosen stacking and the runner-up."""
    if "choice" not in cfg.record:
        return
    n = len(cfg.record["scan"]["layer_distance"])
    for label, key in (("chosen", "choice"), ("runner-up", "runner_up")):
        if cfg.record.get(key):
            c = cfg.record[key]
            print(f"{label}: [0, {c['a']}) + [{c['b']}, {n}), seam distance {c['seam_distance']:.4f}")


def _scan(args: argparse.Namespace) -> int:
    from dusk.models import dus_scan
    from dusk.models.io import resolve_model

    if not args.model:
        raise DuskError("--scan needs a MODEL argument")
    options = (("--drop", args.drop), ("--layers", args.layers), ("--expand", args.expand), ("--blend", args.blend))
    ignored = [flag for flag, value in (*options, ("--slices", args.slices)) if value is not None]
    if ignored:
        raise DuskError(f"--scan only measures the model; it takes no {', '.join(ignored)}")
    samples = dus_scan.DEFAULT_SAMPLES if args.samples is None else args.samples
    dus_scan.check_scan_args(samples)
    data = dus_scan.check_scan_data(args.data)
    if args.out.is_dir() or (args.out.exists() and not args.force):
        raise DuskError(f"--out {args.out}: already exists; pass --force to replace a scan file")
    scan = dus_scan.scan_model(args.model, resolve_model(args.model), data, samples)
    print(dus_scan.format_scan(scan))
    print(f"wrote {dus_scan.write_scan(scan, args.out)}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from dusk.devices import resolve_device
    from dusk.models.generate import check_budget, greedy_generate
    from dusk.models.io import resolve_model

    check_budget(args.max_new_tokens)  # before a model is resolved (a GGUF may need converting first)
    resolve_device(args.device)  # likewise a device this machine lacks
    model_dir = resolve_model(args.model, args.allow_pickle)
    text = greedy_generate(
        model_dir, args.prompt, args.max_new_tokens, args.dtype, args.chat, args.device, args.allow_pickle
    )
    print(f"{args.prompt}{text}")
    return 0
