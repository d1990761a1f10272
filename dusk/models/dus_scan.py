"""Layer scan for Depth Up-Scaling: how far each layer moves the hidden state, and how far apart any two depths are.

h_i is the hidden state entering layer i (h_0 = the embeddings, h_n = the last layer's output, before the final
norm). The angular distance of two states is arccos(cos(x, y)) / pi, in [0, 1], averaged over every token of the
calibration text (Gromov et al. 2024). The scan reports

    layer distance   d(h_i, h_{i+1})       how much layer i changes its input
    depth distance   D[i][j] = d(h_i, h_j) for every pair of depths

A stacking [0, a) + [b, n) feeds the second copy's first layer (depth b) with h_a instead of h_b: its seam distance
is D[a][b]. SOLAR's drop m is a = n - m, b = m.

    dusk upscale smollm2-135m --scan --samples 16 --out scan.json
"""

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dusk.errors import DuskError

DEFAULT_DATA = "tinyshakespeare"
DEFAULT_SAMPLES = 8
DEFAULT_SEQ_LEN = 128


@dataclass(frozen=True)
class LayerScan:
    """The scan of one model on one calibration text."""

    model: str
    data: str
    samples: int
    tokens: int
    layer_distance: list[float]  # d(h_i, h_{i+1}) per layer i
    depth_distance: list[list[float]]  # D[i][j] = d(h_i, h_j), i, j in [0, n]

    @property
    def num_layers(self) -> int:
        return len(self.layer_distance)

    def seam_distance(self, a: int, b: int) -> float:
        """The seam of [0, a) + [b, n): the second copy's first layer gets h_a where it was trained on h_b."""
        return self.depth_distance[a][b]

    def solar_seams(self) -> list[dict]:
        """SOLAR's drop m for every m that up-scales (1 <= m < n/2): the layer count and the seam distance D[n-m][m]."""
        n = self.num_layers
        return [
            {"drop": m, "layers": 2 * (n - m), "seam_distance": self.seam_distance(n - m, m)}
            for m in range(1, (n + 1) // 2)
        ]

    def to_json(self) -> dict:
        return {**asdict(self), "solar_seams": self.solar_seams()}


def angular_distance_sums(hidden: torch.Tensor) -> torch.Tensor:
    """Sum over tokens of arccos(cos) / pi between every pair of depths; `hidden` is (depths, tokens, width)."""
    unit = torch.nn.functional.normalize(hidden.double(), dim=-1)
    cosine = torch.einsum("itd,jtd->ijt", unit, unit).clamp(-1.0, 1.0)
    return (torch.arccos(cosine) / math.pi).sum(dim=-1)


def calibration_batches(tokenizer, data: str, samples: int, seq_len: int) -> list[torch.Tensor]:
    """`samples` sequences of `seq_len` token ids cut from the start of the dataset's text, records joined."""
    from dusk.data.registry import load_records

    needed, ids = samples * seq_len, []
    for record in load_records(data):
        text = record.get("text") or " ".join(str(value) for value in record.values())
        ids += tokenizer(text + "\n\n", add_special_tokens=False)["input_ids"]
        if len(ids) >= needed:
            break
    if len(ids) < needed:
        raise DuskError(
            f"--data {data}: has {len(ids)} tokens, fewer than --samples {samples} x {seq_len}; "
            "give fewer samples or a longer text"
        )
    return [torch.tensor([ids[i * seq_len : (i + 1) * seq_len]]) for i in range(samples)]


def _layers(model) -> list:
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise DuskError(f"{type(model).__name__}: no `model.layers` list of decoder layers to scan")
    return list(layers)


def hidden_states(model, input_ids: torch.Tensor) -> torch.Tensor:
    """(n + 1, tokens, width): the input of every layer, then the last layer's output (before the final norm)."""
    layers, states = _layers(model), []

    def grab_input(_module, args, kwargs):
        states.append((args[0] if args else kwargs["hidden_states"])[0].detach())

    def grab_output(_module, _args, output):
        states.append((output[0] if isinstance(output, tuple) else output)[0].detach())

    hooks = [layer.register_forward_pre_hook(grab_input, with_kwargs=True) for layer in layers]
    hooks.append(layers[-1].register_forward_hook(grab_output))
    try:
        with torch.no_grad():  # the decoder stack only: the lm head is not needed
            getattr(model, "model", model)(input_ids=input_ids, use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack(states)


def scan_model(
    model_arg: str,
    model_dir: Path,
    data: str = DEFAULT_DATA,
    samples: int = DEFAULT_SAMPLES,
    seq_len: int = DEFAULT_SEQ_LEN,
) -> LayerScan:
    """Run the model on the calibration text and average the angular distances over all tokens."""
    from tqdm import tqdm

    from dusk.models.io import load_model, load_tokenizer

    model, tokenizer = load_model(model_dir), load_tokenizer(model_dir)
    sums, tokens = None, 0
    for input_ids in tqdm(calibration_batches(tokenizer, data, samples, seq_len), desc="scan", disable=None):
        batch = angular_distance_sums(hidden_states(model, input_ids))
        sums = batch if sums is None else sums + batch
        tokens += input_ids.shape[1]
    depth = (sums / tokens).tolist()
    n = len(depth) - 1
    return LayerScan(model_arg, data, samples, tokens, [depth[i][i + 1] for i in range(n)], depth)


def check_scan_data(data: str | None) -> str:
    """The calibration dataset name or file (the default when None), refused up front if it names nothing."""
    from dusk.data.registry import check_source

    data = DEFAULT_DATA if data is None else data
    try:
        check_source(data)
    except DuskError as exc:
        raise DuskError(f"--data {data}: {exc}") from exc
    return data


def check_scan_args(samples: int, seq_len: int = DEFAULT_SEQ_LEN) -> None:
    """Refuse a sample count or sequence length below 1 before any model is loaded."""
    if samples < 1:
        raise DuskError(f"--samples {samples}: must be at least 1")
    if seq_len < 2:
        raise DuskError(f"seq_len {seq_len}: must be at least 2")


def format_scan(scan: LayerScan) -> str:
    """The scan as two plain-text tables: per layer, then SOLAR's seam for every drop m."""
    lines = [f"{scan.model}: {scan.num_layers} layers, {scan.tokens} tokens of {scan.data}", "layer  d(in, out)"]
    lines += [f"{i:>5}  {d:.4f}" for i, d in enumerate(scan.layer_distance)]
    lines += ["", "drop  layers  seam d(h[n-m], h[m])"]
    lines += [f"{s['drop']:>4}  {s['layers']:>6}  {s['seam_distance']:.4f}" for s in scan.solar_seams()]
    return "\n".join(lines)


def write_scan(scan: LayerScan, out: Path) -> Path:
    """Write the scan's JSON atomically."""
    from dusk.atomic import atomic_output_file

    with atomic_output_file(out) as tmp:
        Path(tmp).write_text(json.dumps(scan.to_json(), indent=2) + "\n")
    return out


@dataclass(frozen=True)
class Stacking:
    """[0, a) + [b, n) of one model, with its seam distance from a scan."""

    a: int
    b: int
    seam_distance: float

    def describe(self, num_layers: int) -> str:
        return (
            f"[0, {self.a}) + [{self.b}, {num_layers}) ({self.a + num_layers - self.b} layers, "
            f"seam d(h[{self.a}], h[{self.b}]) = {self.seam_distance:.4f})"
        )


def check_target_layers(layers: int | None, num_layers: int) -> int:
    """`--layers L` for `--drop auto`: given, and reachable as a + n - b with 1 <= a <= n, 0 <= b < n."""
    if layers is None:
        raise DuskError("--drop auto needs --layers L (the output layer count to choose a stacking for)")
    if not 2 <= layers <= 2 * num_layers:
        raise DuskError(
            f"--layers {layers}: no stacking [0, a) + [b, {num_layers}) of a {num_layers}-layer model has "
            f"{layers} layers (reachable: 2 to {2 * num_layers})"
        )
    return layers


def rank_stackings(scan: LayerScan, layers: int) -> list[Stacking]:
    """Every [0, a) + [b, n) with `layers` output layers, smallest seam distance first (ties: the larger a)."""
    n = scan.num_layers
    check_target_layers(layers, n)
    candidates = [
        Stacking(a, a + n - layers, scan.seam_distance(a, a + n - layers))
        for a in range(1, n + 1)
        if 0 <= a + n - layers < n
    ]
    return sorted(candidates, key=lambda s: (s.seam_distance, -s.a))


def stacked_input_distance(
    base_dir: Path, stacked_dir: Path, position: int, depth: int, data: str = DEFAULT_DATA, samples: int = 2
) -> float:
    """How far from home the stacked model's layer `position` runs: the mean angular distance between its input and
    the input that its source layer `depth` gets in the base model, on the same calibration tokens.

    For a stacking [0, a) + [b, n) this is the scan's seam distance D[a][b] at position a, depth b; after a blended
    window of K layers, position a + K and depth b + K compare plain and blended stacking at the same place.
    """
    from dusk.models.io import load_model, load_tokenizer

    base, stacked = load_model(base_dir), load_model(stacked_dir)
    total, tokens = 0.0, 0
    for input_ids in calibration_batches(load_tokenizer(base_dir), data, samples, DEFAULT_SEQ_LEN):
        pair = torch.stack([hidden_states(stacked, input_ids)[position], hidden_states(base, input_ids)[depth]])
        total += angular_distance_sums(pair)[0, 1].item()
        tokens += input_ids.shape[1]
    return total / tokens
