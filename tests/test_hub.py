"""Models by Hugging Face id (dusk.hub): `org/name[@revision]` found in a hub cache built on disk, offline."""

import json
import shutil
from pathlib import Path

import pytest
from bad_input_helpers import assert_refused
from eval_task_fixtures import real_data_dir

from dusk.cli import main
from dusk.hub import HubId, parse_hub_id
from dusk.models.io import resolve_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_model(cache: Path, repo: str, source: Path, revision: str = "main", drop: str | None = None) -> Path:
    """Lay `source`'s files out as huggingface_hub's cache does: models--org--name/{refs/<rev>, snapshots/<sha>}."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / COMMIT
    shutil.copytree(source, snapshot, ignore=shutil.ignore_patterns(drop) if drop else None)
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / revision).write_text(COMMIT)
    return snapshot


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache, offline (HF_HUB_OFFLINE=1), and the benchmark data."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    monkeypatch.delenv("DUSK_ALLOW_PICKLE", raising=False)
    monkeypatch.chdir(tmp_path)
    return cache


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("org/name", HubId("org/name")),
        ("HuggingFaceTB/SmolLM2-135M@v1.0", HubId("HuggingFaceTB/SmolLM2-135M", "v1.0")),
        ("org/name@refs/pr/3", HubId("org/name", "refs/pr/3")),
        ("./org/name", None),
        ("/abs/path", None),
        ("a/b/c", None),
        ("org/model.gguf", None),
        ("tiny-llama", None),
    ],
)
def test_parse_hub_id(text: str, expected: HubId | None) -> None:
    assert parse_hub_id(text) == expected


def test_eval_by_hub_id_from_the_offline_cache(hub: Path, tiny_llama: Path, capsys: pytest.CaptureFixture) -> None:
    snapshot = cache_model(hub, "org/tiny", tiny_llama)
    assert resolve_model("org/tiny") == snapshot
    assert resolve_model("org/tiny@main") == snapshot
    out = hub.parent / "out"
    argv = ["eval", "org/tiny", "--tasks", "arc_challenge,gsm8k", "--limit", "2", "--max-new-tokens", "4"]
    assert main([*argv, "--out", str(out)]) == 0
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["model"] == "org/tiny" and settings["model_dir"] == str(snapshot)
    assert settings["device"] == "cpu" and settings["device_name"] == "cpu" and settings["dtype"] == "float32"
    assert settings["torch_version"] and "cuda_version" in settings and settings["attention"] == "sdpa"


def test_pickle_only_repository_needs_allow_pickle(
    hub: Path, tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import torch
    from safetensors.torch import load_file

    snapshot = cache_model(hub, "org/pickled", tiny_llama, drop="*.safetensors")
    torch.save(load_file(tiny_llama / "model.safetensors"), snapshot / "pytorch_model.bin")
    argv = ["generate", "org/pickled", "hi", "--max-new-tokens", "2"]
    assert_refused(argv, ["org/pickled", "pytorch_model.bin", "--allow-pickle"], capsys, watch=[tmp_path])
    assert main([*argv, "--allow-pickle"]) == 0
    assert capsys.readouterr().out.startswith("hi")


def test_not_cached_while_offline_says_what_and_how(hub: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    line = assert_refused(
        ["eval", "org/absent@v2", "--tasks", "arc_challenge", "--limit", "1", "--out", str(out)],
        ["org/absent@v2", str(hub), "HF_HUB_OFFLINE", "hf download org/absent --revision v2"],
        capsys,
        watch=[tmp_path],
    )
    assert "no such model directory" in line and not out.exists()
