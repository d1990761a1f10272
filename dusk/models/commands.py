"""CLI for models: `dusk models`, `dusk info MODEL`, `dusk upscale ...`, `dusk generate MODEL PROMPT`.

dusk upscale smollm2-135m --drop 8 --out runs/smollm2-dus
"""

import argparse

from dusk.devices import DEVICE_HELP, DTYPE_CHOICES


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="list built-in model names and where their weights come from")
    models.set_defaults(handler=_models)

    info = subparsers.add_parser("info", help="summarize a model (architecture, layers, parameters, tokenizer)")
    info.add_argument("model", help="built-in name, model directory, .gguf file or hub id (org/name[@rev])")
    info.set_defaults(handler=_info)

    from dusk.models import upscale_command  # its flags come from UpscaleConfig

    upscale_command.register(subparsers)

    generate = subparsers.add_parser("generate", help="greedy generation from a model, for a quick look")
    generate.add_argument("model", help="built-in name, model directory, .gguf file or hub id (org/name[@rev])")
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
    from dusk.models.info import print_info

    return print_info(args.model)


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
