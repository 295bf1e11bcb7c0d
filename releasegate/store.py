"""The gate's own database (never Airflow's): URL resolution, schema at head, and the writes of a run.

Every write is an upsert on a natural key, so a retried or cleared task writes the same rows again.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from sqlalchemy.engine import Engine

from releasegate.context import gate_home

log = logging.getLogger("releasegate")


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

    return UnitOfWork(engine())
