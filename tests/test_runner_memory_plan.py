"""`dusk run --dry-run [--device-memory SIZE]`: each training stage's memory plan at its launch's processes and
sharding, for a model that does not exist yet (an up-scale of the tiny model, planned from its headers)."""

import json
from pathlib import Path

import yaml
from train_fixtures import alpaca_pairs  # noqa: F401

from dusk.cli import main
from dusk.train.config import SFTConfig
from dusk.train.memory_plan import format_plan, plan_rows

SFT = {"seq_len": 512, "batch_size": 8, "max_steps": 1, "eval_size": 0}


def recipe(tmp_path: Path, model: Path, data: Path, drop: object = 1) -> Path:
    dus = {"kind": "upscale", "model": str(model), "drop": drop, **({"layers": 6} if drop == "auto" else {})}
    stages = {"dus": dus, "sft": {"kind": "sft", "from": "dus", "data": str(data), **SFT}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "memory", "launch": {"processes": 2, "shard": "fsdp"}, "stages": stages}))
    return path


def upscaled_shape(tmp_path: Path, model: Path, layers: int) -> Path:
    """What the up-scaled model's config.json will say: the input's with `layers` decoder layers."""
    config = json.loads((model / "config.json").read_text())
    folder = tmp_path / "shape"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": layers}))
    return folder


def test_dry_run_plans_memory_of_a_model_still_to_be_made(
    tiny_llama_4: Path,
    alpaca_pairs: Path,  # noqa: F811
    tmp_path: Path,
    capsys,
) -> None:
    shape = upscaled_shape(tmp_path, tiny_llama_4, 6)  # drop 1 of 4 layers: [0, 3) + [1, 4)
    cfg = SFTConfig(model=str(tiny_llama_4), data=str(alpaca_pairs), out=tmp_path / "x", shard="fsdp", **SFT)
    rows = plan_rows(cfg, shape, 2, 2**40)  # totals with a device's overhead (a device memory given)
    assert rows[-1].estimate.total < rows[0].estimate.total
    device = (rows[0].estimate.total + rows[-1].estimate.total) // 2  # the stage fits only after some changes
    argv = ["run", str(recipe(tmp_path, tiny_llama_4, alpaca_pairs)), "--run-dir", str(tmp_path / "run"), "--dry-run"]
    assert main([*argv, "--device-memory", str(device)]) == 0
    out = capsys.readouterr().out
    assert format_plan("sft", plan_rows(cfg, shape, 2, device), device) in out
    assert "does not fit; fits with" in out and "2 process(es), shard fsdp" in out
    assert main([*argv, "--device-memory", "1024GiB"]) == 0
    assert "fits as configured" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()  # a dry run creates nothing


def test_a_scan_decided_shape_waits_for_its_stage(
    tiny_llama_4: Path,
    alpaca_pairs: Path,  # noqa: F811
    tmp_path: Path,
    capsys,
) -> None:
    path = recipe(tmp_path, tiny_llama_4, alpaca_pairs, drop="auto")
    assert main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--dry-run"]) == 0
    assert "sft: memory plan once its input model's shape is known (after inputs)" in capsys.readouterr().out
