"""Database access: sqlite3 from the standard library, configured by a sqlite:/// URL."""

from __future__ import annotations

import sqlite3

PREFIX = "sqlite:///"


def path_from_url(url: str) -> str:
    """sqlite:///relative.db or sqlite:////absolute/path.db -> a filesystem path."""
    if not url.startswith(PREFIX) or len(url) == len(PREFIX):
        raise RuntimeError(f"DATABASE_URL {url!r} is not supported: use sqlite:///path/to/inventory.db")
    return url[len(PREFIX):]


def connect(path: str) -> sqlite3.Connection:
    # mode=rw: never create an empty database by accident; migrations create it.
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    return conn


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The applied schema version, or None when the database has not been migrated."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not exists:
        return None
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return row[0] if row and row[0] is not None else None
