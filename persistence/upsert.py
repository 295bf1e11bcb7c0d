"""INSERT ... ON CONFLICT DO UPDATE on a natural key, for SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

_DIALECTS = ("sqlite", "postgresql")


def upsert(session: Session, table: Table, rows: dict[str, Any] | Sequence[dict[str, Any]],
           keys: Iterable[str], update: bool = True) -> None:
    """Insert ``rows``; where one with the same ``keys`` exists, overwrite the columns the rows carry
    (or, with ``update=False``, leave it as it is)."""
    rows = [rows] if isinstance(rows, dict) else list(rows)
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect not in _DIALECTS:
        raise NotImplementedError(f"upsert: dialect {dialect!r} is not supported — use SQLite or PostgreSQL")
    keys = list(keys)
    stmt: sqlite.Insert | postgresql.Insert = (
        postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)).values(rows)
    updates = {c: stmt.excluded[c] for c in rows[0] if c not in keys} if update else {}
    session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates) if updates
                    else stmt.on_conflict_do_nothing(index_elements=keys))
