"""Reading YAML that data owners write (``release.yaml``, pandera schema files) with errors they can act on."""

from pathlib import Path
from typing import Any

import yaml

from steps.runtime.errors import DataError


def load_yaml_file(path: Path, shown_as: str) -> Any:
    """Parse ``path``, naming it ``shown_as`` in messages.

    Raises:
        DataError: not UTF-8, or not valid YAML (with line and column when PyYAML knows them).
    """
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{shown_as} is not UTF-8 text ({exc.reason}); save it as UTF-8") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise DataError(f"{shown_as}: YAML {problem}{where}; fix the syntax", f"{path}: {exc}") from exc


__all__ = ["load_yaml_file"]
