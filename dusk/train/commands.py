"""CLI for training: `dusk pretrain`, `dusk sft`, `dusk dpo`, `dusk sdpo`; every flag also via --config.

dusk sft --model smollm2-135m --data alpaca_gpt4 --max-steps 30 --seq-len 256 --out runs/sft
"""

import argparse

STAGES = {
    "pretrain": ("continued pretraining on text, packed into fixed-length sequences", "PretrainConfig"),
    "sft": ("supervised fine-tuning on prompt/response pairs (loss on responses; full or --lora)", "SFTConfig"),
    "dpo": ("DPO on preference pairs with cached reference log-probs (staged DPO: dusk sdpo)", "DPOConfig"),
    "sdpo": ("staged DPO: K chunks, each step referenced by the previous step's model", "SDPOConfig"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    from dusk.train import config

    for name, (help_text, config_name) in STAGES.items():
        parser = subparsers.add_parser(
            name, help=help_text, description=help_text, formatter_class=config.RequiredUsageFormatter
        )
        config_cls = getattr(config, config_name)
        config.add_config_flags(parser, config_cls)
        parser.set_defaults(handler=_handler(name, config_cls))


def _handler(stage: str, config_cls: type):
    def handle(args: argparse.Namespace) -> int:
        from dusk.train.config import config_from_args

        cfg = config_from_args(config_cls, args)
        out = _stage_run(stage)(cfg)
        # sDPO writes OUT/step-1 ... OUT/final: say which directory is the model (what `dusk merge` etc. take)
        print(f"wrote {cfg.out}; the model is {out}" if out != cfg.out else f"wrote {out}")
        return 0

    return handle


def _stage_run(stage: str):
    if stage == "pretrain":
        from dusk.train.pretrain import run
    elif stage == "sft":
        from dusk.train.sft import run
    elif stage == "sdpo":
        from dusk.train.sdpo import run
    else:
        from dusk.train.dpo import run
    return run
