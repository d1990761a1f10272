"""The exact `dusk` command that rebuilds a model directory from its own record (and the YAML it needs, if any).

    python -c "from dusk.cards.provenance import read_provenance as r; from dusk.cards.rebuild import rebuild; \
print(rebuild(r('runs/dus')).command)"
"""

import shlex
from dataclasses import dataclass

import yaml

from dusk.cards.provenance import Provenance

_TRAIN_SKIPPED = ("progress", "force", "resume")  # how a run was watched or continued, not what it made


@dataclass(frozen=True)
class Rebuild:
    """A command line, and the YAML file it reads (name and text) when it takes one."""

    command: str
    file_name: str | None = None
    file_text: str | None = None


def rebuild(prov: Provenance, out: str) -> Rebuild:
    """The command (writing to `out`) that rebuilds `prov`'s model."""
    if prov.stage == "upscale":
        return _upscale(prov.record, out)
    if prov.stage == "merge":
        return _merge(prov.record, out)
    return _train(prov.stage, prov.record.get("config") or {}, out)


def _join(words: list[str]) -> str:
    return " ".join(shlex.quote(str(word)) for word in words)


def _upscale(record: dict, out: str) -> Rebuild:
    options = [*_opt("--expand", record.get("expand")), *_opt("--blend", record.get("blend"))]
    options += _opt("--dtype", record.get("dtype"))
    slices = [item["sources"][0] for item in record.get("slices", [])]
    models = {source["model"] for source in slices}
    drop = _solar_drop(slices)
    if len(models) == 1 and drop is not None:
        return Rebuild(_join(["dusk", "upscale", slices[0]["model"], "--drop", drop, *options, "--out", out]))
    if len(models) == 1 and len(slices) == 1 and record.get("expand"):
        return Rebuild(_join(["dusk", "upscale", slices[0]["model"], *options, "--out", out]))
    text = yaml.safe_dump({"merge_method": "passthrough", "slices": record.get("slices", [])}, sort_keys=False)
    return Rebuild(_join(["dusk", "upscale", "--slices", "slices.yaml", *options, "--out", out]), "slices.yaml", text)


def _solar_drop(slices: list[dict]) -> int | None:
    """m when the slices are SOLAR's [0, n - m) + [m, n) of one model (n from the first slice's end + m)."""
    if len(slices) != 2:
        return None
    (a0, a1), (b0, b1) = (tuple(source["layer_range"]) for source in slices)
    n = b1
    if a0 != 0 or a1 != n - b0:
        return None
    return b0


def _opt(flag: str, value: object) -> list[str]:
    return [] if value is None else [flag, str(value)]


def _merge(record: dict, out: str) -> Rebuild:
    config = {key: value for key, value in record.items() if key != "layer_sources" and value is not None}
    text = yaml.safe_dump(config, sort_keys=False)
    return Rebuild(_join(["dusk", "merge", "merge.yaml", "--out", out]), "merge.yaml", text)


def _train(stage: str, config: dict, out: str) -> Rebuild:
    """`dusk STAGE --flag value ...` with every setting that differs from the stage's default."""
    from dusk.train import config as train_config

    classes = {"pretrain": "PretrainConfig", "sft": "SFTConfig", "dpo": "DPOConfig", "sdpo": "SDPOConfig"}
    cls = getattr(train_config, classes.get(stage, "SFTConfig"))
    words = ["dusk", stage if stage in classes else "sft"]
    for name, value in config.items():
        field = cls.model_fields.get(name)
        if field is None or name in _TRAIN_SKIPPED or name in ("out", "run_dir"):
            continue
        if not field.is_required() and _same(value, field.default):
            continue
        words += _flag(name, value)
    return Rebuild(_join([*words, "--out", out]))


def _same(value: object, default: object) -> bool:
    if isinstance(default, tuple):
        default = list(default)
    return value == default or (default is not None and str(value) == str(default))


def _flag(name: str, value: object) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else "--no-" + name.replace("_", "-")]
    if isinstance(value, list | tuple):
        return [flag, *map(str, value)]
    return [flag, str(value)]
