"""Weights load only through safetensors: a model directory holding only pickled weights is refused unless the user
opts in (DUSK_ALLOW_PICKLE=1), since unpickling a stranger's file can run code."""

import shutil
from pathlib import Path

import pytest
import torch
from bad_input_helpers import assert_refused
from recipe_fixtures import real_data_dir

from dusk.errors import DuskError
from dusk.models.io import load_model


@pytest.fixture
def pickled_model(tmp_path: Path, tiny_llama: Path) -> Path:
    """The tiny model with its weights re-saved as pytorch_model.bin (a pickle) and no safetensors file."""
    from safetensors.torch import load_file

    out = tmp_path / "pickled"
    shutil.copytree(tiny_llama, out)
    weights = {}
    for path in out.glob("*.safetensors"):
        weights.update(load_file(path))
        path.unlink()
    (out / "model.safetensors.index.json").unlink(missing_ok=True)
    torch.save(weights, out / "pytorch_model.bin")
    return out


def test_pickled_weights_are_refused(pickled_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUSK_ALLOW_PICKLE", raising=False)
    with pytest.raises(DuskError, match=r"only pickled weights \(pytorch_model.bin\).*DUSK_ALLOW_PICKLE=1"):
        load_model(pickled_model)


@pytest.mark.parametrize("command", [["generate", "MODEL", "Hello", "--max-new-tokens", "2"], ["eval", "MODEL"]])
def test_commands_refuse_pickled_weights(command, pickled_model: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("DUSK_ALLOW_PICKLE", raising=False)
    argv = [str(pickled_model) if part == "MODEL" else part for part in command]
    if command[0] == "eval":
        monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
        argv += ["--tasks", "arc_challenge", "--limit", "1", "--out", str(pickled_model.parent / "eval")]
    assert_refused(argv, ["pytorch_model.bin", "safetensors"], capsys, watch=[pickled_model])


def test_pickled_weights_load_when_the_user_opts_in(
    pickled_model: Path, tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUSK_ALLOW_PICKLE", "1")
    loaded = load_model(pickled_model).state_dict()
    reference = load_model(tiny_llama).state_dict()
    assert loaded.keys() == reference.keys()
    assert all(torch.equal(loaded[name], reference[name]) for name in reference)


def test_a_directory_without_weights_is_refused(tmp_path: Path, tiny_llama: Path) -> None:
    out = tmp_path / "empty"
    shutil.copytree(tiny_llama, out, ignore=shutil.ignore_patterns("*.safetensors*"))
    with pytest.raises(DuskError, match="no weight files"):
        load_model(out)


@pytest.mark.parametrize(
    ("argv", "culprits"),
    [
        pytest.param(["info", "./runs/missing"], ["runs/missing", "no such model"], id="missing-path"),
        pytest.param(["info", "model.gguf"], ["model.gguf", "no such model"], id="missing-gguf"),
        pytest.param(["info", "smolm2"], ["'smolm2'", "smollm2-135m"], id="misspelt-builtin"),
        pytest.param(["generate", "smollm2-135m", "hi", "--max-new-tokens", "0"], "--max-new-tokens", id="budget"),
    ],
)
def test_model_arguments_are_refused_in_one_line(
    argv: list[str], culprits, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_refused(argv, culprits, capsys, watch=[tmp_path])
