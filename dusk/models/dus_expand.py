"""Identity-initialised block expansion (LLaMA-Pro, Wu et al. 2024): `--expand every:K`.

After every K layers of the stack, insert a copy of the layer before it whose residual-writing modules (attention
output projection and MLP down projection, from dusk.models.architecture.RESIDUAL_WRITERS) are zero. Such a layer
adds nothing to the residual stream, so the expanded model computes exactly the base model's function; training can
then grow the new layers alone. With n layers, floor(n / K) layers are inserted, after layers K, 2K, ...; when K
does not divide n, the last n mod K layers get no copy after them (30 layers, every:4 -> 7 copies, 37 layers).

    dusk upscale smollm2-135m --expand every:2 --out runs/smollm2-pro     # 30 -> 45 layers
"""

import re

from dusk.errors import DuskError
from dusk.models.dus_layers import OutputLayer

EXPAND_SPEC = re.compile(r"^every:(?P<k>-?\d+)$")


def parse_expand(spec: str) -> int:
    """K of `every:K`; refuse any other form."""
    match = EXPAND_SPEC.match(str(spec).strip())
    if not match:
        raise DuskError(f"--expand {spec!r}: expected every:K (insert an identity copy after every K layers)")
    return int(match["k"])


def check_expand(spec: str, num_layers: int) -> int:
    """K, checked against the layer count: 1 <= K <= n (K > n would insert nothing)."""
    k = parse_expand(spec)
    if not 1 <= k <= num_layers:
        raise DuskError(
            f"--expand {spec}: K must be in [1, {num_layers}] for a model with {num_layers} layers "
            f"(K={k} inserts {'nothing' if k > num_layers else 'no sensible number of layers'})"
        )
    return k


def expand_layers(layers: list[OutputLayer], k: int, zeroed: tuple[str, ...]) -> tuple[list[OutputLayer], list[int]]:
    """The stack with a zeroed copy after every k layers, and the output indices of the inserted layers."""
    out: list[OutputLayer] = []
    new: list[int] = []
    for index, layer in enumerate(layers, start=1):
        out.append(layer)
        if index % k == 0:
            new.append(len(out))
            out.append(OutputLayer(layer.terms, zeroed))
    return out, new
