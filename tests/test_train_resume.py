"""The loop's discipline: kill-and-resume gives the same curve, NaN stops with a kept checkpoint, config checks."""

import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from dusk.cli import main
from dusk.errors import DuskError
from dusk.train import loop, pretrain, sft
from dusk.train.checkpoint import list_checkpoints
from dusk.train.config import PretrainConfig, SFTConfig, add_config_flags, config_from_args
from tests.train_fixtures import alpaca_pairs, log_lines, shakespeare_text, single_thread, tiny_config  # noqa: F401


class Killed(Exception):
    pass


def _kill_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Make the loop die (like a killed process) right after it finishes optimizer step `step`."""
    real = loop._train_step

    def dying(run):
        record = real(run)
        if run.step == step:
            raise Killed
        return record

    monkeypatch.setattr(loop, "_train_step", dying)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora-dropout"])
def test_kill_and_resume_gives_the_same_loss_curve(
    tiny_llama: Path,
    alpaca_pairs: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lora: bool,
) -> None:
    options = dict(max_steps=6, save_every=2, grad_accum=2, batch_size=2, warmup_steps=2, lora=lora, lora_dropout=0.2)
    whole = tiny_config(SFTConfig, tiny_llama, alpaca_pairs, tmp_path / "whole", **options)
    sft.run(whole)
    broken = whole.model_copy(update={"out": tmp_path / "broken"})
    _kill_at(monkeypatch, 5)
    with pytest.raises(Killed):
        sft.run(broken)
    assert not broken.out.exists() and [p.name for p in list_checkpoints(broken.work_dir)][-1] == "step-00000004"
    monkeypatch.undo()
    sft.run(broken.model_copy(update={"resume": "latest"}))
    expected = [line["loss"] for line in log_lines(whole.work_dir / "log.jsonl")]
    resumed = [line["loss"] for line in log_lines(broken.work_dir / "log.jsonl")]
    assert len(resumed) == 6 and resumed == pytest.approx(expected, rel=1e-5)
    assert (broken.out / "config.json").is_file()
    # the training record counts the whole run, not only the steps after the resume
    whole_record, resumed_record = _record(whole.out), _record(broken.out)
    assert resumed_record["tokens"] == whole_record["tokens"] == log_lines(whole.work_dir / "log.jsonl")[-1]["tokens"]
    assert resumed_record["train_loss"] == pytest.approx(whole_record["train_loss"], rel=1e-5)


def _record(out: Path) -> dict:
    return json.loads((out / "dusk_train.json").read_text())


def test_resume_from_the_final_checkpoint_records_the_runs_loss_and_tokens(
    tiny_llama: Path,
    alpaca_pairs: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    # e.g. the output could not be written at the end: resuming from the last checkpoint takes no step
    cfg = tiny_config(SFTConfig, tiny_llama, alpaca_pairs, tmp_path / "a", max_steps=2, save_every=2)
    sft.run(cfg)
    first = _record(cfg.out)
    shutil.rmtree(cfg.out)
    sft.run(cfg.model_copy(update={"resume": "latest"}))
    again = _record(cfg.out)
    assert again["train_loss"] == first["train_loss"] and math.isfinite(again["train_loss"])
    assert again["tokens"] == first["tokens"] > 0 and again["steps"] == 2
    assert again["seconds"] == first["seconds"]


def test_the_nan_stop_advice_works(
    tiny_llama: Path,
    alpaca_pairs: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Stopped on a non-finite step, a run resumed as the message says (--resume, a lower --lr) finishes."""
    out = tmp_path / "sft"
    argv = ["sft", "--model", str(tiny_llama), "--data", str(alpaca_pairs), "--out", str(out), "--max-steps", "4"]
    argv += ["--seq-len", "64", "--batch-size", "2", "--eval-size", "0", "--save-every", "2", "--no-progress"]
    real_clip = loop._clip

    def diverging(run, max_norm: float) -> float:  # from step 3 on, a too-high lr makes the gradient infinite
        norm = real_clip(run, max_norm)
        return math.inf if run.step >= 2 and run.cfg.lr > 1e-3 else norm

    monkeypatch.setattr(loop, "_clip", diverging)
    assert main([*argv, "--lr", "3e-3"]) == 2
    error = capsys.readouterr().err
    assert "stopped at step 3" in error and "step-00000002" in error
    assert "--resume" in error and "lower --lr" in error
    assert main([*argv, "--lr", "1e-4", "--resume"]) == 0
    assert "changed lr: checkpoint 0.003, now 0.0001" in caplog.text  # the resume says what changed
    lines = log_lines(out.with_name("sft.run") / "log.jsonl")
    assert [line["step"] for line in lines] == [1, 2, 3, 4]
    lowered = SFTConfig(model="m", data="d", out=out, max_steps=4, lr=1e-4)
    assert [line["lr"] for line in lines[2:]] == pytest.approx([loop.lr_at(2, lowered), loop.lr_at(3, lowered)])
    assert _record(out)["config"]["lr"] == 1e-4 and _record(out)["steps"] == 4


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tiny_llama: Path,
    shakespeare_text: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    # lr 1e30: the first step is fine, it blows every weight up to ~1e30, and step 2's numbers overflow
    cfg = tiny_config(PretrainConfig, tiny_llama, shakespeare_text, tmp_path / "pt", lr=1e30, save_every=1)
    pattern = r"stopped at step 2: loss .*, gradient norm .*(nan|inf).*last good checkpoint is .*step-00000001"
    with pytest.raises(DuskError, match=pattern):
        pretrain.run(cfg)
    assert [p.name for p in list_checkpoints(cfg.work_dir)] == ["step-00000001"]
    assert not cfg.out.exists()


def test_pretrain_loss_goes_down_on_real_text(tiny_llama: Path, shakespeare_text: Path, tmp_path: Path) -> None:  # noqa: F811
    cfg = tiny_config(
        PretrainConfig, tiny_llama, shakespeare_text, tmp_path / "pt", max_steps=10, eval_size=8, eval_every=10, lr=5e-3
    )
    pretrain.run(cfg)
    evals = log_lines(cfg.work_dir / "log.jsonl", "eval")
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"] - 0.5
    steps = log_lines(cfg.work_dir / "log.jsonl")
    assert [s["tokens"] for s in steps] == [4 * 64 * (i + 1) for i in range(10)]  # fixed-length packed sequences


def test_resume_with_a_different_config_says_what_differs(tiny_llama, alpaca_pairs, tmp_path) -> None:  # noqa: F811
    cfg = tiny_config(SFTConfig, tiny_llama, alpaca_pairs, tmp_path / "a", max_steps=2, save_every=2)
    sft.run(cfg)
    changed = cfg.model_copy(update={"lr": 1e-3, "batch_size": 2, "seq_len": 32, "resume": "latest", "force": True})
    # lr may change on resume (the remedy of a diverged run); the others are refused, each named
    with pytest.raises(
        DuskError, match=r"different config \(batch_size: checkpoint 4, now 2; seq_len: checkpoint 64, now 32\); "
    ):
        sft.run(changed)


def test_yaml_config_and_flags_merge(tmp_path: Path) -> None:
    import argparse

    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump({"model": "tiny-llama", "data": "d.jsonl", "out": "runs/x", "lr": 1e-4}))
    parser = argparse.ArgumentParser()
    add_config_flags(parser, SFTConfig)
    cfg = config_from_args(SFTConfig, parser.parse_args(["--config", str(path), "--lr", "3e-4", "--packing"]))
    assert (cfg.model, cfg.lr, cfg.packing, cfg.max_steps) == ("tiny-llama", 3e-4, True, 100)
    resume = config_from_args(SFTConfig, parser.parse_args(["--config", str(path), "--resume"]))
    assert resume.resume == "latest"
    path.write_text(yaml.safe_dump({"model": "m", "data": "d", "out": "o", "learning_rate": 1}))
    with pytest.raises(DuskError, match=r"unknown field\(s\) learning_rate; known fields: model, data"):
        config_from_args(SFTConfig, parser.parse_args(["--config", str(path)]))


def test_a_checkpoint_of_an_older_dusk_resumes_when_new_fields_keep_their_defaults(
    tiny_llama,
    alpaca_pairs,  # noqa: F811
    tmp_path,
) -> None:
    cfg = tiny_config(SFTConfig, tiny_llama, alpaca_pairs, tmp_path / "a", max_steps=2, save_every=1)
    sft.run(cfg)
    first, last = list_checkpoints(cfg.work_dir)
    shutil.rmtree(last)  # as if killed after step 1's checkpoint
    shutil.rmtree(cfg.out)
    state = json.loads((first / "state.json").read_text())
    del state["config"]["shard"], state["config"]["seed"]  # as written before `shard` and `seed` existed
    (first / "state.json").write_text(json.dumps(state))
    with pytest.raises(DuskError, match=r"different config \(seed: checkpoint 0, now 5\)"):
        sft.run(cfg.model_copy(update={"seed": 5, "resume": "latest"}))  # a new field set otherwise: not this run
    sft.run(cfg.model_copy(update={"resume": "latest"}))  # the new fields at their defaults: the same run, resumed
    assert [row["step"] for row in log_lines(cfg.work_dir / "log.jsonl")][-1] == 2 and cfg.out.is_dir()
