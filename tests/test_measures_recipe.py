"""Measure stages in a recipe (tiny model, real data): the runner passes stage artifacts and data stages to them,
the store keeps their tables, and the report shows each table with the generated lines under it."""

from pathlib import Path

from recipe_fixtures import real_data_dir

from dusk.recipe import load_recipe
from dusk.report.data import build_report
from dusk.report.write import write_report
from dusk.runner import run_recipe
from dusk.store import open_store

RECIPE = """
name: measures
defaults:
  sft: {max_steps: 2, seq_len: 160, batch_size: 2, eval_size: 0, progress: false, lr: 1.0e-3}
  dpo: {max_steps: 2, seq_len: 160, batch_size: 2, eval_size: 0, progress: false, lr: 1.0e-3}
  sdpo: {max_steps: 1, seq_len: 160, batch_size: 2, eval_size: 0, progress: false, lr: 1.0e-3}
stages:
  mix_a: {kind: mix, sources: [{dataset: alpaca_gpt4, max_examples: 8}]}
  sft: {kind: sft, model: tiny-llama, data: mix_a}
  prefs: {kind: mix, sources: [{dataset: ultrafeedback, max_examples: 8}]}
  dpo: {kind: dpo, from: sft, data: prefs}
  sdpo: {kind: sdpo, from: sft, data: prefs, steps: 2}
  ppl: {kind: perplexity, models: [tiny-llama, sft], data: tinyshakespeare, seq_len: 32, sequences: 4, title: PPL}
  loss: {kind: heldout, models: [tiny-llama, sft], data: [alpaca_gpt4, gsm8k_train], exclude: [mix_a], examples: 4,
         seq_len: 160}
  prefs_heldout: {kind: heldout, models: [sft, dpo, sdpo], data: [ultrafeedback], exclude: [prefs], examples: 4,
                  seq_len: 160}
"""


def test_measure_stages_in_a_recipe_and_their_report(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    recipe_path = tmp_path / "measures.yaml"
    recipe_path.write_text(RECIPE)
    summary = run_recipe(load_recipe(recipe_path), tmp_path / "run", show_progress=False)
    assert set(summary.states.values()) == {"ran"}
    data = build_report(open_store(tmp_path / "run", must_exist=True))
    tables = {table.stage: table for table in data.measures}
    assert list(tables) == ["ppl", "loss", "prefs_heldout"]
    assert [row.label for row in tables["ppl"].rows] == ["tiny-llama", "sft"]
    assert tables["ppl"].title == "PPL" and tables["ppl"].rows[1].estimates["nll_diff"].stderr is not None
    assert tables["loss"].settings["excluded_as_training_data"]["alpaca_gpt4"] >= 8  # the SFT mixture's records
    labels = [row.label for row in tables["prefs_heldout"].rows]
    assert labels == ["sft", "dpo", "sdpo", "sdpo step-1", "sdpo step-2"]
    md, _html = write_report(open_store(tmp_path / "run", must_exist=True), tmp_path / "report")
    text = md.read_text()
    assert "### PPL" in text and "paired difference from tiny-llama: sft " in text
    assert "ultrafeedback margin, paired difference from dpo: sdpo " in text
    assert "| sdpo step-2 (vs sdpo step-1, its step's reference) |" in text
    assert (tmp_path / "report" / "measures.png").is_file()
