"""Layer scan and --drop auto: distances are angular (arccos(cos)/pi), the stacking choice follows the seam distance."""

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from dusk.cli import main
from dusk.models.dus_scan import LayerScan, angular_distance_sums, hidden_states, rank_stackings, scan_model


def test_angular_distance_of_known_vectors() -> None:
    x = torch.tensor([[1.0, 0.0]])
    states = torch.stack([x, torch.tensor([[0.0, 2.0]]), -3 * x, 5 * x])
    sums = angular_distance_sums(states)
    assert sums[0, 1].item() == pytest.approx(0.5) and sums[0, 2].item() == pytest.approx(1.0)
    assert sums[0, 3].item() == pytest.approx(0.0, abs=1e-6) and sums[1, 2].item() == pytest.approx(0.5)


def test_hidden_states_are_the_layer_inputs(tiny_llama_4: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_4).eval()
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    ours = hidden_states(model, ids)
    with torch.no_grad():
        reference = model(ids, output_hidden_states=True).hidden_states
    assert ours.shape == (5, 5, 64)
    for i in range(4):  # transformers' last entry has the final norm applied; ours is the raw last output
        torch.testing.assert_close(ours[i], reference[i][0])
    assert not torch.allclose(ours[4], reference[4][0])


def test_scan_table(tiny_llama_4: Path) -> None:
    scan = scan_model("tiny", tiny_llama_4, samples=2)
    assert scan.tokens == 256 and scan.num_layers == 4
    depth = torch.tensor(scan.depth_distance)
    assert depth.shape == (5, 5) and torch.allclose(depth, depth.T) and depth.diagonal().abs().max() < 1e-6
    assert scan.layer_distance == [scan.depth_distance[i][i + 1] for i in range(4)]
    assert all(0 < d < 1 for d in scan.layer_distance)
    assert [s["drop"] for s in scan.solar_seams()] == [1]
    assert scan.solar_seams()[0]["seam_distance"] == scan.depth_distance[3][1]


def _synthetic_scan(n: int) -> LayerScan:
    """D[i][j] = |i - j| / n, except the pair (5, 1) made the closest seam for 8 output layers."""
    depth = [[abs(i - j) / n for j in range(n + 1)] for i in range(n + 1)]
    depth[5][1] = depth[1][5] = 0.01
    return LayerScan("m", "d", 1, 1, [depth[i][i + 1] for i in range(n)], depth)


def test_rank_stackings_picks_the_smallest_seam() -> None:
    ranked = rank_stackings(_synthetic_scan(6), 10)  # a + 6 - b = 10: b = a - 4
    assert [(s.a, s.b) for s in ranked][:1] == [(5, 1)]
    assert {(s.a, s.b) for s in ranked} == {(4, 0), (5, 1), (6, 2)}
    assert ranked[1].seam_distance == pytest.approx(4 / 6) and ranked[1].a == 6  # ties: the larger a first
    assert math.isclose(ranked[0].seam_distance, 0.01)


def test_scan_cli_writes_json(tiny_llama_4: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "scan.json"
    assert main(["upscale", str(tiny_llama_4), "--scan", "--samples", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = json.loads(out.read_text())
    assert table["tokens"] == 128 and len(table["depth_distance"]) == 5 and "seam d(h[n-m], h[m])" in printed


def test_drop_auto_records_scan_and_choice(tiny_llama_4: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "auto"
    argv = ["upscale", str(tiny_llama_4), "--drop", "auto", "--layers", "6", "--samples", "1", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / "dusk_upscale.json").read_text())
    scan = LayerScan(**{k: v for k, v in record["scan"].items() if k != "solar_seams"})
    ranked = rank_stackings(scan, 6)
    assert (record["choice"]["a"], record["choice"]["b"]) == (ranked[0].a, ranked[0].b)
    assert (record["runner_up"]["a"], record["runner_up"]["b"]) == (ranked[1].a, ranked[1].b)
    assert "chosen: [0, " in printed and "runner-up: [0, " in printed
    assert [s["layer_range"] for s in (x["sources"][0] for x in record["slices"])] == [
        [0, ranked[0].a],
        [ranked[0].b, 4],
    ]
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 6


@pytest.mark.slow
def test_smollm2_drop_auto_44_layers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "auto"
    argv = ["upscale", "smollm2-135m", "--drop", "auto", "--layers", "44", "--samples", "2", "--out", str(out)]
    assert main(argv) == 0
    record = json.loads((out / "dusk_upscale.json").read_text())
    scan = LayerScan(**{k: v for k, v in record["scan"].items() if k != "solar_seams"})
    ranked = rank_stackings(scan, 44)
    assert len(ranked) == 17 and all(r.a - r.b == 14 for r in ranked)
    assert (record["choice"]["a"], record["choice"]["b"]) == (ranked[0].a, ranked[0].b)
    assert [s["seam_distance"] for s in record["scan"]["solar_seams"] if s["drop"] == 8] == [scan.depth_distance[22][8]]
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 44
    assert f"chosen: [0, {ranked[0].a}) + [{ranked[0].b}, 30)" in capsys.readouterr().out
