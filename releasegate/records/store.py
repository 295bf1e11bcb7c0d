"""The gate's own database (never Airflow's): URL resolution, schema at head, and the writes of a run.

Every write is an upsert on a natural key, so a retried or cleared task writes the same rows again, and
`transaction` runs a unit of work again when the connection dropped (persistence.uow.in_transaction).
Every unit of work redacts what it appends to the audit trail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

from sqlalchemy.engine import Engine

from releasegate.context import gate_home

log = logging.getLogger("releasegate")
T = TypeVar("T")


def database_url() -> str:
    from persistence import resolve_url

    return resolve_url(gate_home() / "releasegate.db")


@lru_cache(maxsize=4)
def _engine_for(url: str) -> Engine:
    from persistence import engine_from_url
    from persistence.migrate import ensure_schema

    ensure_schema(url)
    return engine_from_url(url)


def engine() -> Engine:
    """The engine for the configured database, migrated to head on first use in this process."""
    return _engine_for(database_url())


def forget_engines() -> None:
    """Drop cached engines, so the next call migrates and connects afresh (a process switching databases)."""
    _engine_for.cache_clear()


def unit_of_work():
    from persistence import UnitOfWork
    from releasegate.redact import redact_data

    return UnitOfWork(engine(), scrub=redact_data)


def transaction(work: Callable[..., T], what: str = "database write") -> T:
    """``work(uow)`` in a unit of work, committed; the whole of it again after a dropped connection."""
    from persistence.uow import in_transaction

    return in_transaction(unit_of_work, work, what=what)
