"""Merge methods by name: every method module registered (basic, selective, spherical), and `get_method`.

The semantics follow mergekit 0.1.5 exactly, so the same config gives the same numbers.

    python -c "from dusk.merge.methods import METHODS; print(sorted(METHODS))"
"""

from dusk.errors import DuskError
from dusk.merge import methods_basic, methods_selective, methods_spherical
from dusk.merge.registry import METHODS, REQUIRED, Group, MergeMethod, Param, register

FAMILIES = (methods_basic, methods_selective, methods_spherical)  # importing them registered their methods

__all__ = ["FAMILIES", "METHODS", "REQUIRED", "Group", "MergeMethod", "Param", "get_method", "register"]


def get_method(name: str) -> MergeMethod:
    """The registered method `name`, or one line listing the known ones."""
    if name not in METHODS:
        raise DuskError(f"unknown merge method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]
