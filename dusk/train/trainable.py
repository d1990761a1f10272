"""Which parameters a training stage trains (`--trainable all|new|layers:A-B`): the spec, and the decoder layers it
leaves trainable in a given model (`new` = the layers `dusk upscale --expand` added, from dusk_upscale.json).

    python -c "from dusk.train.trainable import parse_trainable; print(parse_trainable('layers:2-5'))"
"""

import json
import re
from pathlib import Path

from dusk.errors import DuskError

TRAINABLE_LAYERS = re.compile(r"^layers:(?P<a>\d+)-(?P<b>\d+)$")


def parse_trainable(spec: str) -> tuple[str, tuple[int, int] | None]:
    """('all' | 'new' | 'layers', (A, B) for layers:A-B); a ValueError names the spec and the accepted forms."""
    if spec in ("all", "new"):
        return spec, None
    match = TRAINABLE_LAYERS.match(spec)
    if not match:
        raise ValueError(f"--trainable {spec!r}: expected all, new, or layers:A-B (decoder layers A to B, inclusive)")
    first, last = int(match["a"]), int(match["b"])
    if first > last:
        raise ValueError(f"--trainable {spec}: A must not be above B (layers:A-B is inclusive)")
    return "layers", (first, last)


def check_trainable_model(model: str, spec: str) -> None:
    """The --trainable spec, and, when the model is a directory already there, that it has those layers (a model
    that is a recipe stage's output is checked when it is loaded)."""
    from dusk.models.builtin import BUILTIN_MODELS

    kind, _bounds = parse_trainable(spec)
    if kind == "new" and model in BUILTIN_MODELS:
        raise DuskError(
            f"--trainable new: {model} is a built-in model, not one made by `dusk upscale --expand`, so it has no "
            "new layers (use --trainable layers:A-B)"
        )
    path = Path(model).expanduser()
    if kind != "all" and (path / "config.json").is_file():
        trainable_layers(path, spec)


def trainable_layers(model_dir: Path, spec: str) -> set[int] | None:
    """The decoder layer indices `--trainable` leaves trainable (None: every parameter), checked against the model.

    `new` reads `new_layers` from the model's dusk_upscale.json (written by `dusk upscale --expand`).
    """
    from dusk.models.io import read_config  # imports torch: not while `dusk --help` builds the flags

    kind, bounds = parse_trainable(spec)
    num_layers = read_config(model_dir).get("num_hidden_layers")
    if kind == "all":
        return None
    if kind == "layers":
        first, last = bounds
        if not isinstance(num_layers, int) or last >= num_layers:
            raise DuskError(f"--trainable {spec}: the model {model_dir} has layers 0 to {_last(num_layers)}")
        return set(range(first, last + 1))
    record = Path(model_dir) / "dusk_upscale.json"
    if not record.is_file():
        raise DuskError(
            f"--trainable new: {model_dir} has no dusk_upscale.json, so it has no new layers "
            "(make it with `dusk upscale --expand every:K`, or use --trainable layers:A-B)"
        )
    try:
        new = json.loads(record.read_text()).get("new_layers")
    except (OSError, ValueError, AttributeError) as exc:
        raise DuskError(f"--trainable new: {record}: not readable as JSON ({exc})") from exc
    if not new or not all(isinstance(i, int) and 0 <= i < (num_layers or 0) for i in new):
        raise DuskError(
            f"--trainable new: {record} lists no new layers of this model (new_layers: {new!r}); only "
            "`dusk upscale --expand` adds layers that start as the identity"
        )
    return set(new)


def _last(num_layers: object) -> str:
    return str(num_layers - 1) if isinstance(num_layers, int) else "?"
