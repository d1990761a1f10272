"""Every stage kind a recipe can name, by name; an unknown name raises with the list of known kinds.

python -c "from dusk.stages.registry import KINDS; print(sorted(KINDS))"
"""

from dusk.errors import DuskError
from dusk.stages.contamination import CONTAMINATION
from dusk.stages.data import DECONTAMINATE, MIX
from dusk.stages.evaluate import EVAL
from dusk.stages.kind import StageKind
from dusk.stages.measures import MEASURE_KINDS
from dusk.stages.merge import MERGE
from dusk.stages.train import TRAIN_KINDS
from dusk.stages.upscale import UPSCALE

KINDS: dict[str, StageKind] = {
    kind.name: kind for kind in [UPSCALE, EVAL, *TRAIN_KINDS, MERGE, MIX, DECONTAMINATE, CONTAMINATION, *MEASURE_KINDS]
}


def get_kind(name: str) -> StageKind:
    """The stage kind called `name`, or an error listing the known kinds."""
    if name not in KINDS:
        raise DuskError(f"unknown stage kind {name!r}; known kinds: {', '.join(sorted(KINDS))}")
    return KINDS[name]
