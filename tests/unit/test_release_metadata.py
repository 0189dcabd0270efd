"""release.yaml checks: the example passes; every problem is collected with its key path and fix."""

import shutil
from pathlib import Path

import pandera.polars as pa
import polars as pl
import pytest

from steps.data.metadata import load_release, validate_metadata
from steps.runtime.errors import SUMMARY_LIMIT, DataError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "release-data"


@pytest.fixture
def release_dir(tmp_path: Path) -> Path:
    target = tmp_path / "release"
    shutil.copytree(EXAMPLE, target)
    return target


def write_release(directory: Path, text: str) -> None:
    (directory / "release.yaml").write_text(text)


def problems_of(directory: Path) -> DataError:
    with pytest.raises(DataError) as caught:
        load_release(directory)
    assert len(caught.value.summary) <= SUMMARY_LIMIT
    return caught.value


def test_example_lists_its_tables_for_the_fan_out():
    assert validate_metadata(str(EXAMPLE)) == [
        {
            "name": "products",
            "file": "products.csv",
            "schema": "schemas/products.yaml",
            "primary_key": ["product_id"],
            "format": "csv",
        },
        {
            "name": "prices",
            "file": "prices.parquet",
            "schema": "builtin:prices",
            "primary_key": ["product_id", "date"],
            "format": "parquet",
        },
    ]


def test_load_release_returns_typed_metadata():
    release = load_release(EXAMPLE)
    assert (release.name, release.version) == ("acme-prices", "1.4.0")
    assert release.tables[1].schema_ref == "builtin:prices"
    assert release.tables[1].format == "parquet"


def test_every_problem_is_collected_with_key_path_and_fix(release_dir: Path):
    write_release(
        release_dir,
        """\
name: Acme_Prices
version: "1.4"
owner: data-team
tables:
  - name: products
    file: products.csv
    schema: schemas/missing.yaml
    primarykey: [product_id]
  - name: products
    file: ../outside.parquet
    schema: builtin:nope
    primaryKey: [product_id, date]
  - name: notes
    file: notes.xlsx
    schema: builtin:prices
    primaryKey: [product_id, product_id]
""",
    )
    (release_dir / "notes.xlsx").write_bytes(b"x")
    error = problems_of(release_dir)
    assert error.summary.startswith("release.yaml: 11 problems; name: has the wrong form")
    expected = [
        "- name: has the wrong form",
        "got 'Acme_Prices'",
        "- version: has the wrong form (got '1.4')",
        "fix: use semantic versioning MAJOR.MINOR.PATCH",
        "- owner: Extra inputs are not permitted; fix: remove it or fix its spelling",
        "- tables[0].primaryKey: required key missing",
        "- tables[0].primarykey: Extra inputs are not permitted",
        "allowed keys: name, file, schema, primaryKey",
        "- tables[0].schema: 'schemas/missing.yaml' does not exist",
        "- tables[1].name: 'products' is also the name of tables[0]",
        "- tables[1].file: '../outside.parquet' contains '..'",
        "- tables[1].schema: unknown built-in schema 'builtin:nope'; use one of: builtin:prices",
        "- tables[2].file: 'notes.xlsx' is neither .csv nor .parquet",
        "- tables[2].primaryKey: ['product_id', 'product_id'] repeats a column",
    ]
    for fragment in expected:
        assert fragment in error.detail


def test_yaml_syntax_error_names_the_line(release_dir: Path):
    write_release(release_dir, "name: acme\ntables: [\n  - name: products\n")
    error = problems_of(release_dir)
    assert error.summary == (
        "release.yaml: YAML expected the node content, but found '-' at line 3, column 3; fix the syntax"
    )


def test_missing_release_yaml(tmp_path: Path):
    error = problems_of(tmp_path)
    assert error.summary.startswith("release.yaml not found in")


def test_version_read_as_a_number_is_shown(release_dir: Path):
    text = (release_dir / "release.yaml").read_text().replace("version: 1.4.0", "version: 1.4")
    write_release(release_dir, text)
    error = problems_of(release_dir)
    assert "version: Input should be a valid string (got 1.4)" in error.detail


def test_primary_key_must_be_declared_by_the_schema(release_dir: Path):
    text = (release_dir / "release.yaml").read_text().replace("[product_id, date]", "[product_id, day]")
    write_release(release_dir, text)
    error = problems_of(release_dir)
    assert error.summary.startswith("release.yaml: 1 problem; tables[1].primaryKey: ['day'] not declared")
    assert "product_id, date, price, currency" in error.detail


def test_absolute_paths_and_links_out_of_the_directory_are_refused(release_dir: Path, tmp_path: Path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("a\n1\n")
    (release_dir / "linked.csv").symlink_to(outside)
    text = (release_dir / "release.yaml").read_text()
    text = text.replace("file: products.csv", "file: linked.csv").replace("file: prices.parquet", f"file: {outside}")
    write_release(release_dir, text)
    error = problems_of(release_dir)
    assert "tables[0].file: 'linked.csv' leads outside the release directory" in error.detail
    assert f"tables[1].file: '{outside}' is not a relative path" in error.detail


def test_a_pandas_schema_file_is_refused_with_the_fix(release_dir: Path):
    schema = release_dir / "schemas" / "products.yaml"
    schema.write_text(schema.read_text().replace("schema_type: polars_dataframe", "schema_type: dataframe"))
    error = problems_of(release_dir)
    assert "is a 'dataframe' schema; export it from pandera.polars" in error.summary


def test_a_broken_schema_file_is_reported(release_dir: Path):
    (release_dir / "schemas" / "products.yaml").write_text("columns:\n  a:\n    dtype: NoSuchType\n")
    error = problems_of(release_dir)
    assert "tables[0].schema: schema file schemas/products.yaml is not a valid pandera polars schema" in error.detail


def test_a_yaml_schema_written_by_pandera_is_accepted(release_dir: Path):
    schema = pa.DataFrameSchema({"product_id": pa.Column(pl.String), "note": pa.Column(pl.String, nullable=True)})
    schema.to_yaml(release_dir / "schemas" / "notes.yaml")
    (release_dir / "notes.csv").write_text("product_id,note\nP00001,\n")
    text = (release_dir / "release.yaml").read_text()
    text += "  - name: notes\n    file: notes.csv\n    schema: schemas/notes.yaml\n    primaryKey: [product_id]\n"
    write_release(release_dir, text)
    assert [t["name"] for t in validate_metadata(str(release_dir))] == ["products", "prices", "notes"]
