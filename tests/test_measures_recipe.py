"""Measure stages in a recipe (tiny model, real data): the runner passes stage artifacts and data stages to them,
the store keeps their tables, and the report shows each table with the generated lines under it."""

from pathlib import Path

from recipe_fixtures import real_data_dir

from dusk.recipe import load_recipe
from dusk.recipe_commands import format_run, run_results
from dusk.report.data import build_report
from dusk.report.write import write_report
from dusk.runner import plan_text, run_recipe
from dusk.store import open_store

RECIPE = """
name: measures
defaults:
  sft: {max_steps: 2, seq_len: 160, batch_size: 2, eval_size: 2, eval_every: 1, progress: false, lr: 1.0e-3}
  dpo: {max_steps: 2, seq_len: 160, batch_size: 2, eval_size: 0, progress: false, lr: 1.0e-3}
  sdpo: {max_steps: 1, seq_len: 160, batch_size: 2, eval_size: 0, progress: false, lr: 1.0e-3}
stages:
  mix_a: {kind: mix, sources: [{dataset: alpaca_gpt4, max_examples: 8}]}
  sft: {kind: sft, model: tiny-llama, data: mix_a}
  prefs: {kind: mix, sources: [{dataset: ultrafeedback, max_examples: 8}]}
  dpo: {kind: dpo, from: sft, data: prefs}
  sdpo: {kind: sdpo, from: sft, data: prefs, steps: 2}
  merged: {kind: merge, models: [dpo, sdpo]}
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
    models = {entry.stage: entry for entry in data.models}  # every model directory, with its card's summary
    assert set(models) == {"sft", "dpo", "sdpo", "merged"}
    assert models["merged"].summary == "a merge of the parents' weights" and models["merged"].card
    assert models["sdpo"].path.endswith("sdpo/final")
    assert models["sft"].summary == "supervised fine-tuning of the parent"  # training outputs get their cards too
    curve = data.curves["sft"].detail["eval_curve"]  # held-out loss during training, each point with its stderr
    assert [point[0] for point in curve] == [0, 1, 2] and all(point[2] > 0 for point in curve)
    assert (tmp_path / "report" / "heldout_curves.png").is_file()
    assert "| merged | merge | a merge of the parents' weights | [card](" in text
    store = open_store(tmp_path / "run", must_exist=True)
    printed = format_run(run_results(store, None))  # dusk results lists every cell of a measure table
    lines = printed.splitlines()
    assert any(line.split()[:2] == ["sft", "nll_diff"] and "±" in line for line in lines)
    assert any(line.split()[:2] == ["sdpo", "step-2"] and "ultrafeedback:margin" in line for line in lines)


RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def test_shipped_recipes_measure_each_effect(tmp_path: Path, monkeypatch) -> None:
    """The main job measures the DUS drop and recovery, SFT per domain and DPO/sDPO with measure stages, and runs H6
    on the base and the final model only; the ablation recipe (cpu budget) has the same measures. Both plan."""
    monkeypatch.setenv("DUSK_DATA_DIR", str(real_data_dir()))
    mini = load_recipe(RECIPES / "solar-mini.yaml")
    kinds = {name: stage.kind for name, stage in mini.stages.items()}
    assert [n for n, k in kinds.items() if k == "eval"] == ["base_eval", "final_eval"]
    assert mini.stages["ppl_dus"].refs["models"] == ("dus", "pretrain")
    assert set(mini.stages["heldout_sft"].refs["models"]) == {"sft_general", "sft_math", "sft_merged"}
    assert mini.stages["heldout_dpo"].refs["models"] == ("sft_merged", "dpo", "sdpo")
    assert "perplexity" in kinds.values() and "contamination" in kinds.values()
    ablation = load_recipe(RECIPES / "solar-ablation.yaml", ["budget=cpu"])
    assert {"heldout_sft", "heldout_dpo"} <= set(ablation.stages)
    for recipe, run_dir in ((mini, tmp_path / "mini"), (ablation, tmp_path / "ablation")):
        assert plan_text(recipe, run_dir).splitlines()[-1].endswith(f"{len(recipe.stages)} to run")
