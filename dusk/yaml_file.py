"""Read a user's YAML file (recipe, mixture, slices, merge or `--config` file) safely, with one-line errors.

python -c "from dusk.yaml_file import read_yaml; print(read_yaml('recipes/tiny.yaml', 'recipe')['name'])"
"""

from pathlib import Path
from typing import Any

import yaml

from dusk.errors import DuskError


def read_yaml_text(path: Path | str, what: str) -> tuple[Any, str]:
    """The YAML document in `path` (parsed with `yaml.safe_load`) and its text; `what` names the file's role.

    Errors are one line naming the file: unreadable, not UTF-8 (with the byte offset), or not valid YAML (with the
    line and column)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DuskError(f"{path}: not UTF-8 text (byte offset {exc.start}); a {what} is a UTF-8 YAML file") from exc
    except OSError as exc:
        raise DuskError(f"{path}: cannot read {what} ({exc.strerror or exc})") from exc
    try:
        return yaml.safe_load(text), text
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc) from exc


def read_yaml(path: Path | str, what: str) -> Any:
    """The YAML document in `path` (see `read_yaml_text`)."""
    return read_yaml_text(path, what)[0]


def yaml_error(path: Path, exc: yaml.YAMLError) -> DuskError:
    """One line naming the file, line and column of a YAML syntax error."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return DuskError(f"{path}: not valid YAML ({problem})")
    line, column = mark.line + 1, mark.column + 1
    return DuskError(f"{path}:{line}:{column}: not valid YAML: {problem} (line {line}, column {column})")
