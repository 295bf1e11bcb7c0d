"""Migrate the schema to the newest revision and seed the catalogue:
`DATABASE_URL=sqlite:///inventory.db python -m inventory.migrate` (the revisions: inventory/revisions.py)."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import yaml

from inventory.db import path_from_url
from inventory.revisions import HEAD, transaction, upgrade

SCHEMA_VERSION = HEAD


def seed_items() -> list[dict]:
    """The demo catalogue: every product of seed.yaml in every variant (50 items)."""
    seed = yaml.safe_load((Path(__file__).parent / "seed.yaml").read_text(encoding="utf-8"))
    items, n = [], 0
    for category, spec in seed["categories"].items():
        for product in spec["products"]:
            for variant in seed["variants"]:
                n += 1
                items.append({
                    "sku": f"{spec['code']}-{n:04d}",
                    "name": f"{variant} {product}",
                    "category": category,
                    "price_cents": 199 + (n * 137) % 4800,
                    "discount_percent": (0, 5, 10, 15, 25)[n % 5],
                    "quantity": (n * 7) % 120,
                })
    return items


def migrate(path: str) -> int:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        upgrade(conn)
        with transaction(conn):
            conn.executemany(
                "INSERT OR IGNORE INTO items (sku, name, category, price_cents, discount_percent, quantity) "
                "VALUES (:sku, :name, :category, :price_cents, :discount_percent, :quantity)", seed_items())
        return conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    finally:
        conn.close()


def main() -> int:
    url = os.environ.get("DATABASE_URL")
    if not url:
        print("DATABASE_URL is not set: export DATABASE_URL=sqlite:///path/to/inventory.db", file=sys.stderr)
        return 2
    path = path_from_url(url)
    count = migrate(path)
    print(f"migrated {path} to schema version {SCHEMA_VERSION}; {count} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
