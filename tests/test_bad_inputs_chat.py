"""Bad input to `dusk eval`'s chat-template flags: each is refused in one line naming the culprit (exit 2), before
the model loads, with nothing written."""

import shutil
from pathlib import Path

import pytest
from bad_input_helpers import assert_refused
from chat_fixtures import set_chat_template
from eval_task_fixtures import real_data_dir

from dusk.eval import run as eval_run


@pytest.fixture
def places(tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(eval_run, "load_engine", _must_not_run)
    plain = set_chat_template(Path(shutil.copytree(tiny_llama, tmp_path / "no-template")), None)
    return {"model": str(tiny_llama), "plain": str(plain), "out": str(tmp_path / "out")}


def _must_not_run(*_args, **_kwargs):
    raise AssertionError("the model was loaded before the input was checked")


EVAL = ["eval", "{model}", "--tasks", "arc_challenge", "--limit", "1", "--out", "{out}"]

BAD_INPUTS = [
    pytest.param(
        ["eval", "{plain}", "--tasks", "arc_challenge", "--limit", "1", "--out", "{out}", "--apply-chat-template"],
        ["--apply-chat-template", "no-template", "no chat template"],
        id="no-chat-template",
    ),
    pytest.param(
        [*EVAL, "--fewshot-as-multiturn"], ["--fewshot-as-multiturn", "--apply-chat-template"], id="multiturn-alone"
    ),
    pytest.param(
        [*EVAL, "--mode", "leaderboard", "--apply-chat-template"],
        ["--apply-chat-template", "--mode leaderboard"],
        id="leaderboard-chat",
    ),
    pytest.param(
        [*EVAL, "--mode", "leaderboard", "--system-instruction", "Be brief."],
        ["--system-instruction", "--mode leaderboard"],
        id="leaderboard-system",
    ),
]


@pytest.mark.parametrize(("argv", "culprits"), BAD_INPUTS)
def test_bad_chat_input_is_refused(
    argv: list[str], culprits: list[str], places: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert_refused([arg.format(**places) for arg in argv], culprits, capsys, watch=[tmp_path])
