"""Create the schema and seed the catalogue: `DATABASE_URL=sqlite:///inventory.db python -m inventory.migrate`."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import yaml

from inventory.db import path_from_url

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    discount_percent INTEGER NOT NULL DEFAULT 0 CHECK (discount_percent BETWEEN 0 AND 100),
    quantity INTEGER NOT NULL CHECK (quantity >= 0),
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS items_name ON items (name);
"""


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
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executescript(SCHEMA)
            conn.executemany(
                "INSERT OR IGNORE INTO items (sku, name, category, price_cents, discount_percent, quantity) "
                "VALUES (:sku, :name, :category, :price_cents, :discount_percent, :quantity)", seed_items())
            if conn.execute("SELECT COUNT(*) FROM schema_version WHERE version = ?", (SCHEMA_VERSION,)).fetchone()[0] == 0:
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
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
