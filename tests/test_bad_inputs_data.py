"""Bad input to `dusk data list/show/mix/decontaminate`: each is refused with one line naming the culprit, exit code 2,
no traceback, and nothing written or replaced. Also the regression tests of issue 13's data defects: non-UTF-8 and
empty files, outputs replaced without --force, `show -n -1`, and the fixed paths still working (--force, a BOM).
"""

import gzip
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from bad_input_helpers import assert_refused, check_refusal, run_dusk

from dusk.cli import main


@dataclass
class Env:
    """A scratch directory with a valid records file and an existing output; rows add the files they need."""

    tmp: Path

    @property
    def ok(self) -> str:
        return str(self.tmp / "ok.jsonl")

    @property
    def out(self) -> str:
        return str(self.tmp / "out.jsonl")

    def file(self, name: str, content: str | bytes) -> str:
        path = self.tmp / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return str(path)

    def mix(self, yaml_text: str, *extra: str) -> list[str]:
        return ["data", "mix", self.file("mix.yaml", yaml_text), "--out", self.out, *extra]

    def decon(self, source: str, *extra: str) -> list[str]:
        return ["data", "decontaminate", source, "--out", self.out, *extra]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "ok.jsonl").write_text('{"text": "hello world"}\n', encoding="utf-8")
    (tmp_path / "existing.jsonl").write_text('{"text": "keep me"}\n', encoding="utf-8")
    (tmp_path / "a_dir").mkdir()
    return Env(tmp_path)


LATIN1 = b'{"text": "ok"}\n{"text": "caf\xe9"}\n'  # a Latin-1 e-acute on line 2, byte offset 28

# (command line, culprits the error line must name), each built from the scratch directory.
ROWS: list = [
    # defect 2: a file that is not UTF-8 ends in one line naming the file, line and byte offset
    pytest.param(lambda e: ["data", "show", e.file("latin1.jsonl", LATIN1)], ["latin1.jsonl:2", "UTF-8", "offset 28"],
                 id="not-utf8"),
    pytest.param(
        lambda e: e.decon(e.file("latin1.jsonl.gz", gzip.compress(LATIN1))),
        ["latin1.jsonl.gz:2", "UTF-8", "offset 28"],
        id="not-utf8-gz",
    ),
    # defect 3: an empty file says it is empty (it said "holds text records, not instruction records")
    pytest.param(lambda e: ["data", "show", e.file("empty.jsonl", "")], ["empty.jsonl", "no records"], id="empty-file"),
    pytest.param(
        lambda e: e.mix(f"kind: instruction\nsources: [{{dataset: {e.file('empty.jsonl', chr(10))}}}]"),
        ["empty.jsonl", "no records"], id="empty-file-in-mix",
    ),
    # defect 4: existing outputs are not replaced without --force
    pytest.param(lambda e: e.mix(f"- {{dataset: {e.ok}}}", "--out", str(e.tmp / "existing.jsonl")),
                 ["existing.jsonl", "--force"], id="mix-out-exists"),
    pytest.param(lambda e: e.decon(e.ok, "--out", str(e.tmp / "existing.jsonl")), ["existing.jsonl", "--force"],
                 id="decontaminate-out-exists"),
    pytest.param(lambda e: e.decon(e.ok, "--report", str(e.tmp / "existing.jsonl")),
                 ["--report", "existing.jsonl", "--force"], id="decontaminate-report-exists"),
    # defect 5
    pytest.param(lambda e: ["data", "show", e.ok, "-n", "-1"], ["-n", "-1"], id="show-n-negative"),
    # defect 6: every other mistake
    pytest.param(lambda e: ["data", "show", "alpaca-gpt4"], ["alpaca-gpt4", "known", "alpaca_gpt4"],
                 id="unknown-dataset"),
    pytest.param(lambda e: e.mix("- {dataset: dolly\n"), ["mix.yaml:2", "YAML"], id="mix-not-yaml"),
    pytest.param(lambda e: e.mix("dolly\n"), ["mix.yaml", "list of sources", "str"], id="mix-not-a-list"),
    pytest.param(lambda e: e.mix("- dolly\n"), ["sources.0", "mapping", "dolly"], id="mix-entry-not-a-mapping"),
    pytest.param(lambda e: e.mix(f"- {{dataset: {e.ok}, wieght: 2}}"), ["wieght", "unknown key", "weight"],
                 id="mix-unknown-key"),
    pytest.param(lambda e: e.mix(f"- {{dataset: {e.ok}, weight: -1}}"), ["weight", "-1"], id="mix-negative-weight"),
    pytest.param(lambda e: e.mix(f"- {{dataset: {e.ok}, weight: 0}}"), ["weight", "greater than 0"],
                 id="mix-zero-weight"),
    pytest.param(lambda e: e.mix(f"- {{dataset: {e.ok}, weight: .nan}}"), ["weight", "finite", "nan"],
                 id="mix-nan-weight"),
    pytest.param(lambda e: e.mix(f"- {{dataset: {e.ok}, max_examples: -1}}"), ["max_examples", "-1"],
                 id="mix-negative-max-examples"),
    pytest.param(lambda e: e.mix(f"- {{dataset: {e.ok}}}\n- {{dataset: {e.ok}}}"), ["ok.jsonl", "twice"],
                 id="mix-dataset-twice"),
    pytest.param(lambda e: e.mix("- {dataset: gsm8k}"), ["gsm8k", "benchmark", "gsm8k_train"], id="mix-benchmark"),
    pytest.param(lambda e: ["data", "show", e.file("bad.jsonl", '{"text": "a"}\n{"text": "b",}\n')],
                 ["bad.jsonl:2", "JSON"], id="jsonl-line-not-json"),
    pytest.param(lambda e: ["data", "show", e.file("alp.jsonl", '{"instruction": "Say hi."}\n')],
                 ["alp.jsonl:1", "output"], id="record-missing-field"),
    pytest.param(lambda e: e.decon(e.ok, "--engine", "dask"), ["--engine", "dask"], id="unknown-engine"),
    pytest.param(lambda e: e.mix(f"- {{dataset: {e.ok}}}", "--out", str(e.tmp / "a_dir")), ["a_dir", "directory"],
                 id="out-is-a-directory"),
    pytest.param(lambda e: e.decon(e.ok, "--out", str(e.tmp / "ok.jsonl" / "clean.jsonl")),
                 ["ok.jsonl", "not a directory"], id="out-not-writable"),
    pytest.param(lambda e: e.decon(e.ok, "--report", e.out), ["--report", "--out"], id="report-is-out"),
    pytest.param(lambda e: e.decon(e.ok, "--tasks", "squad"), ["squad", "known"], id="unknown-benchmark"),
    pytest.param(lambda e: e.decon(e.ok, "--tasks", ","), ["--tasks", "none"], id="no-benchmark"),
    pytest.param(lambda e: e.decon(e.ok, "--threshold", "nan"), ["--threshold", "nan"], id="threshold-nan"),
    pytest.param(lambda e: e.decon("gsm8k"), ["gsm8k", "benchmark"], id="decontaminate-a-benchmark"),
    pytest.param(lambda e: e.decon(str(e.tmp / "a_dir")), ["a_dir", "directory"], id="input-is-a-directory"),
    pytest.param(lambda e: ["data", "show", e.ok, "--template", "chat"], ["chat", "--tokenizer"],
                 id="chat-template-without-tokenizer"),
]  # fmt: skip


@pytest.mark.parametrize(("build", "culprits"), ROWS)
def test_bad_input_is_refused(
    build: Callable[[Env], list[str]], culprits: list[str], env: Env, capsys: pytest.CaptureFixture
) -> None:
    assert_refused(build(env), culprits, capsys, watch=[env.tmp])


def test_missing_data_dir_is_refused_before_output(env: Env) -> None:
    environ = {**os.environ, "DUSK_DATA_DIR": str(env.tmp / "no-such-dir")}
    done = run_dusk(["data", "list"], env=environ)
    check_refusal(done.returncode, done.stderr, ["DUSK_DATA_DIR", "no-such-dir"])
    assert done.stdout == ""  # not even the table's header


def test_force_replaces_outputs(env: Env, capsys) -> None:
    existing = env.tmp / "existing.jsonl"
    argv = env.mix(f"- {{dataset: {env.ok}}}", "--out", str(existing), "--force")
    assert main(argv) == 0
    assert json.loads(existing.read_text())["text"] == "hello world"
    report = env.tmp / "report.json"
    report.write_text("old")
    argv = env.decon(env.ok, "--out", str(existing), "--report", str(report), "--tasks", "none", "--force")
    assert main(argv) == 0
    total = json.loads(report.read_text())["total"]
    assert (total["in"], total["out"]) == (1, 1)
    assert sorted(p.name for p in env.tmp.iterdir()) == [
        "a_dir",
        "existing.jsonl",
        "mix.yaml",
        "ok.jsonl",
        "report.json",
    ]


def test_byte_order_mark_is_accepted(env: Env, capsys) -> None:
    path = env.file("bom.jsonl", b'\xef\xbb\xbf{"text": "with a BOM"}\n')
    assert main(["data", "show", path]) == 0
    assert "with a BOM" in capsys.readouterr().out
