"""CLI for models: `dusk models`, `dusk info MODEL`, `dusk upscale ...`, `dusk generate MODEL PROMPT`.

dusk upscale smollm2-135m --drop 8 --out runs/smollm2-dus
"""

import argparse
from pathlib import Path

from dusk.errors import DuskError


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="list built-in model names and where their weights come from")
    models.set_defaults(handler=_models)

    info = subparsers.add_parser("info", help="summarize a model (architecture, layers, parameters, tokenizer)")
    info.add_argument("model", help="built-in name, Hugging Face model directory or .gguf file")
    info.set_defaults(handler=_info)

    upscale = subparsers.add_parser("upscale", help="Depth Up-Scaling: SOLAR's --drop M, or any stacking of slices")
    upscale.add_argument("model", nargs="?", help="model to up-scale with --drop (omit with --slices)")
    upscale.add_argument("--drop", type=int, help="SOLAR's m: keep [0, n-m) of one copy and [m, n) of another")
    upscale.add_argument("--slices", type=Path, help="mergekit-style YAML with `slices:` (half-open layer ranges)")
    upscale.add_argument("--out", type=Path, required=True, help="output model directory")
    upscale.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="cast weights (default: keep)")
    upscale.add_argument("--shard-size", default="2GiB", help="maximum safetensors shard size (default 2GiB)")
    upscale.add_argument("--force", action="store_true", help="replace an existing output directory")
    upscale.set_defaults(handler=_upscale)

    generate = subparsers.add_parser("generate", help="greedy generation from a model, for a quick look")
    generate.add_argument("model", help="built-in name, model directory or .gguf file")
    generate.add_argument("prompt")
    generate.add_argument("--max-new-tokens", type=int, default=32)
    generate.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
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


def _upscale(args: argparse.Namespace) -> int:
    from dusk.models import upscale

    if (args.slices is None) == (args.drop is None):
        raise DuskError("give either MODEL --drop M (SOLAR's recipe) or --slices FILE.yaml")
    if args.slices is not None:
        if args.model:
            raise DuskError("with --slices, the models are named in the slices file; drop the MODEL argument")
        cfg = upscale.load_slices_file(args.slices, args.out, args.force, args.shard_size)
        if args.dtype:
            cfg = cfg.model_copy(update={"dtype": args.dtype})
    else:
        if not args.model:
            raise DuskError("--drop needs a MODEL argument")
        cfg = upscale.config_for_drop(args.model, args.drop, args.out, args.force, args.dtype, args.shard_size)
    out = upscale.run(cfg)
    print(f"wrote {out}")
    return _info(argparse.Namespace(model=str(out)))


def _generate(args: argparse.Namespace) -> int:
    from dusk.models.generate import check_budget, greedy_generate
    from dusk.models.io import resolve_model

    check_budget(args.max_new_tokens)  # before a model is resolved (a GGUF may need converting first)
    text = greedy_generate(resolve_model(args.model), args.prompt, args.max_new_tokens, chat=args.chat)
    print(f"{args.prompt}{text}")
    return 0
