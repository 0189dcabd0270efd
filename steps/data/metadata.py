"""Read and check ``release.yaml``, the metadata of a release-data directory."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from steps.data.schemas import BUILTIN_PREFIX, resolve_schema
from steps.data.yaml_input import load_yaml_file
from steps.runtime.errors import DataError

RELEASE_FILE = "release.yaml"
FORMATS: dict[str, Literal["csv", "parquet"]] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
SEMVER = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_FIXES = {
    "name": "use lowercase letters, digits and '-', starting with a letter or digit, e.g. acme-prices",
    "version": "use semantic versioning MAJOR.MINOR.PATCH, e.g. 1.4.0",
    "description": "write one line of text",
    "tables": "list the tables, each with name, file, schema and primaryKey",
    "tables.name": "use lowercase letters, digits and '_', starting with a letter, e.g. daily_prices",
    "tables.file": "give a path relative to the release directory, ending in .csv or .parquet",
    "tables.schema": "give builtin:<name> or the relative path of a pandera YAML schema",
    "tables.primaryKey": "give a non-empty list of column names, e.g. [product_id]",
}
_TABLE_KEYS = "name, file, schema, primaryKey"
_TOP_KEYS = "name, version, description, tables"


class TableSpec(BaseModel):
    """One table of the release: its file, its pandera schema and its primary key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)
    file: str = Field(min_length=1)
    schema_ref: str = Field(alias="schema", min_length=1)
    primary_key: list[str] = Field(alias="primaryKey", min_length=1)

    @property
    def format(self) -> Literal["csv", "parquet"]:
        """``csv`` or ``parquet``, from the file's suffix."""
        return FORMATS[PurePosixPath(self.file).suffix.lower()]


class ReleaseMetadata(BaseModel):
    """The content of ``release.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=63)
    version: str = Field(pattern=SEMVER)
    description: str = ""
    tables: list[TableSpec] = Field(min_length=1)


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _fix_for(loc: tuple[int | str, ...], kind: str) -> str:
    if kind == "extra_forbidden":
        allowed = _TABLE_KEYS if loc and loc[0] == "tables" else _TOP_KEYS
        return f"remove it or fix its spelling; allowed keys: {allowed}"
    field = ".".join(str(part) for part in loc if not isinstance(part, int))
    return _FIXES.get(field, "see examples/release-data/release.yaml")


def _schema_problems(errors: Sequence[ErrorDetails]) -> list[str]:
    problems = []
    for error in errors:
        loc = tuple(error["loc"])
        kind = error["type"]
        given = error.get("input")
        message = {"missing": "required key missing", "string_pattern_mismatch": "has the wrong form"}.get(
            kind, error["msg"]
        )
        if kind not in {"missing", "extra_forbidden"} and not isinstance(given, dict | list):
            message += f" (got {given!r})"
        problems.append(f"{_key_path(loc)}: {message}; fix: {_fix_for(loc, kind)}")
    return problems


def _path_problem(data_dir: Path, value: str, where: str) -> str | None:
    pure = PurePosixPath(value)
    if pure.is_absolute() or "\\" in value or re.match(r"^[A-Za-z]:", value):
        return f"{where}: '{value}' is not a relative path; fix: write it relative to the release directory"
    if ".." in pure.parts:
        return f"{where}: '{value}' contains '..'; fix: keep the file inside the release directory"
    target = data_dir / value
    if not target.resolve().is_relative_to(data_dir.resolve()):
        return f"{where}: '{value}' leads outside the release directory; fix: copy the file into it"
    if not target.is_file():
        return f"{where}: '{value}' does not exist; fix: add the file or correct the path"
    return None


def _table_problems(data_dir: Path, tables: list[Any]) -> list[str]:
    """Checks pydantic cannot make: file system, schema content, duplicates. Run on the raw YAML."""
    problems: list[str] = []
    first_index: dict[str, int] = {}
    for index, table in enumerate(tables):
        if not isinstance(table, dict):
            continue
        where = f"tables[{index}]"
        name = table.get("name")
        if isinstance(name, str):
            if name in first_index:
                problems.append(
                    f"{where}.name: '{name}' is also the name of tables[{first_index[name]}]; "
                    "fix: give each table a unique name"
                )
            first_index.setdefault(name, index)
        file = table.get("file")
        if isinstance(file, str) and file:
            problem = _path_problem(data_dir, file, f"{where}.file")
            if problem is None and PurePosixPath(file).suffix.lower() not in FORMATS:
                problem = f"{where}.file: '{file}' is neither .csv nor .parquet; fix: {_FIXES['tables.file']}"
            if problem:
                problems.append(problem)
        key = table.get("primaryKey")
        if isinstance(key, list) and len(set(map(str, key))) != len(key):
            problems.append(f"{where}.primaryKey: {key} repeats a column; fix: list each column once")
        ref = table.get("schema")
        if not isinstance(ref, str) or not ref:
            continue
        if not ref.startswith(BUILTIN_PREFIX):
            problem = _path_problem(data_dir, ref, f"{where}.schema")
            if problem:
                problems.append(problem)
                continue
        try:
            schema = resolve_schema(ref, data_dir)
        except DataError as exc:
            problems.append(f"{where}.schema: {exc.summary}")
            continue
        if isinstance(key, list):
            undeclared = [column for column in key if column not in schema.columns]
            if undeclared:
                problems.append(
                    f"{where}.primaryKey: {undeclared} not declared in schema {ref}; "
                    f"fix: use columns of the schema ({', '.join(schema.columns)})"
                )
    return problems


def load_release(data_dir: Path) -> ReleaseMetadata:
    """Load and check ``release.yaml`` in ``data_dir``, files and schemas included.

    Args:
        data_dir: The release-data directory.

    Returns:
        The typed metadata.

    Raises:
        DataError: Listing every problem found; the summary names the first and the count.
    """
    data_dir = Path(data_dir)
    path = data_dir / RELEASE_FILE
    if not path.is_file():
        raise DataError(f"{RELEASE_FILE} not found in {data_dir}; add one (see examples/release-data/{RELEASE_FILE})")
    document = load_yaml_file(path, RELEASE_FILE)
    if not isinstance(document, dict):
        raise DataError(f"{RELEASE_FILE} must be a mapping with keys {_TOP_KEYS}; see examples/release-data")
    problems: list[str] = []
    release: ReleaseMetadata | None = None
    try:
        release = ReleaseMetadata.model_validate(document)
    except ValidationError as exc:
        problems += _schema_problems(exc.errors(include_url=False))
    tables = document.get("tables")
    if isinstance(tables, list):
        problems += _table_problems(data_dir, tables)
    if problems or release is None:
        count = f"{len(problems)} problems" if len(problems) != 1 else "1 problem"
        detail = "\n".join([f"{path}: {count}", *(f"- {problem}" for problem in problems)])
        raise DataError(f"{RELEASE_FILE}: {count}; {problems[0]}", detail)
    return release


def validate_metadata(data_dir: str) -> list[dict[str, Any]]:
    """Step function: check ``release.yaml`` and list its tables for the validation fan-out.

    Args:
        data_dir: The release-data directory.

    Returns:
        One ``{"name", "file", "schema", "primary_key", "format"}`` per table, in file order.

    Raises:
        DataError: ``release.yaml`` is missing or wrong (every problem is in the error's detail).
    """
    release = load_release(Path(data_dir))
    return [
        {
            "name": table.name,
            "file": table.file,
            "schema": table.schema_ref,
            "primary_key": list(table.primary_key),
            "format": table.format,
        }
        for table in release.tables
    ]


__all__ = [
    "FORMATS",
    "RELEASE_FILE",
    "ReleaseMetadata",
    "TableSpec",
    "load_release",
    "validate_metadata",
]
