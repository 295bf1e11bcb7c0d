"""The schema, one revision at a time, each with its downgrade.

`DATABASE_URL=sqlite:///inventory.db python -m inventory.revisions up` applies the revisions not applied yet;
`... down` reverts every applied revision, newest first. Each line names the revision (`Applying 0002_...`,
`Reverting 0002_...`); a revision that fails stops the command with its error. `schema_version` holds how many
revisions are applied (the health check reads it).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from inventory.db import path_from_url


@dataclass(frozen=True)
class Revision:
    name: str
    up: tuple[str, ...]
    down: tuple[str, ...]


REVISIONS = (
    Revision(
        "0001_items",
        up=("""CREATE TABLE items (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                sku TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                category TEXT NOT NULL,
                price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
                discount_percent INTEGER NOT NULL DEFAULT 0 CHECK (discount_percent BETWEEN 0 AND 100),
                quantity INTEGER NOT NULL CHECK (quantity >= 0),
                created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
            "CREATE INDEX items_name ON items (name)"),
        down=("DROP INDEX items_name", "DROP TABLE items")),
    Revision(
        "0002_restock_notifications",
        up=("""CREATE TABLE restock_notifications (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                sku TEXT NOT NULL REFERENCES items (sku),
                quantity INTEGER NOT NULL,
                created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)""",
            "CREATE INDEX restock_notifications_sku ON restock_notifications (sku)"),
        down=("DROP INDEX restock_notifications_sku", "DROP TABLE restock_notifications")),
)
HEAD = len(REVISIONS)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One transaction on a connection opened with isolation_level=None: committed, or rolled back and re-raised."""
    conn.execute("BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def applied(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    return conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]


def upgrade(conn: sqlite3.Connection) -> int:
    """Apply the revisions not applied yet, each in its own transaction; the number applied now."""
    current = applied(conn)
    for number, revision in enumerate(REVISIONS[current:], start=current + 1):
        print(f"Applying {revision.name}", flush=True)
        with transaction(conn):
            for statement in revision.up:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
    return HEAD


def downgrade(conn: sqlite3.Connection) -> None:
    """Revert every applied revision, newest first."""
    for number in range(applied(conn), 0, -1):
        revision = REVISIONS[number - 1]
        print(f"Reverting {revision.name}", flush=True)
        with transaction(conn):
            for statement in revision.down:
                conn.execute(statement)
            conn.execute("DELETE FROM schema_version WHERE version = ?", (number,))


def main(argv: list[str]) -> int:
    url = os.environ.get("DATABASE_URL")
    if not url or argv not in (["up"], ["down"]):
        print("usage: DATABASE_URL=sqlite:///path/to/inventory.db python -m inventory.revisions up|down",
              file=sys.stderr)
        return 2
    conn = sqlite3.connect(path_from_url(url), isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        upgrade(conn) if argv == ["up"] else downgrade(conn)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
