"""The HTML report links each scored model's directory and each model's card by paths relative to the report's
folder (so they resolve from the page, wherever the run directory is), shows the card's account of what was done,
and shows a training stage's tracker run id only when the store records one."""

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

from recipe_fixtures import TinyRun, tiny_run  # noqa: F401

from dusk.report import build_report, write_report
from dusk.report.data import card_summary
from dusk.report.tables import TRACKER_HEADER
from dusk.store import Artifact, StageResult, TrainingSummary, open_store


class Links(HTMLParser):
    """Every <a href> of a page with its text."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "a":
            self._href = dict(attrs)["href"]

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self.links.append((self._href, data))
            self._href = None


def links_of(page: Path) -> dict[str, Path]:
    """Link text -> where the link leads, resolved from the page's folder as a browser would."""
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    found = {}
    for link, text in parser.links:
        assert not link.startswith("/") and "://" not in link, link  # relative, so the run directory can move
        found.setdefault(text, []).append((page.parent / unquote(link)).resolve())
    return found


def test_the_html_report_links_model_directories_and_cards(tiny_run: TinyRun, tmp_path: Path) -> None:  # noqa: F811
    store = open_store(tiny_run.run_dir)
    data = build_report(store, tiny_run.summary.run_id)
    out = tmp_path / "somewhere" / "report"  # not inside the run directory: links still reach it
    _markdown, page = write_report(store, out, tiny_run.summary.run_id)
    links = links_of(page)
    text = page.read_text(encoding="utf-8")
    for table in data.tables:
        for row in table.rows:
            assert row.model_dir and Path(row.model_dir).resolve() in links[row.label], (table.name, row.label)
            assert (Path(row.model_dir) / "README.md").is_file()
    assert {entry.stage for entry in data.models} >= {"dus", "pretrain", "sft_v1", "sdpo", "final"}
    for entry in data.models:
        assert Path(entry.path).resolve() in links[entry.stage] and Path(entry.card).resolve() in links["README.md"]
        card, summary = card_summary(Path(entry.path))
        assert summary == entry.summary != "-" and f"{summary}</td>" in text.replace("&#x27;", "'")
    assert TRACKER_HEADER not in text  # the tiny recipe logs to no tracker
    assert links["sdpo"][0].name == "final"  # an sDPO stage's model is its final step's
    markdown = (out / "report.md").read_text()
    for entry in data.models:
        link = re.search(rf"^\| {re.escape(entry.stage)} \| .*\[card\]\(([^)]+)\)", markdown, re.M).group(1)
        assert (out / unquote(link)).resolve() == Path(entry.card).resolve()
    store.close()


def test_a_tracker_run_id_shows_only_when_recorded(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    store = open_store(run_dir)
    run_id = store.start_run("r", "r.yaml", "0" * 64, "", [], {}, str(run_dir), "0.1.0")
    recorded = {
        "sft_a": {"tracker": {"name": "wandb", "run_id": "3x7k2", "dir": "wandb/run-3x7k2"}},
        "sft_b": {"tracker": {"name": "tensorboard", "dir": "trackers/dusk"}},  # TensorBoard has no run id
        "sft_c": {},  # no tracker
    }
    for name, detail in recorded.items():
        model = run_dir / "artifacts" / name
        model.mkdir(parents=True)
        store.stage_started(run_id, name, 0, "sft", f"key-{name}", "ran", {}, {})
        summary = TrainingSummary(2, 1.0, 10, 1.0, None, [(1, 1.5), (2, 1.0)], detail)
        artifact = Artifact(f"key-{name}", name, "sft", str(model), "0" * 64, None)
        store.stage_completed(run_id, name, "ran", 1.0, artifact, StageResult(training=summary))
    models = {entry.stage: entry for entry in build_report(store, run_id).models}
    assert models["sft_a"].tracker_run == "wandb 3x7k2"
    assert models["sft_b"].tracker_run is None and models["sft_c"].tracker_run is None
    _markdown, page = write_report(store, tmp_path / "report", run_id)
    text = page.read_text(encoding="utf-8")
    assert f'<th class="text">{TRACKER_HEADER}</th>' in text and "wandb 3x7k2" in text
    for name in ("sft_b", "sft_c"):
        assert re.search(rf"{name}</a></td>(<td[^>]*>[^<]*</td>){{3}}<td class=\"text\">-</td>", text)
    store.close()


def test_the_settings_line_says_how_prompts_were_rendered(tmp_path: Path) -> None:
    store = open_store(tmp_path / "run")
    run_id = store.start_run("r", "r.yaml", "0" * 64, "", [], {}, str(tmp_path), "0.1.0")
    chat = {"apply_chat_template": True, "fewshot_as_multiturn": True, "system_instruction": "Be brief."}
    plain = {"apply_chat_template": False, "fewshot_as_multiturn": False, "system_instruction": None}
    for name, prompts in (("evals/chat", chat), ("evals/plain", plain)):
        store.stage_started(run_id, name, 0, "eval", f"key-{name}", "ran", {"model": "m"}, {})
        settings = {"mode": "harness", "subset": "tiny", "limit": None, "dtype": "float32", **prompts}
        artifact = Artifact(f"key-{name}", name, "eval", str(tmp_path), "0" * 64, None)
        store.stage_completed(run_id, name, "ran", 1.0, artifact, StageResult(settings=settings))
    lines = build_report(store, run_id).settings
    assert lines == [
        'mode harness, chat template (few-shot as turns), system instruction "Be brief.", subset tiny, dtype float32',
        "mode harness, subset tiny, dtype float32",
    ]
    store.close()
