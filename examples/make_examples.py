"""Regenerate the example release-data directories (deterministic: same files on every run).

``examples/release-data/`` passes validation; ``examples/release-data-bad/`` holds the same tables with
a few bad rows. Run from the repository root: ``.venv/bin/python examples/make_examples.py``.
The layout follows the data contract of ``release.yaml`` (see ``steps/data/metadata.py``); the
schemas are pandera polars schemas (https://pandera.readthedocs.io/en/stable/polars.html).
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pandera.polars as pa
import polars as pl

HERE = Path(__file__).resolve().parent
GOOD, BAD = HERE / "release-data", HERE / "release-data-bad"
PRODUCTS, DAYS = 600, 5
CATEGORIES = ["bakery", "beverages", "dairy", "frozen", "household", "pantry", "produce", "snacks"]
BRANDS = ["Acme", "Brightside", "Cobalt", "Dunmore", "Evergreen", "Fjord", "Galena", "Harbor"]
NOUNS = ["rye bread", "oat drink", "yoghurt", "peas", "dish soap", "lentils", "apples", "crackers"]
NOUN_UNITS = ["g", "ml", "g", "g", "ml", "g", "pcs", "g"]
UNITS = ["g", "ml", "pcs"]
CURRENCY_BY_MARKET = ["EUR", "EUR", "EUR", "GBP", "USD", "CHF"]

PRODUCTS_SCHEMA = pa.DataFrameSchema(
    {
        "product_id": pa.Column(pl.String, pa.Check.str_matches(r"^P\d{5}$"), unique=True),
        "name": pa.Column(pl.String, pa.Check.str_length(1, 80)),
        "category": pa.Column(pl.String, pa.Check.isin(CATEGORIES)),
        "ean13": pa.Column(pl.String, pa.Check.str_matches(r"^\d{13}$")),
        "pack_size": pa.Column(pl.Int64, pa.Check.in_range(1, 10_000)),
        "unit": pa.Column(pl.String, pa.Check.isin(UNITS)),
        "launched": pa.Column(pl.Date, pa.Check.ge(dt.date(1990, 1, 1))),
        "organic": pa.Column(pl.Boolean),
        "weight_kg": pa.Column(pl.Float64, pa.Check.in_range(0.001, 50), nullable=True),
    },
    strict=True,
    name="products",
    description="One row per product sold in the release's markets.",
)


def _products(rng: random.Random) -> pl.DataFrame:
    rows = []
    for number in range(1, PRODUCTS + 1):
        index = rng.randrange(len(NOUNS))
        unit = NOUN_UNITS[index]
        size = rng.choice([100, 250, 330, 500, 750, 1000]) if unit != "pcs" else rng.choice([1, 4, 6, 12])
        rows.append(
            {
                "product_id": f"P{number:05d}",
                "name": f"{rng.choice(BRANDS)} {NOUNS[index]} {size}{unit}",
                "category": CATEGORIES[index],
                "ean13": "".join(rng.choice("0123456789") for _ in range(13)),
                "pack_size": size,
                "unit": unit,
                "launched": dt.date(2005, 1, 1) + dt.timedelta(days=rng.randrange(7000)),
                "organic": rng.random() < 0.2,
                "weight_kg": None if unit == "pcs" and rng.random() < 0.5 else round(size / 1000 * 1.05, 3),
            }
        )
    return pl.DataFrame(rows, schema={name: column.dtype.type for name, column in PRODUCTS_SCHEMA.columns.items()})


def _prices(rng: random.Random) -> pl.DataFrame:
    rows = []
    start = dt.date(2024, 6, 3)
    for number in range(1, PRODUCTS + 1):
        base = rng.uniform(0.5, 40)
        currency = CURRENCY_BY_MARKET[number % len(CURRENCY_BY_MARKET)]
        for day in range(DAYS):
            rows.append(
                {
                    "product_id": f"P{number:05d}",
                    "date": start + dt.timedelta(days=day),
                    "price": round(base * rng.uniform(0.95, 1.05), 2),
                    "currency": currency,
                }
            )
    return pl.DataFrame(
        rows, schema={"product_id": pl.String, "date": pl.Date, "price": pl.Float64, "currency": pl.String}
    )


def _release_yaml(description: str) -> str:
    return f"""\
name: acme-prices
version: 1.4.0
description: {description}
tables:
  - name: products
    file: products.csv
    schema: schemas/products.yaml
    primaryKey: [product_id]
  - name: prices
    file: prices.parquet
    schema: builtin:prices
    primaryKey: [product_id, date]
"""


def _write(directory: Path, products_csv: bytes, prices: pl.DataFrame, description: str) -> None:
    (directory / "schemas").mkdir(parents=True, exist_ok=True)
    (directory / "release.yaml").write_text(_release_yaml(description))
    PRODUCTS_SCHEMA.to_yaml(directory / "schemas" / "products.yaml")
    (directory / "products.csv").write_bytes(products_csv)
    prices.write_parquet(directory / "prices.parquet", row_group_size=1000, statistics=False)


def _break_products(csv: bytes) -> bytes:
    """Five bad rows: negative pack size, bad EAN, repeated id, a missing field, bytes that are not UTF-8."""
    rows = [line.split(b",") for line in csv.split(b"\n")]  # rows[0] is the header, rows[n] data row n
    rows[10][4] = b"-" + rows[10][4]
    rows[20][3] = b"40012345X7890"
    rows[30][0] = rows[31][0]
    rows[40] = rows[40][:-1]
    rows[50][1] += b" cr\xe8me"  # Latin-1, not UTF-8
    return b"\n".join(b",".join(fields) for fields in rows)


def _break_prices(prices: pl.DataFrame) -> pl.DataFrame:
    """Three bad rows: a negative price, an unknown currency, a (product_id, date) repeated far apart."""
    row = pl.int_range(pl.len())
    return prices.with_columns(
        price=pl.when(row == 7).then(-3.5).otherwise(pl.col("price")),
        currency=pl.when(row == 1234).then(pl.lit("XXX")).otherwise(pl.col("currency")),
        date=pl.when(row == 2901).then(pl.lit(dt.date(2024, 6, 3))).otherwise(pl.col("date")),
        product_id=pl.when(row == 2901).then(pl.lit("P00002")).otherwise(pl.col("product_id")),
    )


def main() -> None:
    """Write both example directories."""
    products = _products(random.Random(4))
    prices = _prices(random.Random(5))
    products_csv = products.write_csv(date_format="%Y-%m-%d").encode()
    _write(GOOD, products_csv, prices, "Daily product prices (example that passes validation)")
    _write(BAD, _break_products(products_csv), _break_prices(prices), "Daily product prices with a few bad rows")


if __name__ == "__main__":
    main()
