"""Seam blending for SOLAR stacking: `--blend K` cross-fades the two copies across the seam.

A stacking [s0, a) + [b, e) of one model with b < a places two copies of the model at a depth shift of s = a - b:
at output position p (counted from 0) the first copy holds source layer s0 + p, the second copy source layer
s0 + p - s. Plain DUS switches from the first copy to the second at the seam, position q = a - s0. Blending K
replaces the 2K layers at positions q - K .. q + K - 1 by the weight interpolation

    W'[p] = (1 - t) * W[s0 + p] + t * W[s0 + p - s],   t = (p - (q - K) + 1) / (2K + 1)

so t rises from 1/(2K+1) to 2K/(2K+1) and the layers drift from the first copy to the second instead of jumping.
Every tensor of the layer (projections and norms) is interpolated, in float32, then stored in the output dtype.
Both copies must exist across the window: K <= min(b, n - a, a - s0, e - b); for SOLAR's drop m that is K <= m.

    dusk upscale smollm2-135m --drop 8 --blend 2 --out runs/smollm2-dus-blend
"""

from dusk.errors import DuskError
from dusk.models.dus_layers import OutputLayer


def max_blend(first: tuple[int, int], second: tuple[int, int], num_layers: int) -> int:
    """The largest K for which both copies have a layer at every position of the window."""
    (s0, a), (b, e) = first, second
    return min(b, num_layers - a, a - s0, e - b)


def check_blend(k: int, first: tuple[int, int], second: tuple[int, int], num_layers: int, same_model: bool) -> None:
    """Refuse a blend that is not K >= 1 within the window both copies cover, or not on two slices of one model."""
    if k < 1:
        raise DuskError(f"--blend {k}: must be at least 1 (the layers on each side of the seam to interpolate)")
    if not same_model:
        raise DuskError(f"--blend {k}: blends the two slices of one model (SOLAR stacking); the slices differ")
    (s0, a), (b, e) = first, second
    if b >= a:
        raise DuskError(
            f"--blend {k}: slices [{s0}, {a}) + [{b}, {e}) do not overlap (the second must start below {a}); "
            "there is no repeated depth to blend across"
        )
    limit = max_blend(first, second, num_layers)
    if k > limit:
        raise DuskError(
            f"--blend {k}: larger than the overlap at the seam of [{s0}, {a}) + [{b}, {e}): at most {limit} "
            "layers on each side have a counterpart in the other copy"
        )


def blend_layers(layers: list[OutputLayer], k: int, first: tuple[int, int], second: tuple[int, int]) -> list[int]:
    """Replace the 2k layers around the seam in place by the cross-fade; return their output positions."""
    (s0, a), (b, _e) = first, second
    seam, shift = a - s0, a - b
    model = layers[0].terms[0][1]
    window = list(range(seam - k, seam + k))
    for index, p in enumerate(window):
        t = (index + 1) / (2 * k + 1)
        layers[p] = OutputLayer(((1.0 - t, model, s0 + p), (t, model, s0 + p - shift)))
    return window
