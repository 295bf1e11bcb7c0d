"""Engine from a URL, and where the URL comes from.

SQLite gets foreign keys, WAL, a busy timeout, and transactions SQLAlchemy controls: plain
connections ``BEGIN`` (deferred: readers never block anyone under WAL), while a connection with
the execution option ``sqlite_begin="IMMEDIATE"`` (the unit of work's) takes the write lock up front,
so two tasks writing at once queue on the busy timeout instead of failing with "database is
locked" when a read transaction tries to become a write one. PostgreSQL gets ``pool_pre_ping``;
libpq options in the URL's query (``?sslmode=require``) reach the driver unchanged; without a
``connect_timeout`` there, connecting gives up after ``PG_CONNECT_TIMEOUT_S``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from airflow.sdk import Connection as AirflowConnection

ENV_URL = "RELEASEGATE_DB_URL"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_BEGIN_MODES = ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")
PG_CONNECT_TIMEOUT_S = 10  # a server that does not answer is a fault to report, not a wait without end

# libpq parameters worth carrying over from an Airflow connection's extras
_PG_QUERY_KEYS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "connect_timeout",
                  "application_name", "options", "target_session_attrs", "keepalives", "keepalives_idle")
_DRIVERS = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2", "sqlite": "sqlite"}


def engine_from_url(url: str) -> Engine:
    """An engine for the gate database at ``url`` (SQLite or PostgreSQL)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        # the declared driver, psycopg2 (SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://);
        # an explicit postgresql+psycopg:// is kept as written
        parsed = parsed.set(drivername="postgresql+psycopg2")
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_engine(url: URL) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy, not pysqlite, emit BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode not in SQLITE_BEGIN_MODES:
            raise ValueError(f"sqlite_begin={mode!r}: use one of {', '.join(SQLITE_BEGIN_MODES)}")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def resolve_url(default_sqlite_path: Path) -> str:
    """$RELEASEGATE_DB_URL, else the Airflow connection ``releasegate_db``, else SQLite at the default path.

    $RELEASEGATE_DB_SSLMODE (e.g. ``require``, ``verify-full``) sets PostgreSQL's TLS mode by configuration,
    whatever the URL or connection says.
    """
    url = os.environ.get(ENV_URL) or _airflow_connection_url()
    if url:
        return with_sslmode(url, os.environ.get("RELEASEGATE_DB_SSLMODE", "").strip())
    path = Path(default_sqlite_path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def with_sslmode(url: str, sslmode: str) -> str:
    """The URL with libpq's sslmode set (PostgreSQL only); an unknown mode is refused with the known ones."""
    if not sslmode:
        return url
    if sslmode not in SSLMODES:
        raise ValueError(f"RELEASEGATE_DB_SSLMODE={sslmode!r} is not a libpq sslmode; use one of {', '.join(SSLMODES)}")
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgres"):
        return url
    return parsed.update_query_dict({"sslmode": sslmode}).render_as_string(hide_password=False)


def _airflow_connection_url() -> str | None:
    """The Airflow connection ``releasegate_db`` as a SQLAlchemy URL, or None (the Airflow glue looks it up, and
    only inside an Airflow process or when ``AIRFLOW_CONN_RELEASEGATE_DB`` is set)."""
    from releasegate.airflow_glue import gate_database_connection

    conn = gate_database_connection()
    return None if conn is None else connection_to_url(conn)


def connection_to_url(conn: AirflowConnection) -> str:
    """A SQLAlchemy URL from an Airflow connection (postgres or sqlite)."""
    conn_type = (conn.conn_type or "").lower()
    driver = _DRIVERS.get(conn_type, conn_type)
    if driver == "sqlite":
        return f"sqlite:///{conn.host or conn.schema}"
    extras = conn.extra_dejson or {}
    query = {k: str(extras[k]) for k in _PG_QUERY_KEYS if k in extras}
    return URL.create(driver, username=conn.login or None, password=conn.password or None, host=conn.host or None,
                      port=conn.port or None, database=conn.schema or None, query=query
                      ).render_as_string(hide_password=False)
