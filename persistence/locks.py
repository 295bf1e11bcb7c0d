"""Named locks held until the end of the transaction: PostgreSQL advisory locks, a no-op on SQLite.

SQLite needs none: the unit of work begins with ``BEGIN IMMEDIATE``, so writers already take turns.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.orm import Session


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (the same in every process, unlike ``hash()``)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


def advisory_lock(session: Session, name: str, shared: bool = False) -> None:
    """Wait for the lock called ``name``; it is released when the transaction ends (commit or rollback)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    session.execute(text(f"SELECT {function}(:key)"), {"key": lock_key(name)})
